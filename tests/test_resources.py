"""Job sizes from the config's `resources:` section: scaled with the job's frames, GPU only where needed,
profile defaults where the config leaves a size null, and what the workflow hands Snakemake."""

from __future__ import annotations

import pytest
from workflow_fixtures import REPO, TINY, copy_config, copy_workflow, snakemake

from epeflow.config import load_config, merge, validate_config
from epeflow.errors import EpeflowError
from epeflow.resources import dataset_frames, job_resources, job_threads, split_frames


@pytest.fixture
def config():
    return load_config([REPO / "config" / "config.yaml"])


def test_runtime_scales_with_frames_and_gpu_follows_the_need(config):
    small = job_resources(config, "labels", frames=1000, need_gpus=1)
    large = job_resources(config, "labels", frames=25000, need_gpus=1)
    assert small == {"gpu": 1, "mem_mb": 16000, "runtime": 50}
    assert large["runtime"] == 30 + 25 * 20
    assert job_resources(config, "labels", frames=1000, need_gpus=0)["gpu"] == 0  # e.g. labels: gt


def test_config_entry_overrides_only_its_keys_and_null_leaves_the_profile(config):
    cfg = validate_config(merge(config, {"resources": {
        "default": {"slurm_account": "proj", "slurm_partition": "cpu"},
        "enhance": {"slurm_partition": "gpu", "mem_mb": None, "gpus": 2},
    }}))
    res = job_resources(cfg, "enhance", frames=500, need_gpus=1)
    assert res == {"gpu": 2, "runtime": 30, "slurm_partition": "gpu", "slurm_account": "proj"}  # no mem_mb
    small = job_resources(cfg, "default", frames=0, need_gpus=0)
    assert small == {"gpu": 0, "slurm_partition": "cpu", "slurm_account": "proj"}  # sizes from the profile


def test_training_is_one_node_per_gpu_sized_with_the_stop_signal(config):
    cfg = validate_config(merge(config, {"resources": {"train": {"slurm_extra": "--qos=long"}}}))
    res = job_resources(cfg, "train", frames=0, need_gpus=4)
    assert res["gpu"] == 4 and res["nodes"] == 1 and res["mem_mb"] == 4 * 32000 and res["runtime"] == 240
    assert res["slurm_extra"] == "--signal=TERM@300 --qos=long"
    assert job_threads(cfg, "train", 4) == 32 and job_threads(cfg, "knn") == 8


def test_unknown_resource_key_names_it(config):
    with pytest.raises(EpeflowError, match=r"resources\.labels.*'gpu'"):
        validate_config(merge(config, {"resources": {"labels": {"gpu": 1}}}))


def test_frames_at_plan_time(config):
    demo = config["datasets"]["demo_synth"]
    assert dataset_frames(demo) == 48
    listed = {**config["datasets"]["pfd"], "max_frames": None}
    assert dataset_frames(listed, "25000 frames abc") == 25000
    assert dataset_frames({**listed, "max_frames": 100}, "25000 frames abc") == 100
    assert dataset_frames(listed, "cannot list: no such folder") == 1000
    assert split_frames(1000, demo, "test") == 100 and split_frames(1000, demo, "all", 50) == 50


def _job_resources(workdir, cfg, *args):
    (workdir / "test.yaml").write_text(__import__("yaml").safe_dump(cfg))
    run = snakemake(workdir, "-n", "results/demo/metrics.json", "--configfile", "config/config.yaml", "test.yaml",
                    *args)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    found = {}
    rule = None
    for line in run.stdout.splitlines():
        if line.startswith("rule "):
            rule = line[5:].rstrip(":")
        elif line.strip().startswith("resources:") and rule:
            found[rule] = dict(kv.split("=", 1) for kv in line.split(":", 1)[1].strip().split(", "))
    return found


def test_workflow_hands_config_sizes_and_profile_defaults_to_snakemake(tmp_path):
    copy_workflow(tmp_path)
    cfg = copy_config(TINY)
    cfg["experiments"]["demo"]["knn"]["device"] = "cpu"
    cfg["resources"] = {"default": {"slurm_account": "proj"}, "train": {"runtime": 90}}
    found = _job_resources(tmp_path, cfg, "--default-resources", "mem_mb=1234", "runtime=7")
    assert found["knn"]["gpu"] == "0"  # knn.device: cpu
    assert found["crops_shard"]["gpu"] == "1" and found["labels_shard"]["gpu"] == "0"  # labels: gt
    assert found["manifest"]["mem_mb"] == "1234" and found["manifest"]["runtime"] == "7"  # the profile's
    assert found["train"]["runtime"] == "90" and found["train"]["nodes"] == "1"
    merges = ("labels", "crops", "gbuffers", "enhance")  # localrules: they run where Snakemake runs
    cluster_jobs = {rule: r for rule, r in found.items() if rule not in merges}
    assert all(r["slurm_account"] == "proj" for r in cluster_jobs.values())


def test_multi_gpu_training_is_one_job_of_n_gpus_on_one_node_under_torchrun(tmp_path):
    copy_workflow(tmp_path)
    cfg = copy_config(TINY)
    cfg["experiments"]["demo"]["train"].update({"gpus": 2, "batch_size": 2})
    (tmp_path / "test.yaml").write_text(__import__("yaml").safe_dump(cfg))
    run = snakemake(tmp_path, "-n", "-p", "results/demo/model.pt", "--configfile", "config/config.yaml",
                    "test.yaml", "--cores", "32")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    train = run.stdout.split("rule train:", 1)[1]
    assert "gpu=2" in train and "nodes=1" in train and "mem_mb=64000" in train and "threads: 16" in train
    assert "epeflow on-gpus 2 -- env PET_" in train and "torchrun --standalone --nproc-per-node 2" in train

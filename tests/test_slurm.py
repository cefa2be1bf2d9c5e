"""The workflow on a real one-node SLURM (tests/slurm_fixtures.py) through `--profile slurm`, as shipped:
the shrunk demo DAG runs with the sizes from the config; its training job, cancelled with `scancel` once it
has a checkpoint, resumes from it when the same command runs again, and the DAG completes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from slurm_fixtures import install_problem, one_node_slurm
from workflow_fixtures import TINY, copy_config, copy_workflow

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# Sizes that fit the test node (the defaults are for a GPU node). Training long enough to be caught after
# its first checkpoint. The status is polled often, as a run of tiny jobs wants (the shipped profile waits
# 20 s, then polls every 10 s).
CI_RESOURCES = {stage: {"cpus": 2, "mem_mb": 2000, "runtime": 10}
                for stage in ("default", "labels", "gbuffers", "crops", "knn", "train", "enhance", "evaluate")}
CI_TRAIN = {"iterations": 12, "checkpoint_every": 2}
FAST_STATUS = ("--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "3")
TARGET = "results/demo/metrics.json"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = install_problem()
    if reason:
        pytest.skip(reason)
    yield from one_node_slurm(tmp_path_factory.mktemp("slurm"))


def ci_config() -> dict:
    """The tiny demo of the workflow tests, sized for the test node (also used by bench/bench_slurm.py)."""
    cfg = copy_config(TINY)
    cfg["resources"] = CI_RESOURCES
    cfg["experiments"]["demo"]["train"].update(CI_TRAIN)
    return cfg


def snakemake_command(target: str, *args: str) -> list[str]:
    """What a user types from the repository root: `snakemake --profile slurm <target> --configfile ...`."""
    exe = str(Path(sys.executable).parent / "snakemake")
    return [exe, "--profile", "slurm", target, "--configfile", "config/config.yaml", "ci.yaml", *FAST_STATUS, *args]


def run_env(cluster, work: Path) -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    return {**cluster.env, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "EPEFLOW_NO_PROGRESS": "1",
            "TORCH_HOME": str(work / "torch_home")}


def running_train_job(cluster) -> str | None:
    for line in cluster.squeue("-o", "%i %T %k").splitlines():
        jobid, state, comment = (line.split(None, 2) + ["", ""])[:3]
        if "rule_train" in comment and state == "RUNNING":
            return jobid
    return None


def test_demo_dag_through_slurm_and_scancel_of_training_resumes(cluster, tmp_path):
    copy_workflow(tmp_path)
    (tmp_path / "ci.yaml").write_text(yaml.safe_dump(ci_config()))
    env = run_env(cluster, tmp_path)
    checkpoints = tmp_path / "results/demo/checkpoints"
    start = time.monotonic()
    first_log = tmp_path / "first-run.log"  # a file, not a pipe: nobody reads a pipe while we poll
    with open(first_log, "w") as sink:
        first = subprocess.Popen(snakemake_command(TARGET, "--retries", "0", "--verbose"), cwd=tmp_path, env=env,
                                 stdout=sink, stderr=subprocess.STDOUT)
    jobid = None
    while first.poll() is None and time.monotonic() - start < 900:
        jobid = running_train_job(cluster)
        if jobid and any(checkpoints.glob("ckpt-*.pt")):
            break
        time.sleep(0.3)
    if not jobid:
        first.kill()
    assert jobid, "no training job ran:\n" + first_log.read_text()[-6000:]
    subprocess.run(["scancel", jobid], env=cluster.env, check=True)
    first.wait(timeout=600)
    out = first_log.read_text()
    assert first.returncode != 0 and not (tmp_path / "results/demo/model.pt").exists(), out[-4000:]

    calls = re.findall(r"sbatch call: (.*)", out)
    train = [c for c in calls if "rule_train" in c][0]
    assert "--gpus=1" in train and "--nodes=1" in train and "--signal=TERM@300" in train  # config sizes:
    assert "-t 10" in train and "--mem 2000" in train and "--cpus-per-task=2" in train
    labels = [c for c in calls if "rule_labels_shard" in c]
    assert labels and all("--gpus" not in c for c in labels)  # labels: gt runs on the CPU
    assert any("--gpus=1" in c for c in calls if "rule_crops_shard" in c)

    second = subprocess.run(snakemake_command(TARGET), cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=900)
    wall = time.monotonic() - start
    assert second.returncode == 0, (second.stdout + second.stderr)[-6000:]
    train_log = (tmp_path / "logs/train/demo.log").read_text()
    resumed = re.search(r"resuming from \S+ \(iteration (\d+)\)", train_log)
    assert resumed and int(resumed.group(1)) >= 2, train_log[-3000:]
    assert (tmp_path / TARGET).is_file()
    again = subprocess.run(snakemake_command(TARGET, "-n"), cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    print(f"demo DAG through SLURM with one cancelled training job: {wall:.0f} s")

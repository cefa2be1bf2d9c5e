"""End to end: a tiny demo config through Snakemake in a temporary directory.

Checks the outputs are sane, that a second run has nothing to do, and that changing a k-NN setting
reruns k-NN and what follows but not the crops or their features.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from workflow_fixtures import TINY, copy_workflow, planned_rules, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("workflow")
    copy_workflow(work)
    (work / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    result = snakemake(work, "--configfile", "config/config.yaml", "tiny.yaml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    return work


def test_outputs_are_sane(workdir):
    from epeflow.artifacts.crops import CropStore
    from epeflow.io import read_json, read_table
    from epeflow.models import load_generator

    res = workdir / "results"
    manifest, _ = read_table(res / "datasets" / "demo_synth" / "manifest.parquet")
    assert len(manifest) == 12 and set(manifest["split"]) <= {"train", "val", "test"}

    crops = CropStore(res / "datasets" / "demo_synth" / "crops.zarr")
    assert len(crops) == 12 * 4 and crops.features.shape == (48, 512)
    assert np.isfinite(np.asarray(crops.features[:], dtype=np.float32)).all()

    import zarr

    knn = zarr.open_group(str(res / "demo" / "matching" / "knn.zarr"), mode="r")
    assert knn["index"].shape == (48, 3) and knn["dist"].shape == (48, 3)
    assert (np.asarray(knn["index"][:]) < 48).all()

    matches, _ = read_table(res / "demo" / "matching" / "matches.parquet")
    weights, _ = read_table(res / "demo" / "matching" / "weights.parquet")
    assert len(matches) > 0 and len(weights) == len(matches)
    assert (weights["weight"] > 0).all() and np.isfinite(weights["weight"]).all()

    metrics = read_json(res / "demo" / "metrics.json")
    assert metrics["random_weights"] is True and "not a real measurement" in metrics["warning"]
    flat = json.dumps(metrics["metrics"])
    assert "NaN" not in flat and "Infinity" not in flat

    generator, model = load_generator(res / "demo" / "model.pt")
    assert model["provenance"]["random_weights"] is True
    enhanced = sorted((res / "demo" / "enhanced").glob("*.png"))
    assert enhanced, "no enhanced frames"
    assert generator is not None and sum(p.numel() for p in generator.parameters()) > 0
    assert torch.load(res / "demo" / "model.pt", weights_only=True)["format"] == "epeflow-model/1"

    html = (res / "demo" / "report.html").read_text()
    assert "random weights" in html and "data:image/png;base64," in html
    assert 'class="compare"' in html and 'type="range"' in html  # before / after sliders

    # the demo's sources are sequences: tOF / tLP over the consecutive enhanced frames (temporal_trim 0 here)
    tof, tlp = metrics["metrics"]["tof"], metrics["metrics"]["tlp"]
    assert tof["pairs"] >= 1 and tlp["pairs"] == tof["pairs"], tof
    assert tof["enhanced"]["mean"] >= 0 and tof["identity"]["mean"] == 0.0 and "tof" in html
    assert "needs real MSeg weights" in metrics["metrics"]["semantic_consistency"]["skipped"]


def test_snakemake_report_collects_metrics_and_report(workdir):
    """`snakemake --report` of the finished run: one HTML file with the flagged outputs and their captions."""
    out = workdir / "snakemake_report.html"
    result = snakemake(workdir, "--configfile", "config/config.yaml", "tiny.yaml", "--report", str(out))
    assert result.returncode == 0, result.stderr[-4000:]
    page = out.read_text(encoding="utf-8")
    for name in ("metrics.json", "report.html", "preview.png", "distances.png"):
        assert name in page, name
    assert "provenance of every number" in page and "before / after slider" in page  # the captions


def test_second_run_has_nothing_to_do(workdir):
    result = snakemake(workdir, "--configfile", "config/config.yaml", "tiny.yaml", "-n")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_knn_reruns_knn_and_downstream_only(workdir):
    changed = json.loads(json.dumps(TINY))
    changed["experiments"]["demo"]["knn"]["k"] = 2
    (workdir / "tiny_k2.yaml").write_text(yaml.safe_dump(changed))
    result = snakemake(workdir, "--configfile", "config/config.yaml", "tiny_k2.yaml", "-n")
    assert result.returncode == 0, result.stderr[-4000:]
    rules = planned_rules(result)
    assert {"knn", "filter_matches", "sampling_weights", "train", "enhance", "evaluate", "report_html"} <= rules
    assert not rules & {"crops", "crops_shard", "crop_stats", "manifest", "demo_data", "labels", "gbuffers"}


def test_lint_and_dag(workdir):
    lint = snakemake(workdir, "--configfile", "config/config.yaml", "tiny.yaml", "--lint")
    assert lint.returncode == 0 and "good condition" in lint.stdout + lint.stderr
    dag = snakemake(workdir, "--configfile", "config/config.yaml", "tiny.yaml", "--dag", "-F")
    assert dag.returncode == 0 and dag.stdout.lstrip().startswith("digraph")
    assert "knn" in dag.stdout and "train" in dag.stdout


def test_mseg_labels_and_fake_gbuffers_in_the_dag(tmp_path):
    """The other two conditioning modes (issue: labels mseg, gbuffers fake) run as DAG targets too."""
    work = tmp_path / "variant"
    copy_workflow(work)
    variant = json.loads(json.dumps(TINY))
    variant["datasets"]["demo_synth"].update(
        labels="mseg", gbuffers="fake",
        mseg={"base_size": 32, "crop": 32, "scales": [1.0], "batch_size": 2},
        fake_gbuffers={"stats_frames": 4, "batch_size": 4, "num_workers": 0},
    )
    variant["datasets"]["demo_synth"]["demo"]["frames"] = 4
    (work / "variant.yaml").write_text(yaml.safe_dump(variant))
    targets = ["results/datasets/demo_synth/labels", "results/datasets/demo_synth/gbuffers.zarr"]
    result = snakemake(work, *targets, "--configfile", "config/config.yaml", "variant.yaml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]

    from epeflow.artifacts.gbuffers import GBufferStore
    from epeflow.io import read_json, read_label

    labels = read_json(work / targets[0] / "labels.json")
    assert labels["method"] == "mseg" and labels["random_weights"] is True
    maps = sorted((work / targets[0]).glob("*.png"))
    assert len(maps) == 4 and all(read_label(p).max() < 194 for p in maps)
    store = GBufferStore(work / targets[1])
    assert store.channels == 32 and store.random_weights
    assert store.read(0, size=(64, 96)).shape == (32, 64, 96)


def test_snakemake_continues_an_imported_reference_run(workdir):
    """The demo's generator saved as a reference run would save it (8 updates of both networks), imported as
    `train.init_from` of another experiment: Snakemake trains that one on from iteration 4, once."""
    from epeflow.cli import main
    from epeflow.epe.discriminator_checkpoint import export_discriminator
    from epeflow.models import load_generator
    from epeflow.models.ppde import PPDE, PPDEConfig

    saves, init = workdir / "savegames", "imports/init.pt"
    saves.mkdir()
    gen_file, disc_file = saves / "run-8_gen-network.pth.tar", saves / "run-8_disc-network.pth.tar"
    assert main(["epe", "export", "generator", str(workdir / "results/demo/model.pt"), str(gen_file),
                 "--allow-nonreference"]) == 0
    export_discriminator(PPDE(PPDEConfig(max_dim=64, num_layers=2, width=0.125)), disc_file, reference_shapes=False)
    generator = load_generator(workdir / "results/demo/model.pt")[1]["generator_config"]

    def import_run(*extra: str) -> None:
        assert main(["epe", "import", "run", "--generator", str(gen_file), "--discriminator", str(disc_file),
                     "--gbuffer-mode", generator["gbuffer_mode"], "--width", str(generator["width"]),
                     "--out", str(workdir / init), *extra]) == 0

    import_run()
    cont = json.loads(json.dumps(TINY))
    cont["experiments"]["cont"] = {
        "source": "demo_synth", "target": "demo_real", "max_dist": 2.0, "knn": {"k": 3}, "allow_random_weights": True,
        "train": {**TINY["experiments"]["demo"]["train"], "discriminator": "ppde", "iterations": 6, "init_from": init},
    }
    (workdir / "cont.yaml").write_text(yaml.safe_dump(cont))
    result = snakemake(workdir, "results/cont/model.pt", "--configfile", "config/config.yaml", "cont.yaml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    assert f"starting from {init} at iteration 4" in (workdir / "logs/train/cont.log").read_text()
    model = load_generator(workdir / "results/cont/model.pt")[1]
    assert model["provenance"]["init_from"]["iteration"] == 4 and model["history"]["iteration"] == [5, 6]

    again = snakemake(workdir, "results/cont/model.pt", "--configfile", "config/config.yaml", "cont.yaml", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    import_run("--iteration", "3")
    rewritten = snakemake(workdir, "results/cont/model.pt", "--configfile", "config/config.yaml", "cont.yaml", "-n")
    assert planned_rules(rewritten) == {"train"}

"""A synthetic dataset that is only a folder of frames (no G-buffers, no GT labels) can be matched and
trained: `gbuffers: none` trains the reference's image-only generator, and with `gbuffers: fake` the
materials come from the robust (MSeg) labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from crop_fixtures import smooth_image
from workflow_fixtures import REPO, TINY, copy_config, copy_workflow, planned_rules, snakemake

from epeflow.config import merge, validate_config
from epeflow.io import write_png

MSEG = {"base_size": 32, "crop": 32, "scales": [1.0], "batch_size": 2}


def frames_folder(root: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        write_png(root / f"clip{i % 2}" / f"{i:04d}.png", smooth_image(rng, 64, 96))
    return root


def frames_only_config(frames: Path, gbuffers: str = "none") -> dict:
    cfg = copy_config(TINY)
    cfg["datasets"]["game"] = {
        "role": "synthetic", "images": str(frames), "gbuffers": gbuffers, "labels": "mseg", "mseg": MSEG,
        "fake_gbuffers": {"stats_frames": 4, "batch_size": 4, "num_workers": 0},
        "split": {"val": 0.0, "test": 0.5}, "allow_random_weights": True,
        "crops": {**cfg["datasets"]["demo_synth"]["crops"], "padding": "zero"},
    }
    cfg["experiments"]["game2real"] = {**cfg["experiments"]["demo"], "source": "game", "target": "demo_real",
                                       "allow_random_weights": True}
    cfg["datasets"]["demo_real"]["demo"]["frames"] = 6
    cfg["default_experiment"] = "game2real"
    return cfg


def _validated(overlay: dict) -> dict:
    return validate_config(merge(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), overlay))


def test_frames_only_source_is_valid_and_trains_image_only(tmp_path):
    cfg = _validated(frames_only_config(tmp_path))
    assert cfg["experiments"]["game2real"]["train"]["image_only"] is True
    assert cfg["experiments"]["demo"]["train"]["image_only"] is False
    fake = _validated(frames_only_config(tmp_path, "fake"))  # fake G-buffers, materials from MSeg labels
    assert fake["experiments"]["game2real"]["train"]["image_only"] is False


def _workdir(tmp_path: Path, gbuffers: str) -> Path:
    work = tmp_path / "work"
    copy_workflow(work)
    frames_folder(work / "frames")
    (work / "test.yaml").write_text(yaml.safe_dump(frames_only_config(work / "frames", gbuffers)))
    return work


def test_frames_only_plans_without_gbuffers_or_gt_labels(tmp_path):
    work = _workdir(tmp_path, "none")
    plan = snakemake(work, "results/game2real/enhanced", "--configfile", "config/config.yaml", "test.yaml",
                     "-n", "-p")
    rules = planned_rules(plan)
    assert {"labels", "crops", "knn", "train", "enhance"} <= rules and "gbuffers" not in rules
    assert "--gbuffers" not in plan.stdout and " - results/game2real/enhanced" in plan.stdout

    (work / "test.yaml").write_text(yaml.safe_dump(frames_only_config(work / "frames", "fake")))
    plan = snakemake(work, "results/game2real/enhanced", "--configfile", "config/config.yaml", "test.yaml",
                     "-n", "-p")
    assert "gbuffers" in planned_rules(plan)
    assert "--robust-labels results/datasets/game/labels" in plan.stdout  # materials from the MSeg labels


def test_frames_only_stages_run_end_to_end(tmp_path):
    """The stage commands the rules run, in process (the plan test checks the rules' command lines): two
    folders of frames and nothing else, through MSeg labels, crops, matching, image-only training and
    enhancement."""
    import json

    from epeflow.cli import main
    from epeflow.config import dataset_stage_settings
    from epeflow.io import read_image
    from epeflow.models import load_generator

    overlay = frames_only_config(frames_folder(tmp_path / "game_frames"))
    rng = np.random.default_rng(1)
    for i in range(6):
        write_png(tmp_path / "photos" / f"{i:03d}.png", smooth_image(rng, 64, 96))
    overlay["datasets"]["photos"] = {**overlay["datasets"]["game"], "role": "real", "images": str(tmp_path / "photos"),
                                     "gbuffers": "none"}
    overlay["experiments"]["game2real"]["target"] = "photos"
    cfg = _validated(overlay)
    exp = cfg["experiments"]["game2real"]
    r = tmp_path / "results"

    def run(*args) -> None:
        assert main([str(a) for a in args]) == 0, args

    def settings(ds: str, stage: str) -> str:
        return json.dumps(dataset_stage_settings(cfg["datasets"][ds], stage))

    for ds in ("game", "photos"):
        d = r / ds
        run("manifest", ds, d / "manifest.parquet", "--spec", settings(ds, "manifest"))
        run("labels", d / "manifest.parquet", d / "labels", "--spec", settings(ds, "labels"), "--weights", "{}",
            "--allow-random-weights")
        run("crop-stats", d / "manifest.parquet", d / "crop_stats.json", "--spec", settings(ds, "crop_stats"))
        run("crops", d / "manifest.parquet", d / "crop_stats.json", d / "crops.zarr", "--shard", 0, "--num-shards", 1,
            "--spec", settings(ds, "crops"), "--weights", "{}", "--allow-random-weights")
    m = r / "game2real"
    run("knn", r / "game/crops.zarr", r / "photos/crops.zarr", m / "knn.zarr", "--spec", json.dumps(exp["knn"]))
    run("filter", m / "knn.zarr", r / "game/crops.zarr", r / "photos/crops.zarr", m / "matches.parquet",
        "--max-dist", exp["max_dist"])
    run("weights", m / "matches.parquet", r / "game/crops.zarr", r / "game/manifest.parquet", m / "weights.parquet")
    run("train", "--src-manifest", r / "game/manifest.parquet", "--dst-manifest", r / "photos/manifest.parquet",
        "--src-labels", r / "game/labels", "--dst-labels", r / "photos/labels", "--matches", m / "matches.parquet",
        "--pair-weights", m / "weights.parquet", "--src-crops", r / "game/crops.zarr", "--dst-crops",
        r / "photos/crops.zarr", "--checkpoints", m / "checkpoints", "--out", m / "model.pt",
        "--spec", json.dumps(exp["train"]), "--weights", "{}", "--allow-random-weights")
    run("enhance", m / "model.pt", r / "game/manifest.parquet", "-", m / "enhanced", "--spec",
        json.dumps({**exp["enhance"], "split": "all"}))

    generator, model = load_generator(m / "model.pt")
    assert generator.config.gbuffer_mode == "img" and model["gbuffers"]["channels"] == 0
    enhanced = sorted((m / "enhanced").glob("*.png"))
    assert len(enhanced) == 6 and read_image(enhanced[0]).shape == (64, 96, 3)

"""A synthetic dataset that is only a folder of frames (no G-buffers, no GT labels) can be matched and
trained: `gbuffers: none` trains the reference's image-only generator, and with `gbuffers: fake` the
materials come from the robust (MSeg) labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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


@pytest.mark.slow
def test_frames_only_dataset_is_matched_trained_and_enhanced(tmp_path):
    work = _workdir(tmp_path, "none")
    result = snakemake(work, "results/game2real/enhanced", "--configfile", "config/config.yaml", "test.yaml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    from epeflow.io import read_image
    from epeflow.models import load_generator

    generator, model = load_generator(work / "results/game2real/model.pt")
    assert generator.config.gbuffer_mode == "img" and model["gbuffers"]["channels"] == 0
    enhanced = sorted((work / "results/game2real/enhanced").glob("*.png"))
    assert enhanced and read_image(enhanced[0]).shape == (64, 96, 3)
    assert not (work / "results/datasets/game/gbuffers.zarr").exists()

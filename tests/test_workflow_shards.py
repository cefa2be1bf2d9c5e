"""Per-shard jobs through Snakemake: the tiny demo's per-frame stages planned as several shard jobs give
the same labels, G-buffers and crops as one job per stage."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from workflow_fixtures import TINY, copy_config, copy_workflow, planned_rules, snakemake

pytestmark = pytest.mark.slow

TARGETS = [f"results/datasets/demo_synth/{name}" for name in ("labels", "gbuffers.zarr", "crops.zarr")]


def _run(work: Path, shard_frames: int | None):
    """Plan and run the targets with `shard_frames` for both datasets; returns the plan."""
    config = copy_config(TINY)
    for entry in config["datasets"].values():
        entry["shard_frames"] = shard_frames
    copy_workflow(work)
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    args = ("--configfile", "config/config.yaml", "tiny.yaml", "--", *TARGETS)
    planned = snakemake(work, "-n", *args)
    result = snakemake(work, *args)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    assert planned_rules(snakemake(work, "-n", *args)) == set()  # merged outputs current, shards gone
    return planned


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_shard_jobs_give_the_outputs_of_one_job(tmp_path):
    from epeflow.artifacts.crops import CropStore
    from epeflow.artifacts.gbuffers import GBufferStore

    sharded = _run(tmp_path / "sharded", 5)  # 12 frames: 3 shards a stage
    single = _run(tmp_path / "single", None)
    for rule in ("labels_shard", "gbuffers_shard", "crops_shard"):
        assert re.search(rf"^{rule}\s+3$", sharded.stdout, re.M), sharded.stdout  # demo_synth's 3 shards
        assert re.search(rf"^{rule}\s+1$", single.stdout, re.M), single.stdout
    a, b = (tmp_path / run / "results" / "datasets" / "demo_synth" for run in ("sharded", "single"))
    assert not list((a / "labels_shards").glob("*"))  # temporary: removed once merged
    assert _files(a / "labels") == _files(b / "labels")
    ga, gb = _files(a / "gbuffers.zarr"), _files(b / "gbuffers.zarr")
    assert {k: v for k, v in ga.items() if k != "zarr.json"} == {k: v for k, v in gb.items() if k != "zarr.json"}
    # the store's fingerprint covers its frames' absolute paths: the two working directories differ there
    attrs_a, attrs_b = (dict(GBufferStore(x / "gbuffers.zarr").attrs) for x in (a, b))
    assert attrs_a.pop("fingerprint") != attrs_b.pop("fingerprint") and attrs_a == attrs_b
    ca, cb = CropStore(a / "crops.zarr"), CropStore(b / "crops.zarr")
    np.testing.assert_array_equal(ca.frame, cb.frame)
    np.testing.assert_array_equal(ca.box, cb.box)
    np.testing.assert_array_equal(ca.features[:], cb.features[:])

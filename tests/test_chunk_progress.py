"""Crops and k-NN resume chunk by chunk after a kill: same bytes as an uninterrupted run; other inputs or
settings start fresh and say why (`artifacts.chunk_progress`, test hook `EPEFLOW_STOP_AFTER_CHUNKS`)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from crop_fixtures import make_dataset

from epeflow.artifacts.chunk_progress import STOP_AFTER_ENV, ChunkProgress, StoppedForTest
from epeflow.features.crop_stats import run_crop_stats
from epeflow.features.crops import run_crops
from epeflow.io import read_json
from epeflow.matching.knn import run_knn

# chunk (4 rows) and batch (5 crops) boundaries both cut through frames (3 crops each)
SPEC = {"per_image": 3, "size": 32, "padding": "zero", "seed": 5, "batch_size": 5, "num_workers": 0, "chunk_size": 4}
SIZES = [(48, 64)] * 4 + [(40, 40)] * 3


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    manifest = make_dataset(root, "syn", SIZES, seed=0)
    stats = root / "crop_stats.json"
    run_crop_stats(manifest, stats, {"stats_frames": 5, "seed": 0}, threads=1)
    weights = {"vgg16": {}}  # not in the (empty) test hub cache: random weights
    full = root / "full.zarr"
    run_crops(manifest, stats, full, 0, 1, SPEC, weights, allow_random=True)
    return {"root": root, "manifest": manifest, "stats": stats, "weights": weights, "full": full}


def _crops(data, out, stop_after=None, monkeypatch=None, **spec):
    if stop_after is not None:
        monkeypatch.setenv(STOP_AFTER_ENV, str(stop_after))
        with pytest.raises(StoppedForTest, match="stopped after"):
            run_crops(data["manifest"], data["stats"], out, 0, 1, {**SPEC, **spec}, data["weights"], True)
        monkeypatch.delenv(STOP_AFTER_ENV)
        return
    run_crops(data["manifest"], data["stats"], out, 0, 1, {**SPEC, **spec}, data["weights"], True)


def test_killed_crops_resume_at_the_first_missing_chunk_to_the_same_bytes(data, tmp_path, monkeypatch, caplog):
    out = tmp_path / "crops.zarr"
    partial = tmp_path / "crops.zarr.partial"
    _crops(data, out, 2, monkeypatch)
    assert not out.exists() and read_json(partial / "progress.json")["done"] == 2
    with caplog.at_level(logging.INFO):
        _crops(data, out, 1, monkeypatch)  # resumed, stopped again (one write may finish several chunks)
        done = read_json(partial / "progress.json")["done"]
        assert "at chunk 2" in caplog.text and 2 < done < 5
        caplog.clear()
        _crops(data, out)
    assert f"at chunk {done}" in caplog.text and "starting fresh" not in caplog.text
    assert tree_bytes(out) == tree_bytes(data["full"])
    assert not partial.exists()


def test_crops_with_changed_settings_or_frames_start_fresh_and_say_why(data, tmp_path, monkeypatch, caplog):
    out = tmp_path / "crops.zarr"
    _crops(data, out, 1, monkeypatch)
    with caplog.at_level(logging.INFO):
        _crops(data, out, 1, monkeypatch, seed=6)
    assert "changed: store.seed" in caplog.text and "starting fresh" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        _crops(data, out)  # back to SPEC: the partial store is of seed 6, so it starts fresh again
    assert "changed: store.seed" in caplog.text and tree_bytes(out) == tree_bytes(data["full"])


def test_changed_frame_contents_start_fresh(data, tmp_path, monkeypatch, caplog):
    from epeflow.io import read_table, write_table

    root = tmp_path / "ds"
    manifest = make_dataset(root, "syn", SIZES, seed=0)
    local = {**data, "manifest": manifest}
    out = tmp_path / "crops.zarr"
    _crops(local, out, 1, monkeypatch)
    df, meta = read_table(manifest)  # a frame replaced: the manifest's digest (here: its mtime) changes
    write_table(manifest, df.assign(mtime=df["mtime"] + 1.0), meta)
    with caplog.at_level(logging.INFO):
        _crops(local, out)
    assert "changed: frames" in caplog.text


@pytest.mark.parametrize("index", ["flat", "ivf"])
def test_killed_knn_resumes_to_the_same_bytes(data, tmp_path, monkeypatch, caplog, index):
    spec = {"k": 3, "index": index, "chunk_size": 4, "nlist": 2}  # IVF: the index is rebuilt from its seed
    full, out = tmp_path / "full.zarr", tmp_path / "knn.zarr"
    run_knn(data["full"], data["full"], full, spec)
    monkeypatch.setenv(STOP_AFTER_ENV, "2")
    with pytest.raises(StoppedForTest):
        run_knn(data["full"], data["full"], out, spec)
    monkeypatch.delenv(STOP_AFTER_ENV)
    with caplog.at_level(logging.INFO):
        run_knn(data["full"], data["full"], out, spec)
    assert "at chunk 2" in caplog.text
    assert tree_bytes(out) == tree_bytes(full)
    monkeypatch.setenv(STOP_AFTER_ENV, "1")
    with pytest.raises(StoppedForTest):
        run_knn(data["full"], data["full"], out, spec)
    monkeypatch.delenv(STOP_AFTER_ENV)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run_knn(data["full"], data["full"], out, {**spec, "k": 2})
    assert "changed: settings.k" in caplog.text and "starting fresh" in caplog.text


def test_a_record_of_another_format_or_a_broken_one_starts_fresh(tmp_path, caplog):
    out = tmp_path / "x.zarr"
    job = ChunkProgress(out, {"a": 1}, "test store")
    assert job.start() == 0
    job.store.mkdir()
    job.mark_done(3)
    assert ChunkProgress(out, {"a": 1}, "test store").start() == 3
    (job.partial / "progress.json").write_text("{not json")
    with caplog.at_level(logging.INFO):
        assert ChunkProgress(out, {"a": 1}, "test store").start() == 0
    assert "starting fresh" in caplog.text


def test_killed_evaluate_reuses_the_feature_sets_it_finished(tmp_path, hub_dir, monkeypatch, caplog):
    from eval_fixtures import make_experiment

    from epeflow.config import validate_section
    from epeflow.metrics.evaluate import run_evaluate

    exp = make_experiment(tmp_path)
    settings = validate_section("evaluate", {"kid_subsets": 5, "kid_subset_size": 4, "metrics": ["kid_vgg"],
                                             "real_split": "train"}, ("test",))
    cache = tmp_path / "metrics.json.partial"

    def evaluate(**overrides):
        return run_evaluate(exp.enhanced, exp.src_manifest, exp.dst_manifest, {**settings, **overrides}, {}, True,
                            "demo", feature_cache=cache)["metrics"]

    expected = run_evaluate(exp.enhanced, exp.src_manifest, exp.dst_manifest, settings, {}, True, "demo")["metrics"]
    monkeypatch.setenv(STOP_AFTER_ENV, "2")
    with pytest.raises(StoppedForTest):
        evaluate()
    monkeypatch.delenv(STOP_AFTER_ENV)
    assert len(list(cache.glob("*.npy"))) == 2
    with caplog.at_level(logging.INFO):
        assert evaluate() == expected
    assert caplog.text.count("reusing the") == 2
    caplog.clear()
    with caplog.at_level(logging.INFO):
        evaluate(short_side=32)
    assert "reusing the" not in caplog.text and "recomputing" in caplog.text

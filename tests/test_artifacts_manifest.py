import os
import shutil

import pandas as pd
import pytest
from crop_fixtures import make_dataset
from dataset_fixtures import write_label, write_rgb

from epeflow.artifacts.manifest import load_manifest, read_frames, read_manifest_table
from epeflow.datasets.manifest import build_manifest, write_manifest
from epeflow.errors import EpeflowError
from epeflow.features.crop_stats import run_crop_stats
from epeflow.io import read_image, read_table, write_table


def test_reads_the_contract_columns(tmp_path):
    manifest = make_dataset(tmp_path, "d", [(16, 20), (18, 24)])
    frames = read_frames(manifest, extra=["split"])
    assert list(frames.columns) == ["frame", "id", "path", "height", "width", "split"]
    assert frames["height"].tolist() == [16, 18]


def test_missing_column_names_the_manifest(tmp_path):
    path = tmp_path / "manifest.parquet"
    write_table(path, pd.DataFrame({"frame": [0], "id": ["a"], "path": ["a.png"], "height": [4]}))
    with pytest.raises(EpeflowError, match=r"manifest\.parquet lacks column\(s\) width"):
        read_frames(path)


def test_frame_must_equal_row_number(tmp_path):
    manifest = make_dataset(tmp_path, "d", [(16, 20), (18, 24)])
    df, meta = read_table(manifest)
    df["frame"] = [1, 0]
    write_table(manifest, df, meta)
    with pytest.raises(EpeflowError, match="row number"):
        read_frames(manifest)


def _built(root):
    """A manifest built by the datasets stage: data/ and results/ side by side under `root`."""
    spec = {"role": "synthetic", "images": str(root / "data" / "img"), "gt_label_dir": str(root / "data" / "gt")}
    for i in range(3):
        write_rgb(root / "data" / "img" / f"f{i}.png", 12, 16, seed=i)
        write_label(root / "data" / "gt" / f"f{i}.png", 12, 16)
    out = root / "results" / "datasets" / "ds"
    write_manifest(build_manifest("ds", spec), out / "manifest.parquet", out / "skipped.tsv")
    return out / "manifest.parquet"


def test_paths_are_stored_relative_to_the_dataset_root_recorded_once(tmp_path):
    manifest = _built(tmp_path)
    raw, meta = read_table(manifest)
    assert raw["path"].tolist() == ["f0.png", "f1.png", "f2.png"]
    assert raw["gt_label_path"][0] == os.path.join("..", "gt", "f0.png")
    assert meta["paths"] == "relative" and meta["root"] == str(tmp_path / "data" / "img")
    assert meta["root_from_manifest"] == os.path.join("..", "..", "..", "data", "img")
    frames = read_frames(manifest, extra=["gt_label_path"])
    assert frames["path"][1] == str(tmp_path / "data" / "img" / "f1.png")
    assert frames["gt_label_path"][1] == str(tmp_path / "data" / "gt" / "f1.png")


def test_a_results_folder_moved_with_its_data_still_finds_every_frame(tmp_path):
    _built(tmp_path / "a")
    shutil.move(tmp_path / "a", tmp_path / "elsewhere")  # another machine, same layout below the folder
    manifest = tmp_path / "elsewhere" / "results" / "datasets" / "ds" / "manifest.parquet"
    df, _ = load_manifest(manifest)
    assert all(p.startswith(str(tmp_path / "elsewhere")) for p in [*df["path"], *df["gt_label_path"]])
    assert read_image(df["path"][2]).shape == (12, 16, 3) and os.path.exists(df["gt_label_path"][2])
    table, _ = read_manifest_table(manifest)
    assert table["path"].tolist() == df["path"].tolist()
    # a stage that reads the frames runs on the moved folder
    stats = run_crop_stats(manifest, tmp_path / "stats.json", {"stats_frames": 3, "seed": 0})
    assert len(stats["mean"]) == 3


def test_results_moved_alone_use_the_recorded_root_and_a_lost_root_is_explained(tmp_path):
    _built(tmp_path / "a")
    shutil.move(tmp_path / "a" / "results", tmp_path / "results")  # data stays where it was
    manifest = tmp_path / "results" / "datasets" / "ds" / "manifest.parquet"
    assert read_frames(manifest)["path"][0] == str(tmp_path / "a" / "data" / "img" / "f0.png")
    shutil.rmtree(tmp_path / "a")
    with pytest.raises(EpeflowError, match=r"dataset root .* is gone .*same relative layout"):
        read_frames(manifest)

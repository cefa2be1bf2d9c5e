"""Manifests: every source kind, bad frames (error or skip), splits, and reading them back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dataset_fixtures import DEMO_SPEC, truncate, write_gbuffer, write_label, write_rgb

from epeflow import io
from epeflow.artifacts.manifest import DIGEST, MANIFEST_COLUMNS, load_manifest
from epeflow.datasets.manifest import build_manifest, write_manifest
from epeflow.demo.generate import run_demo
from epeflow.errors import EpeflowError


def _folder(tmp_path, n=5, h=12, w=16):
    for i in range(n):
        write_rgb(tmp_path / "img" / f"sub{i % 2}" / f"f{i}.png", h, w, seed=i)
        write_label(tmp_path / "gt" / f"sub{i % 2}" / f"f{i}.png", h, w)
        write_gbuffer(tmp_path / "gb" / f"sub{i % 2}" / f"f{i}.npz", h, w)
    return {"role": "synthetic", "images": str(tmp_path / "img"), "gt_label_dir": str(tmp_path / "gt"),
            "gbuffer_dir": str(tmp_path / "gb")}


def _roundtrip(tmp_path, manifest):
    write_manifest(manifest, tmp_path / "out" / "manifest.parquet", tmp_path / "out" / "skipped.tsv")
    return load_manifest(tmp_path / "out" / "manifest.parquet")


def test_folder_manifest_columns_types_and_meta(tmp_path):
    df, meta = _roundtrip(tmp_path, build_manifest("ds", _folder(tmp_path), threads=2))
    assert list(df.columns) == [*MANIFEST_COLUMNS, DIGEST]
    assert df["frame"].tolist() == list(range(5))
    assert df["id"].tolist() == ["sub0__f0", "sub0__f2", "sub0__f4", "sub1__f1", "sub1__f3"]
    for col, dtype in (("frame", "int64"), ("height", "int64"), ("width", "int64"), ("frame_index", "int64"),
                       ("size", "int64"), ("mtime", "float64")):
        assert str(df[col].dtype) == dtype
    assert (df["height"] == 12).all() and (df["width"] == 16).all()
    assert df["robust_label_path"].tolist() == [None] * 5
    assert df["gt_label_path"][0].endswith("gt/sub0/f0.png") and df["gbuffer_path"][0].endswith("gb/sub0/f0.npz")
    assert set(df["split"]) <= {"train", "val", "test"} and "test" in set(df["split"])
    assert meta["dataset"] == "ds" and meta["role"] == "synthetic" and meta["kind"] == "images"
    assert meta["num_frames"] == 5 and meta["random_weights"] is False and sum(meta["splits"].values()) == 5
    assert (tmp_path / "out" / "skipped.tsv").read_text() == "path\treason\n"


def test_same_input_same_manifest_and_threads_do_not_matter(tmp_path):
    spec = _folder(tmp_path)
    a, b = build_manifest("ds", spec, threads=1), build_manifest("ds", spec, threads=3)
    pd.testing.assert_frame_equal(a.frames, b.frames)
    other_seed = build_manifest("ds", {**spec, "split": {"seed": 9, "test": 0.5, "val": 0.0}})
    assert set(other_seed.frames["split"]) == {"train", "test"}


def test_filelist_manifest(tmp_path):
    for i in range(3):
        write_rgb(tmp_path / "data" / "img" / f"{i}.png", 8, 10)
        write_label(tmp_path / "data" / "rl" / f"{i}.png", 8, 10, values=(98, 142))
        write_gbuffer(tmp_path / "data" / "gb" / f"{i}.npz", 8, 10)
        write_label(tmp_path / "data" / "gt" / f"{i}.png", 8, 10)
    lines = [f"img/{i}.png,rl/{i}.png,gb/{i}.npz,gt/{i}.png" for i in (2, 0, 1)]
    (tmp_path / "data" / "files.txt").write_text("\n".join(lines) + "\n")
    m = build_manifest("pfd", {"role": "synthetic", "filelist": str(tmp_path / "data" / "files.txt")})
    df = m.frames
    assert df["id"].tolist() == ["img__2", "img__0", "img__1"]  # the list's order is kept
    assert df["robust_label_path"][1] == str(tmp_path / "data" / "rl" / "0.png")
    assert m.meta["kind"] == "filelist" and m.meta["filelist"] == str(tmp_path / "data" / "files.txt")


def test_filelist_missing_referenced_file(tmp_path):
    write_rgb(tmp_path / "a.png", 8, 10)
    (tmp_path / "files.txt").write_text("a.png,missing_label.png\n")
    with pytest.raises(EpeflowError, match="missing_label.png"):
        build_manifest("ds", {"role": "real", "filelist": str(tmp_path / "files.txt")})


def _videos(root):
    for split, video, n in (("train", "v1", 3), ("train", "v2", 2), ("val", "v3", 2), ("test", "v4", 2)):
        for k in range(n):
            write_rgb(root / split / video / "frames" / f"{k:04d}.png", 8, 10)
            write_rgb(root / split / video / "virtual" / f"{k:04d}.png", 8, 10)
            (root / split / video / "flow").mkdir(exist_ok=True)
            np.save(root / split / video / "flow" / f"{k:04d}.npy", np.zeros(2))  # not an image: existence only


def test_video_manifest_with_split_folders_and_modalities(tmp_path):
    _videos(tmp_path / "vid")
    df, meta = _roundtrip(tmp_path, build_manifest("vids", {"role": "real", "video": str(tmp_path / "vid")}))
    assert list(df.columns) == [*MANIFEST_COLUMNS, DIGEST, "mod_flow", "mod_virtual"]
    assert df.groupby("sequence")["split"].first().to_dict() == {"v1": "train", "v2": "train", "v3": "val",
                                                                 "v4": "test"}
    assert df.loc[df["sequence"] == "v1", "frame_index"].tolist() == [0, 1, 2]
    assert df["mod_flow"][0].endswith(".npy") and df["mod_virtual"][0].endswith("virtual/0000.png")
    assert meta["split_by"] == "folders" and meta["modalities"] == ["flow", "virtual"]


def test_video_manifest_split_by_sequence(tmp_path):
    for v in range(6):
        for k in range(3):
            write_rgb(tmp_path / "vid" / f"video{v}" / "frames" / f"{k}.png", 8, 10)
    df = build_manifest("vids", {"role": "real", "video": str(tmp_path / "vid")}).frames
    assert (df.groupby("sequence")["split"].nunique() == 1).all()  # no sequence straddles splits
    assert "test" in set(df["split"]) and "train" in set(df["split"])


def test_demo_manifest(tmp_path):
    run_demo(tmp_path / "demo", {"role": "synthetic", **DEMO_SPEC})
    m = build_manifest("demo_synth", {"role": "synthetic", "gbuffers": "real", **DEMO_SPEC}, demo_dir=tmp_path / "demo")
    df = m.frames
    assert len(df) == 6 and (df["height"] == 32).all() and (df["width"] == 48).all()
    assert df["sequence"].tolist() == ["s00", "s00", "s01", "s01", "s02", "s02"]
    assert (df.groupby("sequence")["split"].nunique() == 1).all() and "test" in set(df["split"])
    assert df["gbuffer_path"].notna().all() and df["gt_label_path"].notna().all()
    assert m.meta["gbuffer_names"][:4] == ["depth", "normal_x", "normal_y", "normal_z"]
    assert m.meta["split_by"] == "sequence" and m.meta["gbuffer_key"] == "data"


def test_bad_frame_errors_by_default_and_is_skipped_on_request(tmp_path):
    spec = _folder(tmp_path)
    truncate(tmp_path / "img" / "sub1" / "f1.png", 0.5)
    write_label(tmp_path / "gt" / "sub0" / "f2.png", 5, 16)  # wrong size
    with pytest.raises(EpeflowError, match=r"sub0/f2.png.*on_bad_frame: skip"):
        build_manifest("ds", spec)
    m = build_manifest("ds", {**spec, "on_bad_frame": "skip"})
    df, _ = _roundtrip(tmp_path, m)
    assert df["id"].tolist() == ["sub0__f0", "sub0__f4", "sub1__f3"] and df["frame"].tolist() == [0, 1, 2]
    skipped = (tmp_path / "out" / "skipped.tsv").read_text().splitlines()
    assert skipped[0] == "path\treason" and len(skipped) == 3
    assert skipped[1].startswith(str(tmp_path / "img" / "sub0" / "f2.png") + "\t") and "is 16x5" in skipped[1]
    assert skipped[2].startswith(str(tmp_path / "img" / "sub1" / "f1.png") + "\t") and "truncated" in skipped[2]


def test_gbuffer_of_wrong_size_and_missing_companion(tmp_path):
    spec = _folder(tmp_path, n=2)
    write_gbuffer(tmp_path / "gb" / "sub1" / "f1.npz", 12, 17)
    with pytest.raises(EpeflowError, match=r"gb/sub1/f1.npz holds shape \(12, 17, 4\)"):
        build_manifest("ds", spec)
    (tmp_path / "gb" / "sub1" / "f1.npz").unlink()
    with pytest.raises(EpeflowError, match="no G-buffer file for frame .*f1.png"):
        build_manifest("ds", spec)


def test_missing_folder_empty_dataset_duplicates_and_max_frames(tmp_path):
    with pytest.raises(EpeflowError, match=r"nowhere does not exist \(config key `datasets.ds.images`\)"):
        build_manifest("ds", {"role": "real", "images": str(tmp_path / "nowhere")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(EpeflowError, match="no frames"):
        build_manifest("ds", {"role": "real", "images": str(tmp_path / "empty")})
    write_rgb(tmp_path / "dup" / "a.png")
    write_rgb(tmp_path / "dup" / "a.jpg")
    with pytest.raises(EpeflowError, match="same id 'a'"):
        build_manifest("ds", {"role": "real", "images": str(tmp_path / "dup")})
    spec = _folder(tmp_path)
    assert len(build_manifest("ds", {**spec, "max_frames": 2}).frames) == 2
    truncate(tmp_path / "img" / "sub0" / "f0.png", 0.3)
    truncate(tmp_path / "img" / "sub0" / "f2.png", 0.3)
    with pytest.raises(EpeflowError, match="all 2 frames are bad"):
        build_manifest("ds", {**spec, "max_frames": 2, "on_bad_frame": "skip"})


def test_load_manifest_errors(tmp_path):
    with pytest.raises(EpeflowError, match="does not exist"):
        load_manifest(tmp_path / "missing.parquet")
    io.write_table(tmp_path / "other.parquet", pd.DataFrame({"a": [1]}), {"x": 1})
    with pytest.raises(EpeflowError, match="not an epeflow manifest"):
        load_manifest(tmp_path / "other.parquet")
    (tmp_path / "junk.parquet").write_text("junk")
    with pytest.raises(EpeflowError, match="not a readable parquet"):
        load_manifest(tmp_path / "junk.parquet")

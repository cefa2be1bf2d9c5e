"""Listing frames: folders, EPE file lists, videos with modalities, generated demos."""

from __future__ import annotations

import os

import pytest
from dataset_fixtures import DEMO_SPEC, write_gbuffer, write_label, write_rgb

from epeflow.config import validate_dataset
from epeflow.datasets.sources import StemIndex, list_frames, read_filelist, source_kind, walk_files
from epeflow.demo.generate import run_demo
from epeflow.errors import EpeflowError


def _spec(**kw) -> dict:
    return validate_dataset({"role": "synthetic", **kw})


def test_walk_files_is_recursive_sorted_case_insensitive_and_skips_hidden(tmp_path):
    for rel in ("b/2.PNG", "a/1.jpg", "a/.hidden.png", ".cache/3.png", "c/notes.txt", "0.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = [os.path.relpath(p, tmp_path) for p in walk_files(tmp_path, ["png", "jpg"])]
    assert found == ["0.png", os.path.join("a", "1.jpg"), os.path.join("b", "2.PNG")]
    assert len(walk_files(tmp_path, None)) == 4


def test_stem_index_prefers_the_relative_path_then_a_unique_stem(tmp_path):
    for rel in ("x/a.npz", "y/a.npz", "y/b.npz", "frame_c/depth.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    index = StemIndex(tmp_path, ["npz", "png"], "key", folders=True)
    assert index.find("x/a") == str(tmp_path / "x" / "a.npz")
    assert index.find("other/a") is None  # two files named a: ambiguous
    assert index.find("other/b") == str(tmp_path / "y" / "b.npz")
    assert index.find("frame_c") == str(tmp_path / "frame_c")  # a folder of buffers per frame
    with pytest.raises(EpeflowError, match="cfg.key"):
        StemIndex(tmp_path / "missing", ["npz"], "cfg.key")


def test_image_folder_with_companion_folders(tmp_path):
    for name in ("city1/f1.png", "city1/f2.png", "city2/f1.png"):
        write_rgb(tmp_path / "img" / name)
        write_label(tmp_path / "gt" / name)
        write_gbuffer((tmp_path / "gb" / name).with_suffix(".npz"))
    (tmp_path / "gt" / "city2" / "f1.png").unlink()
    listing = list_frames(_spec(images=str(tmp_path / "img"), gt_label_dir=str(tmp_path / "gt"),
                                gbuffer_dir=str(tmp_path / "gb")), "ds")
    df = listing.frames
    assert listing.kind == "images"
    assert df["id"].tolist() == ["city1__f1", "city1__f2", "city2__f1"]
    assert df["gt_label_path"].tolist()[:2] == [str(tmp_path / "gt" / "city1" / f"f{i}.png") for i in (1, 2)]
    assert df["gbuffer_path"].tolist()[2] == str(tmp_path / "gb" / "city2" / "f1.npz")
    assert df["gt_label_path"][2] is None and "no GT label file" in df["problem"][2]
    assert df["problem"][:2].isna().all() and (df["sequence"] == "").all()
    with pytest.raises(EpeflowError, match=r"datasets\.ds\.images"):
        list_frames(_spec(images=str(tmp_path / "nope")), "ds")


def test_read_filelist_format(tmp_path):
    lst = tmp_path / "lists" / "files.txt"
    lst.parent.mkdir()
    lst.write_text(f"# comment\n\nimg/a.png, lab/a.png ,gb/a.npz,gt/a.png\n{tmp_path}/abs.png\nimg/b.png,,,gt/b.png\n")
    rows = read_filelist(lst, "k")
    base = tmp_path / "lists"
    assert rows[0] == [str(base / "img/a.png"), str(base / "lab/a.png"), str(base / "gb/a.npz"), str(base / "gt/a.png")]
    assert rows[1] == [str(tmp_path / "abs.png"), None, None, None]
    assert rows[2] == [str(base / "img/b.png"), None, None, str(base / "gt/b.png")]
    lst.write_text("a.png,b,c,d,e\n")
    with pytest.raises(EpeflowError, match="line 1"):
        read_filelist(lst, "k")
    lst.write_text("a.png\nb.png\na.png\n")
    with pytest.raises(EpeflowError, match="line 3.*twice"):
        read_filelist(lst, "k")
    with pytest.raises(EpeflowError, match=r"does not exist \(config key `k`\)"):
        read_filelist(tmp_path / "none.txt", "k")


def test_filelist_ids_are_relative_to_the_list_folder(tmp_path):
    write_rgb(tmp_path / "d" / "img" / "a.png")
    (tmp_path / "d" / "files.txt").write_text("img/a.png,lab/a.png\n")
    listing = list_frames(_spec(filelist=str(tmp_path / "d" / "files.txt")), "ds")
    assert listing.frames["id"].tolist() == ["img__a"]
    assert listing.frames["robust_label_path"][0] == str(tmp_path / "d" / "lab" / "a.png")


def _video(root, split, video, frames, mods=("real", "virtual"), missing=()):
    base = root / split / video if split else root / video
    for k in range(frames):
        write_rgb(base / "frames" / f"{k:05d}.png")
        for m in mods:
            if (m, k) not in missing:
                write_rgb(base / m / f"{k:05d}.png")


def test_video_with_split_folders_and_modalities(tmp_path):
    _video(tmp_path, "train", "v1", 3)
    _video(tmp_path, "test", "v2", 2, missing={("virtual", 1)})
    (tmp_path / "notes").mkdir()
    listing = list_frames(_spec(video=str(tmp_path)), "ds")
    df = listing.frames
    assert listing.extra["modalities"] == ["real", "virtual"] and listing.extra["split_folders"]
    assert df["split"].tolist() == ["test", "test", "train", "train", "train"]
    assert df["sequence"].tolist() == ["v2", "v2", "v1", "v1", "v1"]
    assert df["frame_index"].tolist() == [0, 1, 0, 1, 2]
    assert df["mod_real"][2] == str(tmp_path / "train" / "v1" / "real" / "00000.png")
    assert df["mod_virtual"][1] is None and "has no virtual file" in df["problem"][1]


def test_video_without_split_folders_and_empty_root(tmp_path):
    _video(tmp_path / "root", None, "seq_a", 2, mods=())
    df = list_frames(_spec(video=str(tmp_path / "root")), "ds").frames
    assert df["split"].isna().all() and df["sequence"].tolist() == ["seq_a", "seq_a"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(EpeflowError, match="no video frames"):
        list_frames(_spec(video=str(tmp_path / "empty")), "ds")


def test_demo_listing(tmp_path):
    run_demo(tmp_path / "demo", {"role": "synthetic", **DEMO_SPEC})
    listing = list_frames(_spec(**DEMO_SPEC), "ds", tmp_path / "demo")
    df = listing.frames
    assert df["id"].tolist() == ["s00_f0000", "s00_f0001", "s01_f0000", "s01_f0001", "s02_f0000", "s02_f0001"]
    assert df["sequence"].tolist() == ["s00", "s00", "s01", "s01", "s02", "s02"]
    assert df["frame_index"].tolist() == [0, 1, 0, 1, 0, 1]
    assert all(p.endswith(".npz") for p in df["gbuffer_path"]) and df["problem"].isna().all()
    assert listing.extra["gbuffer_names"][0] == "depth"
    with pytest.raises(EpeflowError, match="--demo-dir"):
        list_frames(_spec(**DEMO_SPEC), "ds", None)
    assert source_kind({"demo": {}}) == "demo"
    with pytest.raises(EpeflowError, match="exactly one"):
        source_kind({"images": "a", "video": "b"})


def _linked_tree(root):
    """Frames a/1.png, a/b/2.png; a/b/up -> a (a loop); alias -> a (the same folder again); a/b/3.png -> 2.png."""
    write_rgb(root / "a" / "1.png", 8, 8)
    write_rgb(root / "a" / "b" / "2.png", 8, 8, seed=1)
    os.symlink(root / "a", root / "a" / "b" / "up")
    os.symlink(root / "a", root / "alias")
    os.symlink(root / "a" / "b" / "2.png", root / "a" / "b" / "3.png")


def test_symlinks_are_followed_once_so_no_frame_is_listed_twice(tmp_path):
    images = tmp_path / "images"
    _linked_tree(images)
    listed = list_frames(_spec(images=str(images)), "d").frames
    assert [os.path.relpath(p, images) for p in listed["path"]] == [os.path.join("a", "1.png"),
                                                                     os.path.join("a", "b", "2.png")]
    assert listed["id"].is_unique
    os.symlink(images / "a" / "1.png", images / "outside.png")  # a frame linked from elsewhere still counts once
    assert len(walk_files(images, ["png"])) == 2


def test_two_symlink_loops_do_not_hang_the_listing(tmp_path):
    images = tmp_path / "images"
    _linked_tree(images)
    os.symlink(images / "a", images / "a" / "loop2")  # two loops: os.walk(followlinks) would branch forever
    code = (f"from epeflow.datasets.sources import walk_files; print(len(walk_files({str(images)!r}, ['png'])))")
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "2", done.stderr[-2000:]


def test_filelist_naming_one_image_through_a_symlink_twice_is_an_error(tmp_path):
    write_rgb(tmp_path / "a.png", 8, 8)
    os.symlink(tmp_path / "a.png", tmp_path / "b.png")
    lst = tmp_path / "files.txt"
    lst.write_text("a.png\nb.png\n")
    with pytest.raises(EpeflowError, match=r"line 2: image .*b.png is listed twice \(also on line 1 as .*a.png"):
        read_filelist(lst, "k")

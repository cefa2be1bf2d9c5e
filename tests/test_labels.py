"""Labels stage: method dispatch and a full run on a generated demo dataset."""

from __future__ import annotations

import numpy as np
import pytest
from dataset_fixtures import DEMO_SPEC, write_label, write_rgb
from gbuffers_testdata import write_dataset
from PIL import Image

from epeflow import io
from epeflow.artifacts.labels import merge_label_shards
from epeflow.common.taxonomy import universal_from_cityscapes
from epeflow.datasets.manifest import build_manifest, write_manifest
from epeflow.demo.generate import run_demo
from epeflow.errors import EpeflowError
from epeflow.labels import METHODS, run_labels


@pytest.fixture
def demo_manifest(tmp_path):
    spec = {"role": "synthetic", "labels": "gt", **DEMO_SPEC}
    run_demo(tmp_path / "demo", spec)
    write_manifest(build_manifest("demo", spec, tmp_path / "demo"), tmp_path / "manifest.parquet",
                   tmp_path / "skipped.tsv")
    return spec, tmp_path


def test_gt_labels_of_a_demo_dataset(demo_manifest):
    spec, root = demo_manifest
    info = run_labels(root / "manifest.parquet", root / "labels", spec, threads=2)
    assert info["method"] == "gt" and info["num_frames"] == 6 and info["random_weights"] is False
    assert info["settings"] == {"gt_label_ids": "cityscapes"}
    label = np.asarray(Image.open(root / "labels" / "s01_f0001.png"))
    gt = np.asarray(Image.open(root / "demo" / "gt_labels" / "s01_f0001.png"))
    assert np.array_equal(label, universal_from_cityscapes(gt))
    assert len(list((root / "labels").glob("*.png"))) == 6


def test_given_labels_from_a_file_list(tmp_path):
    write_rgb(tmp_path / "img" / "a.png", 6, 8)
    write_label(tmp_path / "rl" / "a.png", 6, 8, values=(98, 142))
    (tmp_path / "files.txt").write_text("img/a.png,rl/a.png\n")
    spec = {"role": "real", "filelist": str(tmp_path / "files.txt"), "labels": "given"}
    write_manifest(build_manifest("ds", spec), tmp_path / "m.parquet", tmp_path / "s.tsv")
    run_labels(tmp_path / "m.parquet", tmp_path / "labels", spec)
    out = np.asarray(Image.open(tmp_path / "labels" / "img__a.png"))
    assert set(np.unique(out).tolist()) == {98, 142}


def test_every_configurable_method_is_dispatched(demo_manifest, hub_dir):
    assert set(METHODS) == {"gt", "given", "mseg"}
    spec, root = demo_manifest
    with pytest.raises(EpeflowError, match="mseg weights not found"):  # weights reach the MSeg factory
        run_labels(root / "manifest.parquet", root / "labels", {**spec, "labels": "mseg"}, weights={})
    assert not (root / "labels").exists()


def test_gt_without_gt_labels_names_the_frame(tmp_path):
    write_rgb(tmp_path / "img" / "a.png", 6, 8)
    spec = {"role": "real", "images": str(tmp_path / "img"), "labels": "gt"}
    write_manifest(build_manifest("ds", spec), tmp_path / "m.parquet", tmp_path / "s.tsv")
    with pytest.raises(EpeflowError, match=r"img/a.png has no GT label"):
        run_labels(tmp_path / "m.parquet", tmp_path / "labels", spec)
    assert not (tmp_path / "labels").exists()


MSEG_SPEC = {"role": "real", "images": "unused", "labels": "mseg", "mseg": {"base_size": 24, "crop": 33}}


@pytest.mark.parametrize("changed, resumed", [({"batch_size": 2}, True), ({"flip": False}, False)])
def test_a_restart_with_other_mseg_settings_starts_over(tmp_path, hub_dir, changed, resumed):
    """A killed MSeg run resumes only when the settings that decide the maps are the same."""
    manifest, _ = write_dataset(tmp_path, [(24, 40), (24, 40)], channels=1)
    second = tmp_path / "images" / "f001.png"
    good = second.read_bytes()
    second.write_bytes(b"not a png")  # the first run dies on this frame, after finishing f000
    with pytest.raises(EpeflowError, match="corrupt"):
        run_labels(manifest, tmp_path / "labels", MSEG_SPEC, allow_random=True)
    second.write_bytes(good)
    finished = io.partial_dir(tmp_path / "labels") / "f000.png"
    assert finished.exists()
    io.write_png(finished, np.full((24, 40), 7, np.uint8))  # marked, to see whether the rerun keeps it
    spec = {**MSEG_SPEC, "mseg": {**MSEG_SPEC["mseg"], **changed}}
    info = run_labels(manifest, tmp_path / "labels", spec, allow_random=True)
    kept = (io.read_label(tmp_path / "labels" / "f000.png") == 7).all()
    assert kept == resumed
    assert info["settings"]["base_size"] == 24 and info["settings"]["flip"] == ("flip" not in changed)
    assert io.read_json(tmp_path / "labels" / "labels.json")["settings"] == info["settings"]


def _folder_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("num_shards", [1, 2, 4, 8])
def test_merged_shards_equal_one_job_byte_for_byte(demo_manifest, num_shards):
    spec, root = demo_manifest
    run_labels(root / "manifest.parquet", root / "one", spec)
    shards = [root / f"shards{num_shards}" / f"{i}" for i in range(num_shards)]
    for i, folder in enumerate(shards):  # 8 shards of 6 frames: two are empty
        run_labels(root / "manifest.parquet", folder, spec, shard=i, num_shards=num_shards)
    merge_label_shards(list(reversed(shards)), root / f"merged{num_shards}")
    assert _folder_bytes(root / f"merged{num_shards}") == _folder_bytes(root / "one")


def test_merge_refuses_missing_or_mixed_shards(demo_manifest):
    spec, root = demo_manifest
    for i in range(3):
        run_labels(root / "manifest.parquet", root / f"s{i}", spec, shard=i, num_shards=3)
    with pytest.raises(EpeflowError, match=r"leaves frames 2\.\.3 out"):
        merge_label_shards([root / "s0", root / "s2"], root / "merged")
    with pytest.raises(EpeflowError, match=r"cover frames 0\.\.3 of 6; a shard is missing"):
        merge_label_shards([root / "s0", root / "s1"], root / "merged")
    run_labels(root / "manifest.parquet", root / "one", spec)
    with pytest.raises(EpeflowError, match="not a labels shard"):
        merge_label_shards([root / "one"], root / "merged")

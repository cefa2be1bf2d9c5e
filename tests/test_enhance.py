from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from train_fixtures import TINY_TRAIN, make_experiment, one_torch_thread

from epeflow.artifacts.gbuffers import GBufferStore
from epeflow.common.runtime import Runtime
from epeflow.common.taxonomy import materials_from_cityscapes
from epeflow.enhance import MODEL_MARKER, enhance_frame, merge_enhanced_shards, run_enhance, select_frames
from epeflow.errors import EpeflowError
from epeflow.io import read_image, read_label, read_table, write_png, write_table
from epeflow.models import load_generator
from epeflow.train import run_train


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("enhance")
    exp = make_experiment(root, size=(36, 52))  # frames 1 and 3 are in the test split
    missing: dict = {}  # the hub cache is empty: random weights
    models = []
    for seed in (1, 2):
        out = root / f"model-{seed}.pt"
        run_train(**exp.train_args(out, root / f"ckpt-{seed}"), spec={**TINY_TRAIN, "iterations": 1, "seed": seed},
                     weights=missing, allow_random=True)
        models.append(out)
    return exp, models


def test_enhances_the_test_split_with_an_index(trained, tmp_path):
    exp, (model, _) = trained
    out = tmp_path / "enhanced"
    index = run_enhance(model, exp.src_manifest, exp.gbuffers, out, {})
    manifest, _ = read_table(exp.src_manifest)
    test = manifest[manifest["split"] == "test"]
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{i}.png" for i in test["id"]] + ["index.parquet"])
    assert not (tmp_path / "enhanced.partial").exists()
    table, meta = read_table(out / "index.parquet")
    assert list(table.columns) == ["frame", "id", "source_path", "enhanced_path", "height", "width"]
    assert table["frame"].tolist() == test["frame"].tolist() == index["frame"].tolist()
    assert meta["random_weights"] is True and "not a real measurement" in meta["warning"]

    # each PNG is the generator's output on the whole frame with its G-buffers and materials
    row = test.iloc[0]
    generator, _ = load_generator(model)
    image = read_image(row["path"])
    gbuffers = GBufferStore(exp.gbuffers).read(int(row["frame"]))
    materials = materials_from_cityscapes(read_label(row["gt_label_path"]))
    expected = enhance_frame(generator, image, gbuffers, materials, Runtime.detect(False, "cpu"))
    written = read_image(out / f"{row['id']}.png")
    # frames are batched (enhance.batch_size), and a batched convolution may round a last bit differently
    assert written.shape == (36, 52, 3) and np.abs(written.astype(int) - expected.astype(int)).max() <= 1


def test_a_rerun_keeps_finished_frames_of_the_same_model_only(trained, tmp_path):
    exp, (model, other_model) = trained
    manifest, meta = read_table(exp.src_manifest)
    broken = manifest.copy()
    broken.loc[3, "path"] = str(tmp_path / "missing.png")  # the second test frame fails: a killed job
    write_table(tmp_path / "manifest.parquet", broken, meta)
    out = tmp_path / "enhanced"
    with pytest.raises(EpeflowError, match="missing.png"):
        run_enhance(model, tmp_path / "manifest.parquet", exp.gbuffers, out, {})
    partial = tmp_path / "enhanced.partial"
    done = partial / f"{manifest.loc[1, 'id']}.png"
    assert done.exists() and (partial / MODEL_MARKER).exists()

    sentinel = np.zeros((36, 52, 3), dtype=np.uint8)
    write_png(done, sentinel)  # if the rerun recomputed this frame, the sentinel would be gone
    run_enhance(model, exp.src_manifest, exp.gbuffers, out, {})
    assert np.array_equal(read_image(out / done.name), sentinel)
    assert (out / f"{manifest.loc[3, 'id']}.png").exists()

    with pytest.raises(EpeflowError):
        run_enhance(model, tmp_path / "manifest.parquet", exp.gbuffers, out, {})
    write_png(done, sentinel)
    run_enhance(other_model, exp.src_manifest, exp.gbuffers, out, {})  # another model: its own frames only
    assert not np.array_equal(read_image(out / done.name), sentinel)


def test_split_and_max_frames_select_frames(trained, tmp_path):
    exp, (model, _) = trained
    index = run_enhance(model, exp.src_manifest, exp.gbuffers, tmp_path / "all", {"split": "all", "max_frames": 3})
    assert index["frame"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in (tmp_path / "all").glob("*.png")) == sorted(f"{i}.png" for i in index["id"])
    manifest = pd.DataFrame({"frame": [2, 0, 1], "split": ["test", "train", "test"]})
    assert select_frames(manifest, "test", None)["frame"].tolist() == [1, 2]
    assert select_frames(manifest, "all", 2)["frame"].tolist() == [0, 1]


def test_gbuffers_must_match_the_trained_channels(trained, tmp_path):
    exp, (model, _) = trained
    saved = torch.load(model, weights_only=True)
    saved["gbuffers"]["names"] = ["depth", "normal_x", "normal_y"]
    torch.save(saved, tmp_path / "model.pt")
    with pytest.raises(EpeflowError, match="trained on"):
        run_enhance(tmp_path / "model.pt", exp.src_manifest, exp.gbuffers, tmp_path / "out", {})


def test_bad_settings_and_models_are_named(trained, tmp_path):
    exp, (model, _) = trained
    with pytest.raises(EpeflowError, match="enhance.split"):
        run_enhance(model, exp.src_manifest, exp.gbuffers, tmp_path / "out", {"split": "holdout"})
    (tmp_path / "model.pt").write_bytes(b"not a model")
    with pytest.raises(EpeflowError, match="cannot be read"):
        run_enhance(tmp_path / "model.pt", exp.src_manifest, exp.gbuffers, tmp_path / "out", {})


def test_enhance_frame_handles_any_size():
    torch.manual_seed(0)
    from epeflow.models.ienet import IENet, IENetConfig

    gen = IENet(IENetConfig(gbuffer_mode="all", gbuffer_channels=2, class_slices=(), num_stages=2,
                            num_gbuffer_layers=1, width=0.125)).eval()
    image = np.random.default_rng(0).integers(0, 256, (13, 21, 3), dtype=np.uint8)
    out = enhance_frame(gen, image, np.zeros((2, 13, 21), np.float32), np.ones((12, 13, 21), np.float32) / 12,
                        Runtime.detect(False, "cpu"))
    assert out.shape == (13, 21, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - image.astype(int)).max() <= 3  # a fresh generator is nearly the identity


@pytest.mark.parametrize("num_shards", [2, 3, 5])
def test_merged_shards_equal_one_job(trained, tmp_path, num_shards):
    """Frames one by one (batch_size 1: a batched convolution may round a last bit differently, so only
    unbatched frames are byte-stable across shard counts); 5 shards of 4 frames: one is empty."""
    exp, (model, _) = trained
    spec = {"split": "all", "batch_size": 1}
    one = run_enhance(model, exp.src_manifest, exp.gbuffers, tmp_path / "one", spec)
    shards = [tmp_path / f"shard{i}" for i in range(num_shards)]
    for i, folder in enumerate(shards):
        run_enhance(model, exp.src_manifest, exp.gbuffers, folder, spec, shard=i, num_shards=num_shards)
    merged = merge_enhanced_shards(shards[::-1], tmp_path / "merged")
    assert len(one) == 4
    for frame_id in one["id"]:
        name = f"{frame_id}.png"
        assert (tmp_path / "merged" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    a, meta_a = read_table(tmp_path / "one" / "index.parquet")
    b, meta_b = read_table(tmp_path / "merged" / "index.parquet")
    assert meta_a == meta_b
    pd.testing.assert_frame_equal(a.drop(columns="enhanced_path"), b.drop(columns="enhanced_path"))
    assert b["enhanced_path"].tolist() == [str(tmp_path / "merged" / f"{i}.png") for i in merged["id"]]
    with pytest.raises(EpeflowError, match="a shard is missing"):
        merge_enhanced_shards(shards[:-1], tmp_path / "bad")


def test_frames_without_gt_labels_take_materials_from_the_robust_labels(trained, tmp_path):
    from epeflow.common.taxonomy import materials_from_universal

    exp, (model, _) = trained
    manifest, meta = read_table(exp.src_manifest)
    write_table(tmp_path / "manifest.parquet", manifest.assign(gt_label_path=None), meta)
    with pytest.raises(EpeflowError, match="--labels"):
        run_enhance(model, tmp_path / "manifest.parquet", exp.gbuffers, tmp_path / "none", {})
    out = tmp_path / "enhanced"
    run_enhance(model, tmp_path / "manifest.parquet", exp.gbuffers, out, {"max_frames": 1}, labels=exp.src_labels)
    row = manifest[manifest["split"] == "test"].iloc[0]
    materials = materials_from_universal(read_label(exp.src_labels / f"{row['id']}.png"))
    generator, _ = load_generator(model)
    expected = enhance_frame(generator, read_image(row["path"]), GBufferStore(exp.gbuffers).read(int(row["frame"])),
                             materials, Runtime.detect(False, "cpu"))
    assert np.abs(read_image(out / f"{row['id']}.png").astype(int) - expected.astype(int)).max() <= 1


def test_a_split_without_frames_is_an_error_naming_dataset_and_split(trained, tmp_path):
    exp, (model, _) = trained
    manifest, meta = read_table(exp.src_manifest)
    manifest["split"] = "train"  # no test frames left
    write_table(tmp_path / "manifest.parquet", manifest, meta)
    with pytest.raises(EpeflowError, match=rf"dataset {meta['dataset']!r} .* has no frames in split 'test' "
                                           rf"\(it has: train {len(manifest)}\)"):
        run_enhance(model, tmp_path / "manifest.parquet", exp.gbuffers, tmp_path / "out", {})
    assert not (tmp_path / "out").exists()

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from crop_fixtures import make_crop_store
from train_fixtures import make_experiment, one_torch_thread

from epeflow.artifacts.crops import CropStore
from epeflow.artifacts.gbuffers import GBufferStore
from epeflow.artifacts.matches import load_pairs
from epeflow.common.taxonomy import materials_from_cityscapes
from epeflow.errors import EpeflowError
from epeflow.io import read_image, read_label, read_table, write_table
from epeflow.train.data import (
    MatchedPairs,
    PairBatches,
    WeightedPairSampler,
    check_crop_sizes,
    load_frames,
    make_loader,
    training_crop,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return make_experiment(tmp_path_factory.mktemp("exp"))


def _dataset(exp, crop_size=None, flip=False, seed=0) -> MatchedPairs:
    pairs = load_pairs(exp.matches, exp.pair_weights, exp.src_crops, exp.dst_crops)
    src, _ = load_frames(exp.src_manifest)
    dst, _ = load_frames(exp.dst_manifest)
    return MatchedPairs(pairs, src, dst, exp.src_labels, exp.dst_labels, exp.gbuffers, crop_size, flip, seed)


def test_a_sample_is_the_matched_crops_with_everything_the_networks_need(exp):
    ds = _dataset(exp)
    matches, _ = read_table(exp.matches)
    src_manifest, _ = read_table(exp.src_manifest)
    dst_manifest, _ = read_table(exp.dst_manifest)
    src_crops, dst_crops = CropStore(exp.src_crops, dim=None), CropStore(exp.dst_crops, dim=None)
    s, d = int(matches["src_crop"].iloc[5]), int(matches["dst_crop"].iloc[5])
    item = ds[(5, 0)]
    r0, r1, c0, c1 = (int(v) for v in src_crops.box[s])
    frame = src_manifest.iloc[int(src_crops.frame[s])]
    image = read_image(frame["path"])[r0:r1, c0:c1]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 24, 24)
    assert torch.allclose(item["image"], torch.from_numpy(image.transpose(2, 0, 1) / 255.0).float())
    store = GBufferStore(exp.gbuffers)
    expected = store.read_crop(int(src_crops.frame[s]), (r0, r1, c0, c1), normalize=True)
    assert torch.allclose(item["gbuffers"], torch.from_numpy(expected))
    gt = read_label(frame["gt_label_path"])[r0:r1, c0:c1]
    assert torch.equal(item["materials"], torch.from_numpy(materials_from_cityscapes(gt)))
    assert torch.equal(item["materials"].sum(0), torch.ones(24, 24))
    labels = read_label(exp.src_labels / f"{frame['id']}.png")[r0:r1, c0:c1]
    assert item["labels"].dtype == torch.int64 and torch.equal(item["labels"], torch.from_numpy(labels).long())
    d0, d1, e0, e1 = (int(v) for v in dst_crops.box[d])
    real_frame = dst_manifest.iloc[int(dst_crops.frame[d])]
    real = read_image(real_frame["path"])[d0:d1, e0:e1]
    assert torch.allclose(item["real"], torch.from_numpy(real.transpose(2, 0, 1) / 255.0).float())
    real_labels = read_label(exp.dst_labels / f"{real_frame['id']}.png")[d0:d1, e0:e1]
    assert torch.equal(item["real_labels"], torch.from_numpy(real_labels).long())
    assert int(item["pair"]) == 5


def test_random_choices_depend_on_the_sample_number_only(exp):
    ds = _dataset(exp, crop_size=16, flip=True)
    a, b = ds[(3, 7)], _dataset(exp, crop_size=16, flip=True)[(3, 7)]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["image"].shape == (3, 16, 16) and a["gbuffers"].shape == (3, 16, 16)
    others = [ds[(3, s)]["image"] for s in range(8)]
    assert any(not torch.equal(others[0], o) for o in others[1:])


def test_flips_mirror_image_and_conditioning_together(exp):
    plain, flipping = _dataset(exp), _dataset(exp, flip=True)
    flipped = 0
    for sample in range(8):
        a, b = plain[(2, sample)], flipping[(2, sample)]
        if torch.equal(a["image"], b["image"]):
            continue
        flipped += 1
        for key in ("image", "gbuffers", "materials", "labels"):
            assert torch.equal(b[key], a[key].flip(-1))
    assert 0 < flipped < 8


def test_training_crop_lies_inside_the_matched_crop():
    rng = np.random.default_rng(0)
    box = np.array([10, 34, 5, 29])
    assert training_crop(box, None, rng) == (10, 34, 5, 29)
    for _ in range(50):
        r0, r1, c0, c1 = training_crop(box, 16, rng)
        assert (r1 - r0, c1 - c0) == (16, 16) and 10 <= r0 < r1 <= 34 and 5 <= c0 < c1 <= 29


def test_crop_size_checks(exp):
    pairs = load_pairs(exp.matches, exp.pair_weights, exp.src_crops, exp.dst_crops)
    assert check_crop_sizes(pairs, None) == (24, 24)
    assert check_crop_sizes(pairs, 16) == (16, 16)
    with pytest.raises(EpeflowError, match="train.crop_size"):
        check_crop_sizes(pairs, 32)


def test_weights_of_other_matches_are_refused(exp, tmp_path):
    write_table(tmp_path / "w.parquet", pd.DataFrame({"weight": [1.0, 2.0]}))
    with pytest.raises(EpeflowError, match="different runs"):
        load_pairs(exp.matches, tmp_path / "w.parquet", exp.src_crops, exp.dst_crops)
    matches, _ = read_table(exp.matches)
    write_table(tmp_path / "m.parquet", matches.drop(columns=["dst_crop"]))
    with pytest.raises(EpeflowError, match="dst_crop"):
        load_pairs(tmp_path / "m.parquet", exp.pair_weights, exp.src_crops, exp.dst_crops)


def test_crops_of_other_stores_are_refused(exp, tmp_path):
    other = make_crop_store(tmp_path / "other.zarr", [0, 1], [[0, 24, 0, 24]] * 2, np.zeros((2, 8)))
    with pytest.raises(EpeflowError, match="target crops with 12 rows"):
        load_pairs(exp.matches, exp.pair_weights, exp.src_crops, other)


def test_batches_follow_the_sampler_and_remember_its_state_before_each_step(exp):
    weights = load_pairs(exp.matches, exp.pair_weights, exp.src_crops, exp.dst_crops).weight
    batches = PairBatches(WeightedPairSampler(weights, 1), batch_size=3, start=0, stop=5)
    reference = WeightedPairSampler(weights, 1)
    it = iter(batches)
    keys = [next(it) for _ in range(4)]  # a loader prefetches ahead of training like this
    assert keys[0] == [(int(p), i) for i, p in enumerate(reference.draw(3))]
    assert [k[1] for k in keys[2]] == [6, 7, 8]
    resumed = WeightedPairSampler(weights, 1)
    resumed.load_state_dict(batches.state_before(2))  # a checkpoint after step 1 stores this
    assert [int(p) for p in resumed.draw(3)] == [k[0] for k in keys[2]]
    assert len(batches) == 5


def test_sharding_splits_each_global_batch(exp):
    weights = load_pairs(exp.matches, exp.pair_weights, exp.src_crops, exp.dst_crops).weight
    whole = next(iter(PairBatches(WeightedPairSampler(weights, 1), 4, 0, 1)))
    parts = [next(iter(PairBatches(WeightedPairSampler(weights, 1), 4, 0, 1, shard=lambda k, r=r: k[r::2])))
             for r in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(whole)


def test_loader_batches_do_not_depend_on_workers(exp):
    weights = load_pairs(exp.matches, exp.pair_weights, exp.src_crops, exp.dst_crops).weight
    ds = _dataset(exp, crop_size=16, flip=True)
    runs = []
    for workers in (0, 2):
        loader = make_loader(ds, PairBatches(WeightedPairSampler(weights, 4), 2, 0, 3), workers, pin_memory=False)
        runs.append(list(loader))
    assert len(runs[0]) == 3
    for a, b in zip(*runs, strict=True):
        assert a["image"].shape == (2, 3, 16, 16)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_pairs_must_refer_to_manifest_frames(exp, tmp_path):
    store = CropStore(exp.dst_crops, dim=None)
    frame = store.frame.copy()
    frame[0] = 99
    dst_crops = make_crop_store(tmp_path / "dst.zarr", frame, store.box, np.zeros((len(frame), 8)), num_frames=100)
    pairs = load_pairs(exp.matches, exp.pair_weights, exp.src_crops, dst_crops)
    src, _ = load_frames(exp.src_manifest)
    dst, _ = load_frames(exp.dst_manifest)
    with pytest.raises(EpeflowError, match="dst frame 99"):
        MatchedPairs(pairs, src, dst, exp.src_labels, exp.dst_labels, exp.gbuffers, None, False, 0)


def test_frames_without_gt_labels_take_their_materials_from_the_robust_labels(exp, tmp_path):
    from epeflow.common.taxonomy import materials_from_universal

    manifest, meta = read_table(exp.src_manifest)
    manifest["gt_label_path"] = None
    write_table(tmp_path / "manifest.parquet", manifest, meta)
    pairs = load_pairs(exp.matches, exp.pair_weights, exp.src_crops, exp.dst_crops)
    src, _ = load_frames(tmp_path / "manifest.parquet")
    dst, _ = load_frames(exp.dst_manifest)
    item = MatchedPairs(pairs, src, dst, exp.src_labels, exp.dst_labels, exp.gbuffers, None, False, 0)[(0, 0)]
    expected = materials_from_universal(item["labels"].numpy().astype(np.uint8))
    assert torch.equal(item["materials"], torch.from_numpy(expected))
    assert torch.equal(item["materials"].sum(0), torch.ones(item["image"].shape[1:]))


def test_image_only_samples_carry_no_gbuffers_or_materials(exp, tmp_path):
    """Without a G-buffer store (frames-only datasets: the reference's `img` mode) a sample has empty
    G-buffers and materials and needs no GT labels."""
    manifest, meta = read_table(exp.src_manifest)
    manifest["gt_label_path"] = None
    write_table(tmp_path / "manifest.parquet", manifest, meta)
    pairs = load_pairs(exp.matches, exp.pair_weights, exp.src_crops, exp.dst_crops)
    src, _ = load_frames(tmp_path / "manifest.parquet")
    dst, _ = load_frames(exp.dst_manifest)
    item = MatchedPairs(pairs, src, dst, exp.src_labels, exp.dst_labels, None, None, False, 0)[(0, 0)]
    assert item["gbuffers"].shape == item["materials"].shape == (0, *item["image"].shape[1:])
    assert item["labels"].shape == item["image"].shape[1:]

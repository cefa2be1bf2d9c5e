import pickle

import numpy as np
import pytest

from epeflow.artifacts.gbuffers import GBufferStore, GBufferWriter
from epeflow.common.resample import upsample
from epeflow.errors import EpeflowError

FULL = np.array([[20, 30], [20, 30], [16, 24]])


def _writer(out, stored, fp="a", names=("a", "b")):
    return GBufferWriter(out, mode="fake", names=list(names), frame_sizes=FULL, stored_sizes=stored, fingerprint=fp,
                         chunk=8, flush_every=1)


def _frames(stored, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((2, h, w)) * [[[2.0]], [[0.5]]] + [[[1.0]], [[-3.0]]]).astype(np.float32)
            for h, w in stored.tolist()]


def test_round_trip_at_feature_resolution(tmp_path):
    stored = np.array([[8, 12], [8, 12], [5, 9]])
    frames = _frames(stored)
    writer = _writer(tmp_path / "g.zarr", stored)
    for i, f in enumerate(frames):
        writer.write(i, f)
    writer.finish({"random_weights": True})
    assert not (tmp_path / "g.zarr.partial").exists()
    store = GBufferStore(tmp_path / "g.zarr")
    assert (store.channels, store.names, store.mode, store.random_weights, len(store)) == (2, ["a", "b"], "fake",
                                                                                          True, 3)
    raw = [f.astype(np.float16).astype(np.float32) for f in frames]
    flat = np.concatenate([r.reshape(2, -1) for r in raw], axis=1)
    np.testing.assert_allclose(store.mean, flat.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(store.std, flat.std(axis=1), rtol=1e-6)
    for i in range(3):
        size = store.frame_size(i)
        out = store.read(i, normalize=False)
        assert out.shape == (2, *size) and out.dtype == np.float32
        np.testing.assert_allclose(out, upsample(raw[i], size), atol=1e-5)
        normed = store.read(i)
        np.testing.assert_allclose(normed, (out - store.mean[:, None, None]) / store.std[:, None, None], atol=1e-5)
        box = (3, size[0] - 2, 5, size[1] - 7)
        crop = store.read_crop(i, box)
        np.testing.assert_allclose(crop, normed[:, box[0] : box[1], box[2] : box[3]], atol=1e-5)
        np.testing.assert_allclose(store.read(i, size=(11, 13), normalize=False), upsample(raw[i], (11, 13)),
                                   atol=1e-5)


def test_full_resolution_crop_is_a_plain_slice(tmp_path):
    frames = _frames(FULL)
    writer = _writer(tmp_path / "g.zarr", FULL)
    for i, f in enumerate(frames):
        writer.write(i, f)
    writer.finish({})
    store = GBufferStore(tmp_path / "g.zarr")
    assert store.attrs["resolution"] == "full"
    np.testing.assert_array_equal(store.read_crop(2, (1, 9, 0, 24), normalize=False),
                                  frames[2].astype(np.float16)[:, 1:9, :].astype(np.float32))
    with pytest.raises(ValueError, match="does not lie inside"):
        store.read_crop(2, (0, 17, 0, 4))
    with pytest.raises(IndexError):
        store.read(3)


def test_resume_keeps_written_frames_and_restarts_on_other_settings(tmp_path):
    stored = np.array([[8, 12], [8, 12], [5, 9]])
    frames = _frames(stored)
    writer = _writer(tmp_path / "g.zarr", stored)
    writer.write(1, frames[1])
    del writer  # killed here: the partial store stays
    again = _writer(tmp_path / "g.zarr", stored)
    assert again.pending().tolist() == [0, 2]
    other = _writer(tmp_path / "g.zarr", stored, fp="b")
    assert other.pending().tolist() == [0, 1, 2]


def test_finish_refuses_missing_frames_and_reader_refuses_unfinished_store(tmp_path):
    stored = np.array([[8, 12], [8, 12], [5, 9]])
    writer = _writer(tmp_path / "g.zarr", stored)
    writer.write(0, _frames(stored)[0])
    with pytest.raises(RuntimeError, match="2 frames were not written"):
        writer.finish({})
    with pytest.raises(EpeflowError, match="not a finished G-buffer store"):
        GBufferStore(tmp_path / "g.zarr.partial")
    with pytest.raises(EpeflowError, match="does not exist"):
        GBufferStore(tmp_path / "nothing.zarr")


def test_writer_rejects_wrong_shapes_and_non_finite_values(tmp_path):
    stored = np.array([[8, 12], [8, 12], [5, 9]])
    writer = _writer(tmp_path / "g.zarr", stored)
    with pytest.raises(ValueError, match="expected"):
        writer.write(0, np.zeros((2, 5, 9), np.float32))
    bad = np.zeros((2, 8, 12), np.float32)
    bad[0, 0, 0] = 1e6  # beyond float16
    with pytest.raises(EpeflowError, match="NaN / inf"):
        writer.write(0, bad)


def test_store_pickles_for_dataloader_workers(tmp_path):
    stored = np.array([[8, 12], [8, 12], [5, 9]])
    writer = _writer(tmp_path / "g.zarr", stored)
    for i, f in enumerate(_frames(stored)):
        writer.write(i, f)
    writer.finish({})
    store = GBufferStore(tmp_path / "g.zarr")
    before = store.read(1)
    copy = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(copy.read(1), before)

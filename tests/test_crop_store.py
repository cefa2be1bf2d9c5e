import numpy as np
import pytest
import zarr
from crop_fixtures import make_crop_store, random_crop_store

from epeflow.artifacts.crops import CropStore, merge_crop_stores
from epeflow.errors import EpeflowError


def _shard(path, frames, start, stop, per_image=3, seed=0, **attrs):
    rng = np.random.default_rng(seed)
    frame = np.repeat(np.arange(start, stop), per_image)
    box = np.tile([0, 8, 0, 8], (len(frame), 1)) + rng.integers(0, 4, (len(frame), 1))
    features = rng.random((len(frame), 512))
    return make_crop_store(path, frame, box, features, num_frames=frames, frames=[start, stop], **attrs)


def test_reader_exposes_arrays_attrs_and_chunks(tmp_path):
    path = random_crop_store(tmp_path / "c.zarr", frames=4, per_image=3, size=(20, 30), seed=0, chunk_rows=5)
    store = CropStore(path)
    assert len(store) == 12 and store.dim == 512 and store.random_weights
    assert store.frame.dtype == np.int32 and store.box.dtype == np.int32 and store.box.shape == (12, 4)
    assert store.features.dtype == np.float16
    chunks = list(store.iter_chunks(5))
    assert [s for s, _ in chunks] == [0, 5, 10] and all(c.dtype == np.float32 for _, c in chunks)
    np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), store.features[:].astype(np.float32))
    assert store.attrs["feature"] == "vgg16_relu5_3" and store.attrs["complete"] is True


def test_incomplete_store_is_an_error(tmp_path):
    path = random_crop_store(tmp_path / "c.zarr", 4, 3, (20, 30), seed=0)
    group = zarr.open_group(str(path), mode="a")
    group.attrs["complete"] = False
    with pytest.raises(EpeflowError, match=r"c\.zarr is incomplete"):
        CropStore(path)


def test_missing_chunk_is_an_error(tmp_path):
    path = random_crop_store(tmp_path / "c.zarr", 4, 3, (20, 30), seed=0, chunk_rows=5)
    (path / "features" / "c" / "2" / "0").unlink()
    with pytest.raises(EpeflowError, match=r"c\.zarr: `features` has 2 of 3 chunks"):
        CropStore(path)


def test_corrupt_chunk_is_an_error_naming_the_store(tmp_path):
    path = random_crop_store(tmp_path / "c.zarr", 4, 3, (20, 30), seed=0, chunk_rows=5)
    (path / "features" / "c" / "1" / "0").write_bytes(b"not zstd")
    store = CropStore(path)
    with pytest.raises(EpeflowError, match=r"c\.zarr: rows 5\.\.10 cannot be read"):
        list(store.iter_chunks(5))


def test_wrong_feature_dimension_and_missing_array_are_errors(tmp_path):
    path = random_crop_store(tmp_path / "c.zarr", 2, 2, (20, 30), seed=0, dim=256)
    with pytest.raises(EpeflowError, match=r"c\.zarr has 256-d features, expected 512"):
        CropStore(path)
    assert CropStore(path, dim=None).dim == 256
    with pytest.raises(EpeflowError, match="does not exist"):
        CropStore(tmp_path / "missing.zarr")
    import shutil

    shutil.rmtree(path / "box")
    with pytest.raises(EpeflowError, match="has no `box` array"):
        CropStore(path, dim=None)


def test_merge_orders_shards_by_frame_and_copies_everything(tmp_path):
    a = _shard(tmp_path / "0.zarr", 7, 0, 3, seed=1)
    b = _shard(tmp_path / "1.zarr", 7, 3, 5, seed=2)
    c = _shard(tmp_path / "2.zarr", 7, 5, 7, seed=3)
    out = tmp_path / "crops.zarr"
    merge_crop_stores([c, a, b], out)
    merged = CropStore(out)
    parts = [CropStore(p) for p in (a, b, c)]
    np.testing.assert_array_equal(merged.frame, np.concatenate([p.frame for p in parts]))
    np.testing.assert_array_equal(merged.box, np.concatenate([p.box for p in parts]))
    np.testing.assert_array_equal(merged.features[:], np.concatenate([p.features[:] for p in parts]))
    assert merged.settings() == parts[0].settings() and "frames" not in merged.attrs
    assert not list(tmp_path.glob(".crops.zarr.tmp-*"))


def test_merge_refuses_shards_with_other_settings(tmp_path):
    a = _shard(tmp_path / "0.zarr", 6, 0, 3)
    b = _shard(tmp_path / "1.zarr", 6, 3, 6, seed=5, crop_size=16)
    with pytest.raises(EpeflowError, match=r"crop shard .*1\.zarr differs from .*0\.zarr in crop_size=16"):
        merge_crop_stores([a, b], tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()


def test_merge_refuses_missing_or_overlapping_shards(tmp_path):
    a = _shard(tmp_path / "0.zarr", 9, 0, 3)
    c = _shard(tmp_path / "2.zarr", 9, 6, 9)
    with pytest.raises(EpeflowError, match=r"2\.zarr \(frames 6\.\.8\) leaves frames 3\.\.5 out"):
        merge_crop_stores([a, c], tmp_path / "out.zarr")
    with pytest.raises(EpeflowError, match="overlaps"):
        merge_crop_stores([a, a], tmp_path / "out.zarr")
    with pytest.raises(EpeflowError, match="cover frames 0..2 of 9"):
        merge_crop_stores([a], tmp_path / "out.zarr")

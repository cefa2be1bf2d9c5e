import numpy as np
import pytest
from gbuffers_testdata import NAMES, write_dataset

from epeflow import io
from epeflow.artifacts.gbuffers import GBufferStore
from epeflow.errors import EpeflowError
from epeflow.gbuffers import run_gbuffers

SIZES = [(12, 20), (12, 20), (9, 14)]


def _spec(**kw):
    return {"role": "synthetic", "gbuffers": "real", **kw}


def test_npz_round_trip_and_stats(tmp_path):
    manifest, arrays = write_dataset(tmp_path, SIZES)
    run_gbuffers(manifest, tmp_path / "g.zarr", _spec(), threads=2)
    store = GBufferStore(tmp_path / "g.zarr")
    assert (store.mode, store.channels, store.names, store.random_weights) == ("real", 9, NAMES, False)
    assert store.attrs["resolution"] == "full" and store.attrs["dataset"] == "tiny"
    stored = [a.astype(np.float16).astype(np.float32).transpose(2, 0, 1) for a in arrays]
    for i, expected in enumerate(stored):
        np.testing.assert_array_equal(store.read(i, normalize=False), expected)
        np.testing.assert_array_equal(store.read_crop(i, (2, 7, 3, 9), normalize=False), expected[:, 2:7, 3:9])
    flat = np.concatenate([s.reshape(9, -1) for s in stored], axis=1).astype(np.float64)
    np.testing.assert_allclose(store.mean, flat.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(store.std, flat.std(axis=1), rtol=1e-6)
    normed = np.concatenate([store.read(i).reshape(9, -1) for i in range(3)], axis=1)
    np.testing.assert_allclose(normed.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(normed.std(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize(("group", "names"), [("geometry", ["depth", "normal_x", "normal_y", "normal_z"]),
                                               ("no_light", NAMES[:7])])
def test_channel_groups_select_by_name(tmp_path, group, names):
    manifest, arrays = write_dataset(tmp_path, SIZES)
    run_gbuffers(manifest, tmp_path / "g.zarr", _spec(gbuffer_channels=group))
    store = GBufferStore(tmp_path / "g.zarr")
    assert store.names == names and store.channels == len(names)
    index = [NAMES.index(n) for n in names]
    np.testing.assert_array_equal(store.read(2, normalize=False),
                                  arrays[2][:, :, index].astype(np.float16).astype(np.float32).transpose(2, 0, 1))


def test_names_from_config_when_files_have_none(tmp_path):
    manifest, _ = write_dataset(tmp_path, SIZES, names=None)
    with pytest.raises(EpeflowError, match="gbuffer_names"):
        run_gbuffers(manifest, tmp_path / "g.zarr", _spec(gbuffer_channels="geometry"))
    run_gbuffers(manifest, tmp_path / "g.zarr", _spec(gbuffer_channels="geometry", gbuffer_names=NAMES))
    assert GBufferStore(tmp_path / "g.zarr").names == ["depth", "normal_x", "normal_y", "normal_z"]
    with pytest.raises(EpeflowError, match="`gbuffer_names` lists 2 channels"):
        run_gbuffers(manifest, tmp_path / "h.zarr", _spec(gbuffer_names=["a", "b"]))


def test_wrong_size_gbuffer_names_the_file_and_writes_no_store(tmp_path):
    manifest, arrays = write_dataset(tmp_path, SIZES)
    np.savez(tmp_path / "gbuffers" / "f001.npz", data=arrays[1][:-1], names=np.array(NAMES))
    with pytest.raises(EpeflowError, match=r"f001\.npz is 11x20, but its frame is 12x20"):
        run_gbuffers(manifest, tmp_path / "g.zarr", _spec())
    assert not (tmp_path / "g.zarr").exists()


def test_wrong_channel_count_names_the_file(tmp_path):
    manifest, arrays = write_dataset(tmp_path, SIZES, names=None)
    np.savez(tmp_path / "gbuffers" / "f002.npz", data=arrays[2][..., :5])
    with pytest.raises(EpeflowError, match=r"f002\.npz has 5 channels, but the dataset's files have 9"):
        run_gbuffers(manifest, tmp_path / "g.zarr", _spec())


def test_other_channel_names_in_one_file_is_an_error(tmp_path):
    manifest, arrays = write_dataset(tmp_path, SIZES)
    np.savez(tmp_path / "gbuffers" / "f001.npz", data=arrays[1], names=np.array(NAMES[::-1]))
    with pytest.raises(EpeflowError, match=r"f001\.npz names its channels"):
        run_gbuffers(manifest, tmp_path / "g.zarr", _spec())


def test_frame_without_gbuffer_path(tmp_path):
    manifest, _ = write_dataset(tmp_path, SIZES)
    df, meta = io.read_table(manifest)
    df.loc[1, "gbuffer_path"] = None
    io.write_table(manifest, df, meta)
    with pytest.raises(EpeflowError, match=r"f001\.png has no G-buffer file"):
        run_gbuffers(manifest, tmp_path / "g.zarr", _spec())


def test_rerun_after_a_failure_resumes_and_result_is_deterministic(tmp_path):
    manifest, arrays = write_dataset(tmp_path, SIZES)
    good = tmp_path / "gbuffers" / "f002.npz"
    good.rename(tmp_path / "f002.npz")
    with pytest.raises(EpeflowError, match="does not exist"):
        run_gbuffers(manifest, tmp_path / "g.zarr", _spec())
    assert (tmp_path / "g.zarr.partial").exists() and not (tmp_path / "g.zarr").exists()
    (tmp_path / "f002.npz").rename(good)
    run_gbuffers(manifest, tmp_path / "g.zarr", _spec())
    run_gbuffers(manifest, tmp_path / "again.zarr", _spec())
    a, b = GBufferStore(tmp_path / "g.zarr"), GBufferStore(tmp_path / "again.zarr")
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)
    for i in range(3):
        np.testing.assert_array_equal(a.read(i), b.read(i))


def test_a_partial_store_of_changed_frames_is_not_resumed(tmp_path):
    """The resume fingerprint covers each frame's content digest (manifest `digest`): G-buffers rewritten
    after a kill are read again, never mixed with the old ones."""
    manifest, arrays = write_dataset(tmp_path, SIZES)
    df, meta = io.read_table(manifest)
    io.write_table(manifest, df.assign(digest=["a", "b", "c"]), meta)
    parked = tmp_path / "f002.npz"
    (tmp_path / "gbuffers" / "f002.npz").rename(parked)
    with pytest.raises(EpeflowError, match="does not exist"):
        run_gbuffers(manifest, tmp_path / "g.zarr", _spec())  # f000 and f001 are in the partial store
    new = arrays[0][::-1].copy()
    np.savez_compressed(tmp_path / "gbuffers" / "f000.npz", data=new, names=np.array(NAMES))
    io.write_table(manifest, df.assign(digest=["A", "b", "c"]), meta)  # as the manifest stage records it
    parked.rename(tmp_path / "gbuffers" / "f002.npz")
    run_gbuffers(manifest, tmp_path / "g.zarr", _spec())
    stored = GBufferStore(tmp_path / "g.zarr").read(0, normalize=False)
    np.testing.assert_array_equal(stored, new.astype(np.float16).astype(np.float32).transpose(2, 0, 1))


def _store_files(root):
    """Frame data files and array metadata of a store, by relative path (attrs compared apart)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).as_posix() != "zarr.json"}


@pytest.mark.parametrize("num_shards", [2, 3, 5])
def test_merged_shards_equal_one_job(tmp_path, num_shards):
    from epeflow.artifacts.gbuffers import merge_gbuffer_shards

    manifest, _ = write_dataset(tmp_path, SIZES + [(9, 14), (12, 20)])
    run_gbuffers(manifest, tmp_path / "one.zarr", _spec(), threads=2)
    shards = [tmp_path / f"s{i}.zarr" for i in range(num_shards)]  # 5 shards of 5 frames: one frame each
    for i, path in enumerate(shards):
        assert run_gbuffers(manifest, path, _spec(), shard=i, num_shards=num_shards) is None
    merge_gbuffer_shards(shards[::-1], tmp_path / "merged.zarr")
    assert _store_files(tmp_path / "merged.zarr") == _store_files(tmp_path / "one.zarr")
    one, merged = GBufferStore(tmp_path / "one.zarr"), GBufferStore(tmp_path / "merged.zarr")
    assert merged.attrs == one.attrs
    np.testing.assert_array_equal(merged.read(3, normalize=True), one.read(3, normalize=True))
    with pytest.raises(EpeflowError, match="a shard is missing"):
        merge_gbuffer_shards(shards[:-1], tmp_path / "bad.zarr")
    with pytest.raises(EpeflowError, match="not a finished G-buffer shard"):
        merge_gbuffer_shards([tmp_path / "one.zarr"], tmp_path / "bad.zarr")

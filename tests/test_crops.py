import numpy as np
import pytest
import torch
from crop_fixtures import make_dataset

from epeflow.artifacts.crops import CropStore, create_crop_store, mark_complete, merge_crop_stores
from epeflow.artifacts.manifest import read_frames
from epeflow.artifacts.zarr_rows import RowWriter
from epeflow.errors import EpeflowError
from epeflow.features.boxes import sample_boxes
from epeflow.features.crop_stats import run_crop_stats
from epeflow.features.crops import CropSettings, build_crop_model, extract_crops, iter_crop_batches, run_crops
from epeflow.io import read_image, read_json, read_table, write_json, write_table

SPEC = {"per_image": 3, "size": 32, "padding": "zero", "seed": 5, "batch_size": 4, "num_workers": 0, "chunk_size": 7}
SIZES = [(48, 64)] * 4 + [(40, 40)] * 3


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("crops")
    manifest = make_dataset(root, "syn", SIZES, seed=0)
    stats = root / "crop_stats.json"
    run_crop_stats(manifest, stats, {"stats_frames": 5, "seed": 0}, threads=1)
    weights = {"vgg16": {}}  # not in the (empty) hub cache: random weights
    single = root / "single.zarr"
    run_crops(manifest, stats, single, 0, 1, SPEC, weights, allow_random=True)
    return {"root": root, "manifest": manifest, "stats": stats, "weights": weights, "single": single}


def test_store_follows_the_contract(data):
    store = CropStore(data["single"])
    assert len(store) == len(SIZES) * 3
    np.testing.assert_array_equal(store.frame, np.repeat(np.arange(len(SIZES)), 3))
    for key in ("mean", "std", "crop_size", "per_image", "seed", "padding", "feature", "random_weights", "num_frames"):
        assert key in store.attrs
    assert store.attrs["feature"] == "vgg16_relu5_3" and store.attrs["random_weights"] is True
    assert store.attrs["num_frames"] == len(SIZES) and store.attrs["crop_size"] == 32
    assert store.attrs["provenance"]["warning"].startswith("random weights")
    assert store.attrs["mean"] == read_json(data["stats"])["mean"]
    assert store.features.chunks == (7, 512)


def test_boxes_come_from_the_per_frame_generator(data):
    store = CropStore(data["single"])
    for frame, (h, w) in enumerate(SIZES):
        np.testing.assert_array_equal(store.box[store.frame == frame], sample_boxes(frame, h, w, 32, 3, seed=5))


def test_features_are_the_normalised_vgg_features_of_those_crops(data):
    store = CropStore(data["single"])
    stats = read_json(data["stats"])
    model, random = build_crop_model(stats, "zero", data["weights"], True, torch.device("cpu"))
    assert random
    paths = read_table(data["manifest"])[0]["path"]
    frame = 5
    image = read_image(paths[frame])
    crops = np.stack([image[r0:r1, c0:c1] for r0, r1, c0, c1 in store.box[store.frame == frame]])
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        expected = model(x)["relu5_3"].mean(dim=(2, 3)).numpy()
    got = store.features[:][store.frame == frame].astype(np.float32)
    np.testing.assert_allclose(got, expected.astype(np.float16).astype(np.float32), rtol=2e-3, atol=1e-5)
    assert np.abs(got).sum() > 0


def test_same_config_same_store_whatever_batching_workers_or_sharding(data):
    root = data["root"]
    other = root / "other.zarr"
    run_crops(
        data["manifest"], data["stats"], other, 0, 1, {**SPEC, "batch_size": 5, "num_workers": 1}, data["weights"], True
    )
    shards = []
    for i in range(3):
        shards.append(root / f"{i}-of-3.zarr")
        run_crops(data["manifest"], data["stats"], shards[-1], i, 3, {**SPEC, "batch_size": 2}, data["weights"], True)
    assert CropStore(shards[1]).attrs["frames"] == [2, 4]
    merged = root / "merged.zarr"
    merge_crop_stores(shards[::-1], merged)
    a = CropStore(data["single"])
    for path in (other, merged):
        b = CropStore(path)
        np.testing.assert_array_equal(a.frame, b.frame)
        np.testing.assert_array_equal(a.box, b.box)
        np.testing.assert_allclose(
            a.features[:].astype(np.float32), b.features[:].astype(np.float32), rtol=2e-3, atol=1e-5
        )  # batch composition may move the last float16 bit
        assert a.settings() == b.settings()


class RecordingWriter(RowWriter):
    """The store's real writer, noting after every append what is on disk and what is still held."""

    def __init__(self, writer: RowWriter) -> None:
        super().__init__(writer.arrays)
        self.states: list[tuple[int, int, int, int]] = []  # (rows appended, written, buffered, chunk files)

    def append(self, **blocks: np.ndarray) -> None:
        super().append(**blocks)
        appended = self.written + self.buffered
        self.states.append((appended, self.written, self.buffered, self.arrays["features"].nchunks_initialized))


def test_features_stream_into_the_store_as_they_are_produced(data, tmp_path):
    """Memory flat in the number of frames: every whole chunk of features is written as soon as it is
    complete, and the writer never holds a chunk's worth of rows (the reference keeps all to the end)."""
    settings = CropSettings.from_spec(SPEC)
    frames = read_frames(data["manifest"])
    model, _ = build_crop_model(read_json(data["stats"]), "zero", data["weights"], True, torch.device("cpu"))
    rows, chunk = len(frames) * settings.per_image, settings.chunk_size
    group, writer = create_crop_store(tmp_path / "streamed.zarr", rows, chunk, {"per_image": settings.per_image})
    recorder = RecordingWriter(writer)
    extract_crops(frames, settings, model, torch.device("cpu"), recorder)
    batch = settings.batch_size
    assert [s[0] for s in recorder.states] == [min(rows, b * batch) for b in range(1, -(-rows // batch) + 1)]
    for appended, written, buffered, chunk_files in recorder.states:
        assert written == appended // chunk * chunk and buffered == appended % chunk < chunk
        assert chunk_files == written // chunk
    assert recorder.states[2][3] >= 1  # chunks land on disk long before the last frame
    mark_complete(group, recorder)
    np.testing.assert_array_equal(group["features"][:], CropStore(data["single"]).features[:])


def test_reference_path_196_crops_without_padding_give_one_vector(tmp_path):
    manifest = make_dataset(tmp_path, "big", [(200, 210), (196, 220)], seed=3)
    stats = tmp_path / "stats.json"
    write_json(stats, {"mean": [0.5, 0.45, 0.4], "std": [0.25, 0.25, 0.25], "frames": 2})
    weights = {"vgg16": {}}
    spec = {"per_image": 2, "size": 196, "padding": "none", "batch_size": 4, "num_workers": 0}
    out = tmp_path / "crops.zarr"
    run_crops(manifest, stats, out, 0, 1, spec, weights, True)
    store = CropStore(out)
    assert len(store) == 4 and store.attrs["padding"] == "none"
    assert (store.box[:, 1] - store.box[:, 0] == 196).all()
    model, _ = build_crop_model(read_json(stats), "none", weights, True, torch.device("cpu"))
    image = read_image(read_table(manifest)[0]["path"][1])
    r0, r1, c0, c1 = store.box[2]
    x = torch.from_numpy(image[r0:r1, c0:c1].copy()).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        fmap = model(x)["relu5_3"]
    assert fmap.shape == (1, 512, 1, 1)  # the reference's 1x1x512 per 196 crop
    np.testing.assert_allclose(store.features[2].astype(np.float32), fmap.reshape(-1).numpy(), rtol=2e-3, atol=1e-5)


def test_frame_smaller_than_the_crop_is_an_error_naming_it(tmp_path):
    manifest = make_dataset(tmp_path, "d", [(48, 64), (24, 64)])
    stats = tmp_path / "s.json"
    write_json(stats, {"mean": [0.5] * 3, "std": [0.2] * 3, "frames": 2})
    with pytest.raises(
        EpeflowError, match=r"smaller than the crop size 32: seq1__frame_001 \(.*frame_001\.png, 24x64\)"
    ):
        run_crops(manifest, stats, tmp_path / "c.zarr", 0, 1, SPEC, {"vgg16": {}}, True)
    assert not (tmp_path / "c.zarr").exists()


def test_image_not_matching_the_manifest_is_an_error(tmp_path):
    manifest = make_dataset(tmp_path, "d", [(48, 64), (48, 64)])
    df, meta = read_table(manifest)
    df.loc[1, "height"] = 50
    write_table(manifest, df, meta)
    stats = tmp_path / "s.json"
    write_json(stats, {"mean": [0.5] * 3, "std": [0.2] * 3, "frames": 2})
    with pytest.raises(EpeflowError, match=r"frame_001\.png is 48x64 but the manifest says 50x64"):
        run_crops(manifest, stats, tmp_path / "c.zarr", 0, 1, SPEC, {"vgg16": {}}, True)


def test_settings_errors_name_the_key(data):
    with pytest.raises(EpeflowError, match=r"`crops.size`: 32 is smaller than VGG16's receptive field"):
        CropSettings.from_spec({**SPEC, "padding": "none"})
    with pytest.raises(EpeflowError, match=r"config key `crops`: unknown key\(s\) 'sizes'"):
        CropSettings.from_spec({"sizes": 3})
    with pytest.raises(EpeflowError, match="--shard"):
        run_crops(data["manifest"], data["stats"], data["root"] / "x.zarr", 3, 3, SPEC, data["weights"], True)
    with pytest.raises(EpeflowError, match="weights not found"):
        run_crops(data["manifest"], data["stats"], data["root"] / "x.zarr", 0, 1, SPEC, data["weights"], False)


def test_bad_stats_file_is_an_error(data, tmp_path):
    stats = tmp_path / "s.json"
    write_json(stats, {"mean": [0.5, 0.5], "std": [0.2] * 3})
    with pytest.raises(EpeflowError, match="`mean` must be a list of 3 numbers"):
        run_crops(data["manifest"], stats, tmp_path / "c.zarr", 0, 1, SPEC, data["weights"], True)


def test_batches_regroup_frames_into_fixed_size_batches():
    items = [
        {
            "frame": f,
            "error": None,
            "boxes": np.full((3, 4), f),
            "crops": torch.full((3, 2, 2, 3), f, dtype=torch.uint8),
        }
        for f in range(4)
    ]
    batches = list(iter_crop_batches(iter(items), 5))
    assert [len(ids) for ids, _, _ in batches] == [5, 5, 2]
    np.testing.assert_array_equal(np.concatenate([ids for ids, _, _ in batches]), np.repeat(np.arange(4), 3))
    assert all(len(b) == len(c) for _, b, c in batches)
    with pytest.raises(EpeflowError, match="broken"):
        list(iter_crop_batches(iter([{"frame": 0, "error": "image x.png is broken"}]), 2))

import numpy as np
import pytest
import torch
from gbuffers_testdata import write_dataset
from torch.nn import functional as F

from epeflow import io
from epeflow.artifacts.gbuffers import GBufferStore
from epeflow.common.vgg16 import build_vgg16
from epeflow.errors import EpeflowError
from epeflow.gbuffers import run_gbuffers
from epeflow.gbuffers.fake import feature_size, image_mean_std, size_batches

SIZES = [(32, 48), (30, 40), (32, 48), (30, 40), (32, 48)]
SPEC = {"role": "synthetic", "gbuffers": "fake", "fake_gbuffers": {"batch_size": 2, "num_workers": 0}}


@pytest.fixture
def fake_store(tmp_path, hub_dir):
    manifest, _ = write_dataset(tmp_path, SIZES, channels=1)
    run_gbuffers(manifest, tmp_path / "g.zarr", SPEC, allow_random=True)
    return manifest, GBufferStore(tmp_path / "g.zarr")


def _reference(path, mean, std):
    """The reference's computation, written out with plain torch ops on the same random VGG16 weights."""
    vgg, _ = build_vgg16(None, allow_random=True, padding="none")
    w = [vgg.features[i] for i in (0, 2, 5, 7)]
    rgb = torch.from_numpy(io.read_image(path).copy()).permute(2, 0, 1)[None].double() / 255
    x = (rgb - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    x = F.relu(F.conv2d(x, w[0].weight.double(), w[0].bias.double()))
    x = F.max_pool2d(F.relu(F.conv2d(x, w[1].weight.double(), w[1].bias.double())), 2)
    x = F.relu(F.conv2d(x, w[2].weight.double(), w[2].bias.double()))
    x = F.relu(F.conv2d(x, w[3].weight.double(), w[3].bias.double()))  # relu2_2, (1, 128, h, w)
    f = x.reshape(1, 32, 4, *x.shape[-2:]).mean(dim=2)
    return f[0].float().numpy(), F.interpolate(f.float(), size=rgb.shape[-2:], mode="bicubic")[0].numpy()


def test_feature_resolution_32_channels_and_reference_values(fake_store):
    manifest, store = fake_store
    df, _ = io.read_table(manifest)
    assert (store.mode, store.channels, store.random_weights) == ("fake", 32, True)
    assert store.attrs["resolution"] == "feature"
    assert store.attrs["warning"].startswith("random weights")
    assert [tuple(s) for s in store.stored_sizes.tolist()] == [feature_size(h, w) for h, w in SIZES]
    assert feature_size(32, 48) == (10, 18)
    per_frame = [(io.read_image(p).reshape(-1, 3) / 255.0) for p in df["path"]]
    mean = np.mean([f.mean(axis=0) for f in per_frame], axis=0)
    std = np.mean([f.std(axis=0, ddof=1) for f in per_frame], axis=0)
    np.testing.assert_allclose(store.attrs["input_mean"], mean, rtol=1e-9)
    np.testing.assert_allclose(store.attrs["input_std"], std, rtol=1e-9)
    for i in (0, 1):
        stored, upsampled = _reference(df["path"][i], mean, std)
        block, row = store.location[i]
        raw = store._block(int(block))[int(row)].astype(np.float32)
        np.testing.assert_allclose(raw, stored, rtol=2e-3, atol=2e-3)  # float16 storage
        out = store.read(i, normalize=False)
        assert out.shape == (32, *SIZES[i])
        np.testing.assert_allclose(out, upsampled, rtol=5e-3, atol=5e-3)


def test_read_crop_equals_crop_of_read(fake_store):
    _, store = fake_store
    for i, box in [(0, (0, 32, 0, 48)), (1, (5, 17, 9, 40)), (4, (28, 32, 40, 48))]:
        full = store.read(i)
        np.testing.assert_allclose(store.read_crop(i, box), full[:, box[0] : box[1], box[2] : box[3]], atol=1e-4)


def test_stats_over_all_stored_values(fake_store):
    _, store = fake_store
    raw = [store._block(int(b))[int(r)].astype(np.float64).reshape(32, -1) for b, r in store.location]
    flat = np.concatenate(raw, axis=1)
    np.testing.assert_allclose(store.mean, flat.mean(axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(store.std, flat.std(axis=1), rtol=1e-5, atol=1e-7)


def test_deterministic(fake_store, tmp_path):
    manifest, store = fake_store
    run_gbuffers(manifest, tmp_path / "again.zarr", SPEC, allow_random=True)
    again = GBufferStore(tmp_path / "again.zarr")
    for i in range(len(SIZES)):
        np.testing.assert_array_equal(store.read(i), again.read(i))


def test_missing_vgg16_weights_is_an_error_unless_random_allowed(tmp_path, hub_dir):
    manifest, _ = write_dataset(tmp_path, SIZES[:2], channels=1)
    with pytest.raises(EpeflowError, match="vgg16 weights not found.*vgg16-397923af.pth"):
        run_gbuffers(manifest, tmp_path / "g.zarr", SPEC)
    assert not (tmp_path / "g.zarr").exists()


def test_too_small_frames_are_an_error(tmp_path, hub_dir):
    manifest, _ = write_dataset(tmp_path, [(13, 40), (20, 20)], channels=1)
    with pytest.raises(EpeflowError, match=r"f000\.png is 13x40"):
        run_gbuffers(manifest, tmp_path / "g.zarr", SPEC, allow_random=True)


def test_helpers():
    sizes = np.array([[4, 4], [8, 8], [4, 4], [4, 4], [8, 8]])
    assert size_batches([0, 1, 2, 3, 4], sizes, 2) == [[0, 2], [3], [1, 4]]
    assert size_batches([3, 4], sizes, 5) == [[3], [4]]


def test_image_mean_std_spreads_frames(tmp_path):
    manifest, _ = write_dataset(tmp_path, [(4, 4)] * 5, channels=1)
    df, _ = io.read_table(manifest)
    mean, _ = image_mean_std(df["path"].tolist(), 2)
    picked = [io.read_image(df["path"][i]).reshape(-1, 3).mean(axis=0) / 255 for i in (0, 4)]
    np.testing.assert_allclose(mean, np.mean(picked, axis=0), rtol=1e-9)


def test_merged_fake_shards_equal_one_job(fake_store, tmp_path):
    """Shards read the input statistics over the whole dataset, as one job does; frame by frame
    (batch_size 1) the stored features are the same bytes whatever the shard count."""
    from epeflow.artifacts.gbuffers import merge_gbuffer_shards

    manifest, _ = fake_store
    spec = {**SPEC, "fake_gbuffers": {"batch_size": 1, "num_workers": 0}}
    run_gbuffers(manifest, tmp_path / "one.zarr", spec, allow_random=True)
    shards = [tmp_path / f"s{i}.zarr" for i in range(2)]
    for i, path in enumerate(shards):
        run_gbuffers(manifest, path, spec, allow_random=True, shard=i, num_shards=2)
    merge_gbuffer_shards(shards, tmp_path / "merged.zarr")
    one, merged = GBufferStore(tmp_path / "one.zarr"), GBufferStore(tmp_path / "merged.zarr")
    assert merged.attrs == one.attrs
    for frame in range(len(SIZES)):
        np.testing.assert_array_equal(merged.read(frame, normalize=False), one.read(frame, normalize=False))

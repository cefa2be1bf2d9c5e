from __future__ import annotations

import numpy as np
import pytest
import torch
from train_fixtures import one_torch_thread

from epeflow.common.runtime import Runtime
from epeflow.enhance.engine import MIB, Enhancer, EnhanceSettings, FrameInputs
from epeflow.enhance.memory import forward_peak_bytes, meta_twin
from epeflow.enhance.tile_forward import StatisticsAccumulator, TileMode, norm_depths
from epeflow.enhance.tiles import Tile, blend_half_width, plan_tiles, tile_weights
from epeflow.errors import EpeflowError
from epeflow.models.ienet import IENet, IENetConfig

# Not multiples of 4: the generator's 1/4-resolution branch has odd sizes, so upsampling is not exactly 2:1.
H, W = 70, 102


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


def trained_like_generator(stages: int = 3) -> IENet:
    """A random IENet whose last conv has its usual scale back (a fresh one is shrunk to be nearly the
    identity, which would make any tiling look exact): it changes frames by about 0.06, like a trained one."""
    torch.manual_seed(0)
    generator = IENet(IENetConfig(gbuffer_mode="all", gbuffer_channels=4, class_slices=(), num_stages=stages,
                                  num_gbuffer_layers=1, width=0.125)).eval()
    last = generator.network.up_layers[-1][-1]
    with torch.no_grad():
        last.weight.mul_(100)
        last.bias.normal_(0, 0.1)
    return generator


def street_like_frame(height: int = H, width: int = W, seed: int = 0) -> FrameInputs:
    """Smooth regions (a sky, a road) with texture, G-buffers and materials that follow them."""
    rng = np.random.default_rng(seed)

    def smooth(channels: int, cell: int) -> np.ndarray:
        coarse = torch.from_numpy(rng.random((1, channels, height // cell + 2, width // cell + 2)))
        return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")[0].float().numpy()

    image = np.clip(smooth(3, 16) * 0.8 + 0.2 * rng.random((3, height, width)), 0, 1)
    material = np.clip((smooth(1, 24)[0] * 12).astype(int), 0, 11)
    return FrameInputs(
        image=(image.transpose(1, 2, 0) * 255).astype(np.uint8),
        gbuffers=smooth(4, 8) * 2 - 1,
        materials=(material[None] == np.arange(12)[:, None, None]).astype(np.float32),
    )


def enhancer(generator: IENet, **spec) -> Enhancer:
    return Enhancer(generator, Runtime.detect(False, "cpu"), EnhanceSettings.from_spec(spec))


# --- tile plans --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width", "max_pixels"), [(70, 102, 3000), (1052, 1914, 400_000), (33, 17, 10**6)])
def test_cores_partition_the_frame_and_tiles_fit(height, width, max_pixels):
    tiles = plan_tiles(height, width, max_pixels, overlap=16, align=8)
    owner = np.zeros((height, width), int)
    for t in tiles:
        (r0, r1, c0, c1), (a0, a1, b0, b1) = t.box, t.core
        owner[a0:a1, b0:b1] += 1
        assert r0 <= a0 < a1 <= r1 and c0 <= b0 < b1 <= c1
        assert r0 % 8 == 0 and c0 % 8 == 0  # every level of the network lines up with the frame's
        assert t.shape[0] * t.shape[1] <= max_pixels
        assert (r0, r1, c0, c1) == (max(0, a0 - 16), min(height, a1 + 16), max(0, b0 - 16), min(width, b1 + 16))
    assert (owner == 1).all()
    if height * width <= max_pixels:
        assert tiles == [Tile((0, height, 0, width), (0, height, 0, width))]


@pytest.mark.parametrize("ramp", ["linear", "cosine"])
def test_blend_weights_sum_to_one_and_vanish_outside_the_band(ramp):
    tiles = plan_tiles(H, W, 3000, overlap=16, align=4)
    assert len(tiles) > 2
    half = blend_half_width(tiles, 16, 16)
    total = np.zeros((H, W))
    for t in tiles:
        w = tile_weights(t, (H, W), half, ramp)
        r0, r1, c0, c1 = t.box
        total[r0:r1, c0:c1] += w
        a0, a1, b0, b1 = t.core
        inside = np.zeros((H, W), bool)
        inside[max(0, a0 - 8):a1 + 8, max(0, b0 - 8):b1 + 8] = True  # core plus half the band
        full = np.zeros((H, W))
        full[r0:r1, c0:c1] = w
        assert (full[~inside] == 0).all()
        assert (full[a0 + 8:a1 - 8, b0 + 8:b1 - 8] == 1).all()
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_a_budget_too_small_for_any_tile_is_named():
    with pytest.raises(EpeflowError, match="enhance.memory_mb"):
        plan_tiles(1052, 1914, 100, overlap=64, align=8)


# --- tiled = untiled ---------------------------------------------------------------------------------------


def test_one_tile_with_gathered_statistics_reproduces_the_network():
    generator, frame = trained_like_generator(), street_like_frame()
    e = enhancer(generator)
    image, g, m = (torch.from_numpy(a)[None] for a in (frame.image.transpose(2, 0, 1) / 255, frame.gbuffers,
                                                       frame.materials))
    image = image.float()
    whole = Tile((0, H, 0, W), (0, H, 0, W))
    depths = norm_depths(lambda: generator(image, g, m))
    assert len(depths) == len(e.norm_depths()) and max(depths) > 20  # a long chain of GroupNorms
    accumulator = StatisticsAccumulator()
    with torch.no_grad(), TileMode((H, W), [whole], levels=2, gather=set(range(len(depths))),
                                   accumulator=accumulator):
        generator(image, g, m)
    with torch.no_grad():
        expected = generator(image, g, m)
        with TileMode((H, W), [whole], levels=2, frozen=accumulator.result()):
            frozen = generator(image, g, m)
    torch.testing.assert_close(frozen, expected, atol=2e-6, rtol=0)


def test_tiled_equals_untiled_within_1e3_with_frame_statistics():
    generator, frame = trained_like_generator(), street_like_frame()
    whole = enhancer(generator)
    assert whole.plan(H, W) == [Tile((0, H, 0, W), (0, H, 0, W))]
    expected = whole([frame])[0]
    assert np.abs(expected - frame.image / 255).mean() > 0.03  # the generator does change the frame

    budget = whole.forward_bytes(1, H, 90) / MIB  # the frame no longer fits, half of it and 32 pixels do
    tiled = enhancer(generator, memory_mb=budget, tile_overlap=32, tile_blend=16)
    tiles = tiled.plan(H, W)
    assert len(tiles) == 2 and all(tiled.forward_bytes(1, *t.shape) <= budget * MIB for t in tiles)
    out = tiled([frame])[0]
    assert np.abs(out - expected).max() < 1e-3

    # the check can fail: each tile normalised by itself differs from the frame by far more
    local = enhancer(generator, memory_mb=budget, tile_overlap=32, tile_blend=16, tile_statistics="tile")([frame])[0]
    assert np.abs(local - expected).max() > 1e-2


def test_frames_of_one_size_are_batched_and_any_size_works():
    generator = trained_like_generator(stages=2)
    frames = [street_like_frame(21, 30, seed) for seed in range(3)] + [street_like_frame(13, 9, 3)]
    e = enhancer(generator, batch_size=2)
    out = e(frames)
    assert [o.shape for o in out] == [(21, 30, 3)] * 3 + [(13, 9, 3)]
    one_by_one = [enhancer(generator, batch_size=1)([f])[0] for f in frames]
    for a, b in zip(out, one_by_one, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_memory_estimate_grows_with_pixels_and_batch():
    twin = meta_twin(trained_like_generator())
    assert next(twin.parameters()).device.type == "meta"
    small = forward_peak_bytes(twin, (1, 3, 64, 64), (1, 4, 64, 64), (1, 12, 64, 64))
    large = forward_peak_bytes(twin, (1, 3, 128, 128), (1, 4, 128, 128), (1, 12, 128, 128))
    double = forward_peak_bytes(twin, (2, 3, 128, 128), (2, 4, 128, 128), (2, 12, 128, 128))
    # at least the full-resolution input and a few feature maps of 8+ channels per pixel, float32
    assert large > 128 * 128 * (3 + 4 + 12 + 3 * 8) * 4
    assert 3.0 < (large - 0) / small < 4.5 and 1.7 < double / large < 2.05


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tiles_on_a_gpu_in_bf16_and_channels_last():
    generator, frame = trained_like_generator(), street_like_frame()
    runtime = Runtime.detect(True, "cuda")
    assert runtime.amp
    generator = runtime.prepare(generator)
    whole = Enhancer(generator, runtime, EnhanceSettings.from_spec({}))
    expected = whole([frame])[0]
    budget = whole.forward_bytes(1, H, 90) / MIB
    tiled = Enhancer(generator, runtime, EnhanceSettings.from_spec({"memory_mb": budget, "tile_overlap": 32}))
    assert len(tiled.plan(H, W)) == 2
    out = tiled([frame])[0]
    assert np.abs(out - expected).max() < 2e-2  # bf16 rounds differently in tiles than in the whole frame
    cpu = enhancer(trained_like_generator())([frame])[0]
    assert np.abs(expected - cpu).mean() < 1e-2

"""The two demo looks and the synthetic G-buffers."""

from __future__ import annotations

import numpy as np

from epeflow.demo.looks import (
    CHANNEL_GROUPS,
    GBUFFER_NAMES,
    NoiseTexture,
    camera_response,
    gbuffers,
    shade_real,
    shade_synthetic,
    to_uint8,
)
from epeflow.demo.render import FAR_DEPTH, Surfaces
from epeflow.demo.scene import City, Kind


def _plane(kind: int = Kind.ASPHALT, albedo=(0.3, 0.3, 0.3), h: int = 16, w: int = 24) -> Surfaces:
    """A flat ground patch seen from above in the bottom half, sky in the top half."""
    sky = np.zeros((h, w), bool)
    sky[: h // 2] = True
    xs, zs = np.meshgrid(np.linspace(-2, 2, w), np.linspace(5, 9, h))
    position = np.stack([xs, np.zeros_like(xs), zs], -1).astype(np.float32)
    direction = np.zeros((h, w, 3), np.float32)
    direction[..., 2] = 1
    direction[..., 1] = np.where(sky, 0.3, -0.3)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    normal = np.where(sky[..., None], 0.0, np.array([0, 1, 0], np.float32)).astype(np.float32)
    return Surfaces(
        t=np.where(sky, np.inf, 6.0).astype(np.float32), depth=np.where(sky, FAR_DEPTH, 6.0).astype(np.float32),
        normal=normal, albedo=np.where(sky[..., None], 0.0, np.float32(albedo)).astype(np.float32),
        label=np.where(sky, City.SKY, City.ROAD).astype(np.uint8), kind=np.where(sky, Kind.SKY, kind).astype(np.uint8),
        position=position, direction=direction,
    )


def test_noise_is_deterministic_bounded_and_smooth():
    noise = NoiseTexture(3)
    u = np.linspace(0, 20, 2001, dtype=np.float32)
    a, b = noise.fbm(u, u * 0.5), NoiseTexture(3).fbm(u, u * 0.5)
    assert np.array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 1 and a.std() > 0.05
    assert np.abs(np.diff(a)).max() < 0.1  # continuous: tiny steps give tiny changes
    assert not np.array_equal(a, NoiseTexture(4).fbm(u, u * 0.5))


def test_gbuffers_stack_in_documented_order():
    surf = _plane()
    g = gbuffers(surf)
    assert g.shape == (16, 24, len(GBUFFER_NAMES)) and g.dtype == np.float16
    assert np.allclose(g[12, 5, GBUFFER_NAMES.index("normal_y")], 1)
    assert np.allclose(g[12, 5, GBUFFER_NAMES.index("depth")], 6)
    assert np.allclose(g[12, 5, 4:7], 0.3, atol=1e-3)
    assert set(CHANNEL_GROUPS["geometry"]) < set(CHANNEL_GROUPS["no_light"]) < set(CHANNEL_GROUPS["all"])
    assert not {"shading", "sky_light"} & set(CHANNEL_GROUPS["no_light"])


def test_synthetic_look_is_flat_and_noise_free():
    image = shade_synthetic(_plane())
    ground = image[8:]
    assert np.ptp(ground.reshape(-1, 3), axis=0).max() < 1e-6  # one albedo, one normal: one colour
    sky = image[:8]
    assert (sky[..., 2] > sky[..., 0]).all()  # blue sky


def test_real_look_textures_grades_and_adds_noise():
    surf = _plane()
    noise = NoiseTexture(0)
    a = shade_real(surf, noise, np.random.default_rng(0))
    b = shade_real(surf, noise, np.random.default_rng(0))
    c = shade_real(surf, noise, np.random.default_rng(1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)  # sensor noise follows the frame's rng
    assert a[9:].reshape(-1, 3).std(0).min() > 0.01  # textured asphalt


def test_camera_response_desaturates_and_warms():
    red = np.zeros((8, 8, 3), np.float32)
    red[...] = (0.8, 0.1, 0.1)
    out = camera_response(red, np.random.default_rng(0))
    sat_in = (red.max(-1) - red.min(-1)) / red.max(-1)
    sat_out = (out.max(-1) - out.min(-1)) / out.max(-1)
    assert sat_out.mean() < sat_in.mean()
    grey = np.full((8, 8, 3), 0.4, np.float32)
    warm = camera_response(grey, np.random.default_rng(0)).mean((0, 1))
    assert warm[0] > warm[2]
    assert to_uint8(np.array([[-1.0, 0.5, 2.0]])).tolist() == [[0, 128, 255]]

"""The two demo looks and the synthetic domain's G-buffers, computed from ray-cast `Surfaces`.

The synthetic look is what a simple game renderer gives: flat saturated albedo, Lambertian sun plus
ambient sky light, hard edges, no noise. The real look is what a camera gives of the same kind of scene:
textured materials, soft light, contact shadows, glossy cars, haze, a pale cloudy sky, a tone curve,
warm low-saturation grading, lens blur, vignetting and sensor noise. Enhancement has to learn the map.
"""

from __future__ import annotations

import numpy as np

from epeflow.demo.render import Surfaces
from epeflow.demo.scene import Kind

GBUFFER_NAMES = ("depth", "normal_x", "normal_y", "normal_z", "albedo_r", "albedo_g", "albedo_b", "shading",
                 "sky_light")
# The reference's channel groups: geometry (depth + normals), no_light (without lighting), all.
CHANNEL_GROUPS = {
    "geometry": list(GBUFFER_NAMES[:4]),
    "no_light": list(GBUFFER_NAMES[:7]),
    "all": list(GBUFFER_NAMES),
}

SUN = np.array([0.45, 0.75, -0.5], np.float32) / np.linalg.norm([0.45, 0.75, -0.5])
REAL_SUN = np.array([-0.3, 0.8, -0.45], np.float32) / np.linalg.norm([-0.3, 0.8, -0.45])


class NoiseTexture:
    """Smooth value noise from a seeded lattice (periodic every 256 units), evaluated vectorised."""

    def __init__(self, seed: int):
        self.table = np.random.default_rng([seed, 7919]).random(256 * 256, dtype=np.float32)  # (256*256,) flat

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        fu, fv = np.floor(u), np.floor(v)
        su, sv = u - fu, v - fv
        su, sv = su * su * (3 - 2 * su), sv * sv * (3 - 2 * sv)
        i0, j0 = fu.astype(np.int64) & 255, (fv.astype(np.int64) & 255) << 8
        i1, j1 = (i0 + 1) & 255, (j0 + 256) & 0xFF00
        t = self.table
        a, b, c, d = t.take(j0 | i0), t.take(j0 | i1), t.take(j1 | i0), t.take(j1 | i1)
        return (a + (b - a) * su + (c - a) * sv + (a - b - c + d) * su * sv).astype(np.float32)

    def fbm(self, u: np.ndarray, v: np.ndarray, octaves: int = 3) -> np.ndarray:
        """Fractal sum of octaves in [0, 1]."""
        total, amp, norm = np.zeros(np.shape(u), np.float32), 1.0, 0.0
        for k in range(octaves):
            total += amp * self(u * 2**k + 31.7 * k, v * 2**k - 17.3 * k)
            norm += amp
            amp *= 0.5
        return total / norm


def gbuffers(surf: Surfaces) -> np.ndarray:
    """(H, W, 9) float16 G-buffers in `GBUFFER_NAMES` order, as a game engine would export them."""
    shading = np.clip(surf.normal @ SUN, 0, 1)
    sky_light = np.where(np.isfinite(surf.t), 0.5 + 0.5 * surf.normal[..., 1], 1.0)
    stack = np.concatenate([surf.depth[..., None], surf.normal, surf.albedo, shading[..., None],
                            sky_light[..., None]], -1)
    return stack.astype(np.float16)


def _sky(d: np.ndarray, horizon, zenith) -> np.ndarray:
    elevation = np.clip(d[..., 1], 0, 1)[..., None] ** 0.6
    return (1 - elevation) * np.asarray(horizon, np.float32) + elevation * np.asarray(zenith, np.float32)


def shade_synthetic(surf: Surfaces) -> np.ndarray:
    """The rendered look: (H, W, 3) float32 in [0, 1]."""
    diffuse = np.clip(surf.normal @ SUN, 0, 1)[..., None]
    ambient = (0.5 + 0.5 * surf.normal[..., 1])[..., None]
    sun, sky_light = np.float32([1.0, 0.97, 0.9]), np.float32([0.8, 0.9, 1.1])
    colour = surf.albedo * (0.85 * diffuse * sun + 0.35 * ambient * sky_light)
    sky = surf.kind == Kind.SKY
    colour[sky] = _sky(surf.direction, (0.7, 0.85, 1.0), (0.15, 0.4, 0.95))[sky]
    return np.clip(colour, 0, 1)


# Texture strength per material kind: fine grain, coarse blotches (indexed by Kind).
_FINE = np.zeros(18, np.float32)
_COARSE = np.zeros(18, np.float32)
for _kind, _fine, _coarse in [(Kind.ASPHALT, 0.35, 0.15), (Kind.MARKING, 0.25, 0.25), (Kind.PAVING, 0.2, 0.12),
                              (Kind.GRASS, 0.4, 0.3), (Kind.FACADE, 0.18, 0.2), (Kind.FOLIAGE, 0.6, 0.35),
                              (Kind.BARK, 0.4, 0.1), (Kind.METAL, 0.1, 0.15), (Kind.PAINT, 0.03, 0.05),
                              (Kind.CLOTH, 0.2, 0.1), (Kind.SIGN, 0.05, 0.1), (Kind.WINDOW, 0.05, 0.2),
                              (Kind.HOOD, 0.02, 0.05)]:
    _FINE[_kind], _COARSE[_kind] = _fine, _coarse


def _textured_albedo(surf: Surfaces, noise: NoiseTexture) -> np.ndarray:
    """Albedo with world-space textures, so they stick to surfaces as the camera moves."""
    albedo = surf.albedo.copy()
    solid = surf.kind != Kind.SKY
    p, n, kind = surf.position[solid], surf.normal[solid], surf.kind[solid]  # (P, 3), (P, 3), (P,)
    # planar texture coordinates on the plane the surface mostly faces
    a = np.where(np.abs(n[:, 1]) > 0.5, p[:, 0], np.where(np.abs(n[:, 0]) > 0.5, p[:, 2], p[:, 0]))
    b = np.where(np.abs(n[:, 1]) > 0.5, p[:, 2], p[:, 1])
    fine = noise.fbm(a * 9.0, b * 9.0, 2) - 0.5
    coarse = noise.fbm(a * 0.35 + 101.0, b * 0.35 - 57.0, 3) - 0.5
    mod = 1 + 2 * _FINE[kind] * fine + 2 * _COARSE[kind] * coarse
    tiles = (kind == Kind.PAVING) & ((np.mod(a / 0.6, 1) < 0.05) | (np.mod(b / 0.6, 1) < 0.05))
    bricks = (kind == Kind.FACADE) & (np.mod(p[:, 1] / 0.3, 1) < 0.12)
    mod[tiles | bricks] *= 0.8
    facade = kind == Kind.FACADE
    mod[facade] *= 1 - 0.25 * np.exp(-p[facade, 1] / 1.5)  # grime near the pavement
    values = albedo[solid] * mod[:, None]
    leaves = kind == Kind.FOLIAGE
    values[leaves, 1] *= 1 + 0.3 * coarse[leaves]  # yellow-green variation
    albedo[solid] = values
    return np.clip(albedo, 0, 1)


def shade_real(surf: Surfaces, noise: NoiseTexture, rng: np.random.Generator) -> np.ndarray:
    """The photographed look: (H, W, 3) float32 in [0, 1]; `rng` draws this frame's sensor noise."""
    albedo = _textured_albedo(surf, noise)
    n, p = surf.normal, surf.position
    diffuse = np.clip((n @ REAL_SUN + 0.2) / 1.2, 0, 1)[..., None]  # wrapped: softer terminator
    ambient = (0.5 + 0.5 * n[..., 1])[..., None]
    vertical = np.abs(n[..., 1]) < 0.5
    occlusion = np.where(vertical, 1 - 0.4 * np.exp(-p[..., 1] / 0.6), 1.0)[..., None]  # contact shadows
    colour = albedo * occlusion * (0.75 * diffuse * np.float32([1.0, 0.93, 0.82])
                                   + 0.55 * ambient * np.float32([0.75, 0.82, 0.95]))
    glossy = np.isin(surf.kind, (Kind.PAINT, Kind.GLASS, Kind.WINDOW))
    half = REAL_SUN - surf.direction[glossy]
    half /= np.linalg.norm(half, axis=-1, keepdims=True)
    colour[glossy] += 0.6 * np.clip(np.sum(n[glossy] * half, -1), 0, 1)[:, None] ** 24
    haze = (1 - np.exp(-surf.depth / 250.0))[..., None]
    colour = colour * (1 - haze) + haze * np.float32([0.7, 0.74, 0.8])
    sky = surf.kind == Kind.SKY
    d = surf.direction[sky]  # (S, 3)
    horizon = np.clip(d[:, 1], 0.02, 1)
    clouds = noise.fbm(d[:, 0] / horizon * 1.5 + 40.0, d[:, 2] / horizon * 1.5, 4)
    cover = np.clip((clouds - 0.45) * 2.5, 0, 1)[:, None]
    colour[sky] = _sky(d, (0.78, 0.82, 0.86), (0.42, 0.56, 0.78)) * (1 - cover) + cover * np.float32([0.88, 0.88, 0.87])
    return camera_response(colour, rng)


def camera_response(linear: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Tone curve, warm desaturated grade, lens blur, vignetting and sensor noise."""
    x = linear * 1.15
    x = x / (x + 0.5) * 1.45  # filmic shoulder: highlights roll off instead of clipping
    x = x * np.float32([1.06, 1.0, 0.86])
    luma = (x @ np.float32([0.299, 0.587, 0.114]))[..., None]
    x = luma + 0.65 * (x - luma)
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    x = 0.25 * padded[:-2, 1:-1] + 0.5 * padded[1:-1, 1:-1] + 0.25 * padded[2:, 1:-1]
    padded = np.pad(x, ((0, 0), (1, 1), (0, 0)), mode="edge")
    x = 0.25 * padded[:, :-2] + 0.5 * padded[:, 1:-1] + 0.25 * padded[:, 2:]
    h, w = x.shape[:2]
    yy, xx = np.meshgrid(np.linspace(-1, 1, h, dtype=np.float32), np.linspace(-1, 1, w, dtype=np.float32),
                         indexing="ij")
    x = x * (1 - 0.3 * (xx**2 + yy**2) / 2)[..., None]
    x = np.clip(x, 0, 1)
    sigma = 0.008 + 0.025 * np.sqrt(x)
    x = x + sigma * rng.standard_normal(x.shape, dtype=np.float32)
    return np.clip(x, 0, 1).astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)

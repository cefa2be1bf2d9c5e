"""Ray casting of a demo `Scene`: per-pixel surfaces (distance, normal, albedo, class, material kind).

Vectorised over pixels: ground planes are solved for the whole frame at once, every box and sphere
only inside its projected screen rectangle, with a z-buffer. No shading happens here; the two looks
(`looks.py`) and the G-buffers are computed from the surfaces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from epeflow.demo.scene import CURB, Camera, City, Kind, Scene

NEAR = 0.05  # metres; nearer hits are ignored
FAR_DEPTH = 1000.0  # depth written for the sky


@dataclass
class Surfaces:
    """What each pixel's ray hits. Sky pixels have t = inf, a zero normal and label 23."""

    t: np.ndarray  # (H, W) float32 distance along the ray
    depth: np.ndarray  # (H, W) float32 camera-space depth (FAR_DEPTH for the sky)
    normal: np.ndarray  # (H, W, 3) float32 world-space unit normal
    albedo: np.ndarray  # (H, W, 3) float32 in [0, 1]
    label: np.ndarray  # (H, W) uint8 Cityscapes id
    kind: np.ndarray  # (H, W) uint8 `Kind`
    position: np.ndarray  # (H, W, 3) float32 world-space hit point (camera position for the sky)
    direction: np.ndarray  # (H, W, 3) float32 unit ray direction


def camera_axes(cam: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right, up and forward unit vectors of a camera yawed about the world's up axis."""
    s, c = np.sin(cam.yaw), np.cos(cam.yaw)
    return (np.array([c, 0.0, -s], np.float32), np.array([0.0, 1.0, 0.0], np.float32),
            np.array([s, 0.0, c], np.float32))


def ray_directions(cam: Camera, height: int, width: int) -> np.ndarray:
    """(H, W, 3) unit ray directions through pixel centres."""
    right, up, fwd = camera_axes(cam)
    x = (np.arange(width, dtype=np.float32) + 0.5 - cam.cx) / cam.focal  # (W,)
    y = -(np.arange(height, dtype=np.float32) + 0.5 - cam.cy) / cam.focal  # (H,)
    d = x[None, :, None] * right + y[:, None, None] * up + fwd  # (H, W, 3)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def _screen_boxes(corners: np.ndarray, cam: Camera, height: int, width: int) -> np.ndarray:
    """Pixel rectangles (r0, r1, c0, c1) covering primitives given by their bounding corners (N, 8, 3)."""
    right, up, fwd = camera_axes(cam)
    rel = corners - np.asarray(cam.position, np.float32)  # (N, 8, 3)
    xc, yc, zc = rel @ right, rel @ up, rel @ fwd  # (N, 8) each
    in_front = zc > NEAR
    with np.errstate(divide="ignore", invalid="ignore"):
        u = cam.focal * xc / zc + cam.cx
        v = -cam.focal * yc / zc + cam.cy
    rect = np.stack([np.floor(v.min(1)) - 1, np.ceil(v.max(1)) + 2, np.floor(u.min(1)) - 1, np.ceil(u.max(1)) + 2], 1)
    rect[~in_front.all(1)] = (0, height, 0, width)  # straddles the camera plane: test the whole frame
    rect[~in_front.any(1)] = (0, 0, 0, 0)  # entirely behind the camera
    rect = np.nan_to_num(rect, nan=0.0, posinf=1e6, neginf=-1e6)
    rect[:, :2] = rect[:, :2].clip(0, height)
    rect[:, 2:] = rect[:, 2:].clip(0, width)
    return rect.astype(np.int64)


def _box_corners(boxes: np.ndarray) -> np.ndarray:
    lo, hi = boxes[:, None, :3], boxes[:, None, 3:]
    pick = np.array([[(i >> k) & 1 for k in range(3)] for i in range(8)], np.float32)  # (8, 3)
    return lo + pick * (hi - lo)  # (N, 8, 3)


class _Canvas:
    """The z-buffered per-pixel outputs being filled."""

    def __init__(self, height: int, width: int):
        self.t = np.full((height, width), np.inf, np.float32)
        self.normal = np.zeros((height, width, 3), np.float32)
        self.albedo = np.zeros((height, width, 3), np.float32)
        self.label = np.full((height, width), City.SKY, np.uint8)
        self.kind = np.full((height, width), Kind.SKY, np.uint8)
        self.box = np.full((height, width), -1, np.int32)  # which box a pixel shows (windows need its top)

    def put(self, window: tuple[slice, slice], hit: np.ndarray, t: np.ndarray, normal: np.ndarray,
            label: int, kind: int, albedo: np.ndarray, box: int = -1) -> None:
        self.t[window][hit] = t[hit]
        self.normal[window][hit] = normal[hit]
        self.albedo[window][hit] = albedo
        self.label[window][hit] = label
        self.kind[window][hit] = kind
        self.box[window][hit] = box


def _ground(canvas: _Canvas, scene: Scene, origin: np.ndarray, d: np.ndarray) -> None:
    """Road (y = 0) between the curbs, sidewalk / verge (y = CURB) outside, the curb faces in between."""
    ox, oy, oz = origin
    dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
    down = dy < -1e-6
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = np.where(down, (CURB - oy) / dy, np.inf)
        t_road = np.where(down, -oy / dy, np.inf)
        x_side, z_side = ox + t_side * dx, oz + t_side * dz
        x_road, z_road = ox + t_road * dx, oz + t_road * dz
        t_curb = (np.sign(x_road) * scene.road_half - ox) / dx
    on_side = down & (np.abs(x_side) >= scene.road_half)
    on_road = down & ~on_side & (np.abs(x_road) < scene.road_half)
    on_curb = down & ~on_side & ~on_road
    full = (slice(None), slice(None))
    colours = {k: np.asarray(v, np.float32) for k, v in scene.colours.items()}
    up = np.broadcast_to(np.array([0, 1, 0], np.float32), d.shape)

    ax = np.abs(x_road)
    with np.errstate(invalid="ignore"):
        dashes = np.mod(z_road, 6.0) < 3.0
    marking = ((ax < 0.08) & dashes) | ((ax > scene.road_half - 0.35) & (ax < scene.road_half - 0.23))
    canvas.put(full, on_road & ~marking, t_road, up, City.ROAD, Kind.ASPHALT, colours["road"])
    canvas.put(full, on_road & marking, t_road, up, City.ROAD, Kind.MARKING, colours["marking"])

    inner = scene.road_half + scene.sidewalk
    zones = scene.grass_zones
    k = np.searchsorted(zones[:, 0], z_side, side="right") - 1 if len(zones) else np.full(z_side.shape, -1)
    in_zone = (k >= 0) & (z_side < zones[np.clip(k, 0, None), 1]) if len(zones) else np.zeros(z_side.shape, bool)
    verge = (np.abs(x_side) >= inner) | (in_zone & (np.abs(x_side) > scene.road_half + 0.55 * scene.sidewalk))
    canvas.put(full, on_side & ~verge, t_side, up, City.SIDEWALK, Kind.PAVING, colours["paving"])
    canvas.put(full, on_side & verge, t_side, up, City.TERRAIN, Kind.GRASS, colours["grass"])

    curb_normal = np.zeros(d.shape, np.float32)
    curb_normal[..., 0] = -np.sign(x_road)
    canvas.put(full, on_curb & np.isfinite(t_curb), t_curb, curb_normal, City.SIDEWALK, Kind.PAVING,
               colours["paving"])


def _boxes(canvas: _Canvas, scene: Scene, cam: Camera, origin: np.ndarray, d: np.ndarray, inv: np.ndarray) -> None:
    h, w = canvas.t.shape
    rects = _screen_boxes(_box_corners(scene.boxes), cam, h, w)
    for i in np.flatnonzero((rects[:, 1] > rects[:, 0]) & (rects[:, 3] > rects[:, 2])):
        r0, r1, c0, c1 = rects[i]
        window = (slice(r0, r1), slice(c0, c1))
        dd, ii = d[window], inv[window]  # (h, w, 3)
        t1 = (scene.boxes[i, :3] - origin) * ii
        t2 = (scene.boxes[i, 3:] - origin) * ii
        t_in, t_out = np.minimum(t1, t2), np.maximum(t1, t2)
        tx, ty, tz = t_in[..., 0], t_in[..., 1], t_in[..., 2]
        t_near = np.maximum(np.maximum(tx, ty), tz)
        t_far = np.minimum(np.minimum(t_out[..., 0], t_out[..., 1]), t_out[..., 2])
        hit = (t_near <= t_far) & (t_near > NEAR) & (t_near < canvas.t[window])
        if not hit.any():
            continue
        # the slab entered last is the face hit; its normal points against the ray
        normal = np.zeros(dd.shape, np.float32)
        on_x = tx >= np.maximum(ty, tz)
        on_y = ~on_x & (ty >= tz)
        on_z = ~on_x & ~on_y
        normal[..., 0] = np.where(on_x, -np.sign(dd[..., 0]), 0)
        normal[..., 1] = np.where(on_y, -np.sign(dd[..., 1]), 0)
        normal[..., 2] = np.where(on_z, -np.sign(dd[..., 2]), 0)
        canvas.put(window, hit, t_near, normal, scene.box_label[i], scene.box_kind[i], scene.box_albedo[i], i)


def _spheres(canvas: _Canvas, scene: Scene, cam: Camera, origin: np.ndarray, d: np.ndarray) -> None:
    h, w = canvas.t.shape
    centre, radius = scene.spheres[:, :3], scene.spheres[:, 3:]
    bounds = np.concatenate([centre - radius, centre + radius], 1)
    rects = _screen_boxes(_box_corners(bounds), cam, h, w)
    for i in np.flatnonzero((rects[:, 1] > rects[:, 0]) & (rects[:, 3] > rects[:, 2])):
        r0, r1, c0, c1 = rects[i]
        window = (slice(r0, r1), slice(c0, c1))
        dd = d[window]
        oc = origin - centre[i]
        b = dd @ oc  # (h, w)
        disc = b * b - (oc @ oc - radius[i, 0] ** 2)
        with np.errstate(invalid="ignore"):
            t = -b - np.sqrt(disc)
        hit = (disc >= 0) & (t > NEAR) & (t < canvas.t[window])
        if not hit.any():
            continue
        normal = (origin + t[..., None] * dd - centre[i]) / radius[i, 0]
        canvas.put(window, hit, t, normal, scene.sphere_label[i], scene.sphere_kind[i], scene.sphere_albedo[i])


def _windows(canvas: _Canvas, scene: Scene, position: np.ndarray) -> None:
    """Window grids on the vertical faces of buildings (still class building, another material)."""
    facade = (canvas.kind == Kind.FACADE) & (np.abs(canvas.normal[..., 1]) < 0.5)
    if not facade.any():
        return
    p, n = position[facade], canvas.normal[facade]
    top = scene.boxes[canvas.box[facade], 4]
    along = np.where(np.abs(n[:, 0]) > 0.5, p[:, 2], p[:, 0])
    y = p[:, 1]
    upper = (np.mod(along / 2.6, 1.0) > 0.3) & (np.mod(along / 2.6, 1.0) < 0.75)
    upper &= (np.mod((y - 0.4) / 3.2, 1.0) > 0.35) & (np.mod((y - 0.4) / 3.2, 1.0) < 0.85)
    upper &= (y > 3.2) & (y < top - 1.0)
    shop = (np.mod(along / 5.0, 1.0) > 0.1) & (np.mod(along / 5.0, 1.0) < 0.8) & (y > 0.7) & (y < 2.6)
    glass = upper | shop
    idx = np.flatnonzero(facade.ravel())[glass]
    canvas.kind.ravel()[idx] = Kind.WINDOW
    canvas.albedo.reshape(-1, 3)[idx] = scene.colours["window"]


def _hood(canvas: _Canvas, scene: Scene) -> None:
    """The ego car's bonnet across the bottom rows (Cityscapes 'ego vehicle')."""
    h, w = canvas.t.shape
    u = (np.arange(w) + 0.5) / w * 2 - 1  # (W,) in [-1, 1]
    top = h * (0.93 + 0.05 * u**2)  # (W,) first bonnet row per column
    rows = np.arange(h)[:, None] + 0.5
    hood = rows > top[None, :]
    normal = np.broadcast_to(np.array([0.0, 0.87, -0.5], np.float32), canvas.normal.shape)
    canvas.put((slice(None), slice(None)), hood, np.full((h, w), 1.5, np.float32), normal, City.EGO, Kind.HOOD,
               np.asarray(scene.colours["hood"], np.float32))


def render(scene: Scene, cam: Camera, height: int, width: int) -> Surfaces:
    """Cast one ray per pixel into the scene."""
    origin = np.asarray(cam.position, np.float32)
    d = ray_directions(cam, height, width)
    safe = np.where(np.abs(d) < 1e-9, 1e-9, d)
    inv = 1.0 / safe
    canvas = _Canvas(height, width)
    _ground(canvas, scene, origin, d)
    _boxes(canvas, scene, cam, origin, d, inv)
    _spheres(canvas, scene, cam, origin, d)
    _hood(canvas, scene)
    finite = np.isfinite(canvas.t)
    t0 = np.where(finite, canvas.t, 0.0).astype(np.float32)
    position = origin + t0[..., None] * d  # (H, W, 3)
    _windows(canvas, scene, position)
    _, _, fwd = camera_axes(cam)
    depth = np.where(finite, t0 * (d @ fwd), FAR_DEPTH).astype(np.float32)
    return Surfaces(canvas.t, depth, canvas.normal, canvas.albedo, canvas.label, canvas.kind, position, d)

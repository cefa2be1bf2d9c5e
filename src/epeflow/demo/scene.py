"""Procedural street scenes for the demo datasets: a layout of boxes and spheres along a straight street.

A scene is pure geometry plus per-primitive class, material kind and albedo; `render.py` ray-casts it
and `looks.py` turns the surfaces into a "rendered" or a "photographed" image. World axes: x right,
y up, z forward along the street; the road is the plane y = 0, sidewalks and verges y = CURB.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CURB = 0.15  # sidewalk height above the road, metres
MAX_SPEED = 1.6  # metres a frame; scenes extend beyond what a sequence can reach
VIEW_DEPTH = 160.0  # metres of street generated ahead of the last camera


class Kind:
    """Material kinds: they choose texture and reflectance in `looks.py` (labels are separate)."""

    SKY, ASPHALT, MARKING, PAVING, GRASS, FACADE, WINDOW, FOLIAGE, BARK, METAL = range(10)
    PAINT, GLASS, TYRE, SIGN, LAMP, CLOTH, SKIN, HOOD = range(10, 18)


class City:
    """Cityscapes label ids the demo uses (GT labels are written in this convention)."""

    EGO, ROAD, SIDEWALK, BUILDING, POLE, LIGHT, SIGN = 1, 7, 8, 11, 17, 19, 20
    VEGETATION, TERRAIN, SKY, PERSON, CAR = 21, 22, 23, 24, 26


# Albedo palettes per look: the synthetic domain is saturated and clean, the real one muted.
PALETTES: dict[str, dict[str, list[tuple[float, float, float]]]] = {
    "synthetic": {
        "facade": [(0.85, 0.45, 0.25), (0.25, 0.6, 0.75), (0.9, 0.8, 0.3), (0.8, 0.35, 0.5), (0.55, 0.75, 0.35),
                   (0.9, 0.9, 0.85), (0.6, 0.4, 0.8)],
        "car": [(0.9, 0.1, 0.1), (0.1, 0.3, 0.9), (0.95, 0.8, 0.05), (0.1, 0.7, 0.2), (0.95, 0.95, 0.95),
                (0.9, 0.45, 0.05)],
        "cloth": [(0.9, 0.2, 0.2), (0.2, 0.4, 0.9), (0.2, 0.8, 0.3), (0.95, 0.85, 0.1), (0.7, 0.2, 0.8)],
        "road": [(0.32, 0.33, 0.38)], "paving": [(0.72, 0.72, 0.75)], "grass": [(0.25, 0.75, 0.2)],
        "foliage": [(0.1, 0.7, 0.15), (0.2, 0.8, 0.1)], "bark": [(0.45, 0.25, 0.1)], "metal": [(0.55, 0.58, 0.62)],
        "sign": [(0.1, 0.35, 0.95), (0.95, 0.15, 0.1)], "lamp": [(0.15, 0.15, 0.15)], "skin": [(0.95, 0.75, 0.6)],
        "window": [(0.35, 0.6, 0.9)], "glass": [(0.2, 0.35, 0.55)], "marking": [(0.97, 0.97, 0.97)],
        "tyre": [(0.08, 0.08, 0.08)], "hood": [(0.1, 0.1, 0.12)],
    },
    "real": {
        "facade": [(0.62, 0.55, 0.46), (0.55, 0.33, 0.26), (0.6, 0.6, 0.58), (0.72, 0.67, 0.56), (0.45, 0.42, 0.4),
                   (0.68, 0.6, 0.5), (0.5, 0.47, 0.42)],
        "car": [(0.6, 0.6, 0.62), (0.12, 0.12, 0.13), (0.85, 0.85, 0.84), (0.35, 0.12, 0.12), (0.15, 0.2, 0.35),
                (0.4, 0.42, 0.45)],
        "cloth": [(0.15, 0.15, 0.18), (0.35, 0.3, 0.25), (0.25, 0.3, 0.4), (0.5, 0.45, 0.4), (0.45, 0.2, 0.2)],
        "road": [(0.27, 0.27, 0.28)], "paving": [(0.55, 0.53, 0.5)], "grass": [(0.33, 0.42, 0.2)],
        "foliage": [(0.2, 0.32, 0.12), (0.28, 0.36, 0.15)], "bark": [(0.3, 0.24, 0.18)],
        "metal": [(0.42, 0.43, 0.44)], "sign": [(0.15, 0.3, 0.6), (0.65, 0.18, 0.15)], "lamp": [(0.12, 0.12, 0.1)],
        "skin": [(0.75, 0.58, 0.47)], "window": [(0.22, 0.26, 0.3)], "glass": [(0.12, 0.14, 0.16)],
        "marking": [(0.8, 0.78, 0.72)], "tyre": [(0.06, 0.06, 0.06)], "hood": [(0.08, 0.08, 0.09)],
    },
}


@dataclass
class Scene:
    """Geometry of one sequence's street. Boxes are axis-aligned (xmin, ymin, zmin, xmax, ymax, zmax)."""

    road_half: float
    sidewalk: float
    colours: dict[str, tuple[float, float, float]]  # fixed albedo of road, paving, grass, markings, ...
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 6), np.float32))  # (N, 6)
    box_label: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))  # (N,)
    box_kind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))  # (N,)
    box_albedo: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))  # (N, 3)
    spheres: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # (M, 4) centre, radius
    sphere_label: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    sphere_kind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    sphere_albedo: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    grass_zones: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))  # (K, 2) z ranges


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: position, yaw about the up axis (radians), focal length and principal point (px)."""

    position: tuple[float, float, float]
    yaw: float
    focal: float
    cx: float
    cy: float


class _Builder:
    """Collects primitives, then packs them into a `Scene`'s arrays."""

    def __init__(self, rng: np.random.Generator, palette: dict[str, list[tuple[float, float, float]]]):
        self.rng, self.palette = rng, palette
        self.boxes: list[tuple[tuple[float, ...], int, int, tuple[float, float, float]]] = []
        self.spheres: list[tuple[tuple[float, ...], int, int, tuple[float, float, float]]] = []

    def colour(self, name: str) -> tuple[float, float, float]:
        choices = self.palette[name]
        base = np.asarray(choices[self.rng.integers(len(choices))])
        return tuple(np.clip(base * self.rng.uniform(0.9, 1.1), 0, 1).tolist())

    def box(self, x0, x1, y0, y1, z0, z1, label: int, kind: int, albedo) -> None:
        self.boxes.append(((min(x0, x1), y0, min(z0, z1), max(x0, x1), y1, max(z0, z1)), label, kind, albedo))

    def sphere(self, x, y, z, r, label: int, kind: int, albedo) -> None:
        self.spheres.append(((x, y, z, r), label, kind, albedo))


def _car(b: _Builder, x: float, z: float, length: float = 4.2) -> None:
    paint = b.colour("car")
    w = b.rng.uniform(1.7, 1.9)
    b.box(x - w / 2, x + w / 2, 0.3, 1.05, z - length / 2, z + length / 2, City.CAR, Kind.PAINT, paint)
    cabin_z = z - 0.2 * length
    b.box(x - w / 2 + 0.1, x + w / 2 - 0.1, 1.05, 1.5, cabin_z - 0.3 * length, cabin_z + 0.22 * length,
          City.CAR, Kind.GLASS, b.colour("glass"))
    for axle in (z - 0.32 * length, z + 0.32 * length):  # wheels, seen as dark blocks under the body
        b.box(x - w / 2 + 0.05, x + w / 2 - 0.05, 0.0, 0.35, axle - 0.35, axle + 0.35, City.CAR, Kind.TYRE,
              b.colour("tyre"))


def _tree(b: _Builder, x: float, z: float, ground: float) -> None:
    trunk = b.rng.uniform(2.0, 3.0)
    b.box(x - 0.15, x + 0.15, ground, ground + trunk + 0.5, z - 0.15, z + 0.15, City.VEGETATION, Kind.BARK,
          b.colour("bark"))
    r = b.rng.uniform(1.2, 2.2)
    b.sphere(x, ground + trunk + r * 0.8, z, r, City.VEGETATION, Kind.FOLIAGE, b.colour("foliage"))


def _pole(b: _Builder, x: float, z: float, side: float) -> None:
    h = b.rng.uniform(3.5, 5.5)
    b.box(x - 0.07, x + 0.07, CURB, CURB + h, z - 0.07, z + 0.07, City.POLE, Kind.METAL, b.colour("metal"))
    top = CURB + h
    if b.rng.random() < 0.6:  # a traffic sign facing the oncoming camera
        s = b.rng.uniform(0.5, 0.8)
        b.box(x - s / 2, x + s / 2, top - s - 0.1, top - 0.1, z - 0.08, z - 0.04, City.SIGN, Kind.SIGN,
              b.colour("sign"))
    else:  # a traffic light hanging over the road edge
        arm = -side * 0.8
        b.box(x - 0.05, x + arm, top - 0.1, top, z - 0.05, z + 0.05, City.POLE, Kind.METAL, b.colour("metal"))
        b.box(x + arm - 0.17, x + arm + 0.17, top - 1.0, top - 0.1, z - 0.17, z + 0.17, City.LIGHT, Kind.LAMP,
              b.colour("lamp"))


def _person(b: _Builder, x: float, z: float) -> None:
    h = b.rng.uniform(1.55, 1.85)
    cloth = b.colour("cloth")
    b.box(x - 0.22, x + 0.22, CURB, CURB + h - 0.25, z - 0.14, z + 0.14, City.PERSON, Kind.CLOTH, cloth)
    b.sphere(x, CURB + h - 0.13, z, 0.13, City.PERSON, Kind.SKIN, b.colour("skin"))


def _buildings(b: _Builder, side: float, inner: float, z0: float, z1: float) -> list[tuple[float, float]]:
    """Blocks of houses along one side; returns the gaps between them (z ranges) for trees and bushes."""
    gaps, z = [], z0
    while z < z1:
        if b.rng.random() < 0.22:
            gap = b.rng.uniform(4.0, 10.0)
            gaps.append((z, z + gap))
            z += gap
            continue
        length = b.rng.uniform(8.0, 24.0)
        setback = b.rng.choice([0.0, 0.0, b.rng.uniform(0.5, 3.0)])
        face = side * (inner + setback)
        height = b.rng.uniform(6.0, 22.0)
        b.box(face, face + side * 12.0, 0.0, height, z, z + length, City.BUILDING, Kind.FACADE, b.colour("facade"))
        z += length
    return gaps


def make_scene(rng: np.random.Generator, look: str, z_start: float, z_end: float) -> Scene:
    """A street with buildings, sidewalks, trees, bushes, poles, signs, lights, cars and persons."""
    palette = PALETTES[look]
    b = _Builder(rng, palette)
    road_half = float(rng.uniform(4.0, 5.5))  # two lanes and a parking lane each side
    sidewalk = float(rng.uniform(2.0, 3.5))
    inner = road_half + sidewalk
    colours = {name: b.colour(name) for name in ("road", "paving", "grass", "marking", "hood", "window")}
    for side in (-1.0, 1.0):
        gaps = _buildings(b, side, inner, z_start - 10.0, z_end)
        for g0, g1 in gaps:  # vegetation in the gaps between houses
            for _ in range(int(rng.integers(1, 4))):
                z = rng.uniform(g0, g1)
                x = side * rng.uniform(inner + 1.5, inner + 8.0)
                if rng.random() < 0.5:
                    _tree(b, x, z, CURB)
                else:
                    r = rng.uniform(0.5, 1.1)
                    b.sphere(x, CURB + 0.6 * r, z, r, City.VEGETATION, Kind.FOLIAGE, b.colour("foliage"))
        z = z_start + rng.uniform(0.0, 10.0)
        while z < z_end:  # street trees on the outer edge of the sidewalk
            if rng.random() < 0.55:
                _tree(b, side * (road_half + sidewalk * rng.uniform(0.6, 0.85)), z, CURB)
            z += rng.uniform(7.0, 16.0)
        z = z_start + rng.uniform(0.0, 15.0)
        while z < z_end:
            _pole(b, side * (road_half + 0.35), z, side)
            z += rng.uniform(14.0, 32.0)
        z = z_start + rng.uniform(2.0, 8.0)
        while z < z_end:  # parked cars along the curb
            if rng.random() < 0.4:
                _car(b, side * (road_half - 1.1), z, rng.uniform(3.9, 4.8))
            z += rng.uniform(6.0, 14.0)
        for _ in range(int(rng.integers(4, 11))):
            _person(b, side * rng.uniform(road_half + 0.6, inner - 0.4), rng.uniform(z_start + 3.0, z_end))
    z = z_start + rng.uniform(15.0, 30.0)
    while z < z_end:  # traffic in the oncoming lane
        _car(b, -road_half / 2, z, rng.uniform(3.9, 4.8))
        z += rng.uniform(15.0, 40.0)
    zones, z = [], z_start - 10.0
    while z < z_end:  # stretches where the outer sidewalk is a grass verge
        length = rng.uniform(5.0, 20.0)
        if rng.random() < 0.6:
            zones.append((z, z + length))
        z += length + rng.uniform(5.0, 20.0)

    def pack(items, width):
        geometry = np.array([g for g, *_ in items], np.float32).reshape(-1, width)
        labels = np.array([lab for _, lab, _, _ in items], np.uint8)
        kinds = np.array([k for _, _, k, _ in items], np.uint8)
        albedo = np.array([a for *_, a in items], np.float32).reshape(-1, 3)
        return geometry, labels, kinds, albedo

    boxes, box_label, box_kind, box_albedo = pack(b.boxes, 6)
    spheres, sphere_label, sphere_kind, sphere_albedo = pack(b.spheres, 4)
    return Scene(road_half, sidewalk, colours, boxes, box_label, box_kind, box_albedo, spheres, sphere_label,
                 sphere_kind, sphere_albedo, np.array(zones, np.float32).reshape(-1, 2))


def camera_path(rng: np.random.Generator, scene: Scene, frames: int, height: int, width: int) -> list[Camera]:
    """Cameras of one short sequence: driving forward in the right lane, or swaying sideways while creeping.

    The camera stays between the oncoming traffic and the parked cars, so it never enters a primitive.
    """
    focal = width * rng.uniform(0.7, 0.85)
    cy = height * rng.uniform(0.4, 0.48)  # horizon a bit above the centre, as a dash camera
    eye = rng.uniform(1.3, 1.7)
    x0 = scene.road_half / 2 - 0.9
    yaw0 = rng.uniform(-0.08, 0.08)
    phase = rng.uniform(0, 2 * np.pi)
    if rng.random() < 0.7:  # forward
        speed, sway, omega = rng.uniform(0.8, MAX_SPEED), rng.uniform(0.0, 0.3), rng.uniform(0.05, 0.15)
    else:  # sideways
        speed, sway, omega = rng.uniform(0.1, 0.3), rng.uniform(0.4, 0.6), rng.uniform(0.25, 0.4)
    i = np.arange(frames)
    xs = x0 + sway * np.sin(phase + omega * i)
    yaws = yaw0 + 0.03 * np.sin(phase + 0.5 * omega * i)
    return [
        Camera((float(xs[k]), float(eye), float(speed * k)), float(yaws[k]), float(focal), width / 2.0, float(cy))
        for k in range(frames)
    ]


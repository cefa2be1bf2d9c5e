"""Ray casting of demo scenes, against hand-computed geometry."""

from __future__ import annotations

import numpy as np

from epeflow.demo.render import FAR_DEPTH, ray_directions, render
from epeflow.demo.scene import Camera, City, Kind, Scene

COLOURS = {k: (0.5, 0.5, 0.5) for k in ("road", "paving", "grass", "marking", "hood", "window")}


def _scene(boxes=(), labels=(), spheres=()) -> Scene:
    boxes = np.array(boxes, np.float32).reshape(-1, 6)
    n = len(boxes)
    spheres = np.array(spheres, np.float32).reshape(-1, 4)
    m = len(spheres)
    return Scene(road_half=4.0, sidewalk=2.0, colours=COLOURS, boxes=boxes, box_label=np.array(labels, np.uint8),
                 box_kind=np.full(n, Kind.PAINT, np.uint8), box_albedo=np.full((n, 3), 0.3, np.float32),
                 spheres=spheres, sphere_label=np.full(m, City.VEGETATION, np.uint8),
                 sphere_kind=np.full(m, Kind.FOLIAGE, np.uint8), sphere_albedo=np.full((m, 3), 0.2, np.float32))


CAM = Camera(position=(0.0, 1.5, 0.0), yaw=0.0, focal=40.0, cx=32.0, cy=16.0)


def test_rays_are_unit_and_centre_looks_forward():
    d = ray_directions(CAM, 32, 64)
    assert d.shape == (32, 64, 3)
    assert np.allclose(np.linalg.norm(d, axis=-1), 1)
    centre = d[15:17, 31:33].mean((0, 1))
    assert np.allclose(centre / np.linalg.norm(centre), [0, 0, 1], atol=1e-3)
    yawed = ray_directions(Camera((0, 1.5, 0), np.pi / 2, 40.0, 32.0, 16.0), 32, 64)[15:17, 31:33].mean((0, 1))
    assert np.allclose(yawed / np.linalg.norm(yawed), [1, 0, 0], atol=1e-3)


def test_box_in_front_is_hit_with_its_depth_label_and_normal():
    surf = render(_scene([(-1, 0.5, 10, 1, 2.5, 12)], [City.CAR]), CAM, 32, 64)
    r, c = 15, 32  # just above the horizon row, in the middle: hits the box's front face at z = 10
    assert surf.label[r, c] == City.CAR and surf.kind[r, c] == Kind.PAINT
    assert np.isclose(surf.depth[r, c], 10.0, atol=1e-3)
    assert np.allclose(surf.normal[r, c], [0, 0, -1])
    assert np.allclose(surf.albedo[r, c], 0.3)


def test_nearer_primitive_wins_and_spheres_are_hit():
    scene = _scene([(-1, 0.5, 20, 1, 2.5, 21), (-1, 0.5, 8, 1, 2.5, 9)], [City.BUILDING, City.CAR],
                   spheres=[(0.0, 1.5, 5.0, 0.5)])
    surf = render(scene, CAM, 32, 64)
    assert surf.label[15, 32] == City.VEGETATION  # the sphere at z = 5 is in front of both boxes
    assert np.isclose(surf.depth[15, 32], 4.5, atol=0.02)
    assert surf.label[15, 27] == City.CAR  # beside the sphere: the nearer box, not the far one


def test_ground_sky_and_hood():
    surf = render(_scene(), CAM, 32, 64)
    assert (surf.label[0] == City.SKY).all() and (surf.depth[0] == FAR_DEPTH).all()
    assert np.isinf(surf.t[0]).all() and (surf.normal[0] == 0).all()
    assert surf.label[-1, 32] == City.EGO  # the bonnet across the bottom rows
    r, c = 24, 30  # a road pixel below the horizon: depth from the camera height and the pixel's angle
    assert surf.label[r, c] == City.ROAD
    dy = (r + 0.5 - CAM.cy) / CAM.focal
    assert np.isclose(surf.depth[r, c], 1.5 / dy, rtol=1e-4)
    assert np.allclose(surf.normal[r, c], [0, 1, 0])
    assert np.isclose(surf.position[r, c, 1], 0.0, atol=1e-4)
    far_left = surf.label[17:20, 0]  # looking left-down beyond the road edge: sidewalk or verge
    assert set(far_left.tolist()) <= {City.SIDEWALK, City.TERRAIN, City.ROAD}
    assert City.SIDEWALK in set(surf.label[16:24].ravel().tolist())

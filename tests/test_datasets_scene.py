"""Demo scene layouts and camera paths."""

from __future__ import annotations

import numpy as np
import pytest

from epeflow.demo.scene import CURB, City, Kind, camera_path, make_scene


@pytest.fixture
def scene():
    return make_scene(np.random.default_rng(0), "synthetic", z_start=-10.0, z_end=120.0)


def test_scene_has_every_street_class(scene):
    labels = set(scene.box_label.tolist()) | set(scene.sphere_label.tolist())
    assert {City.BUILDING, City.CAR, City.POLE, City.VEGETATION, City.PERSON} <= labels
    assert labels & {City.SIGN, City.LIGHT}
    assert (scene.boxes[:, :3] < scene.boxes[:, 3:]).all()  # min corner below max corner
    assert (scene.spheres[:, 3] > 0).all()
    assert len(scene.box_label) == len(scene.boxes) == len(scene.box_kind) == len(scene.box_albedo)
    assert ((scene.box_albedo >= 0) & (scene.box_albedo <= 1)).all()
    assert set(scene.box_kind.tolist()) <= set(range(18))
    assert Kind.FACADE in scene.box_kind


def test_buildings_stand_beyond_the_sidewalk(scene):
    buildings = scene.boxes[scene.box_label == City.BUILDING]
    inner = scene.road_half + scene.sidewalk
    assert (np.minimum(np.abs(buildings[:, 0]), np.abs(buildings[:, 3])) >= inner - 1e-4).all()


def test_same_rng_same_scene_and_looks_differ_in_palette():
    a = make_scene(np.random.default_rng(5), "synthetic", -10.0, 80.0)
    b = make_scene(np.random.default_rng(5), "synthetic", -10.0, 80.0)
    c = make_scene(np.random.default_rng(5), "real", -10.0, 80.0)
    assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.box_albedo, b.box_albedo)
    sat = lambda x: (x.max(1) - x.min(1)).mean()  # noqa: E731
    assert sat(c.box_albedo) < sat(a.box_albedo)


@pytest.mark.parametrize("seed", range(6))
def test_cameras_never_enter_a_primitive(seed):
    rng = np.random.default_rng(seed)
    scene = make_scene(rng, "real", -10.0, 200.0)
    cams = camera_path(rng, scene, 30, 64, 128)
    assert len(cams) == 30
    pos = np.array([c.position for c in cams])  # (F, 3)
    inside = ((pos[:, None, :] > scene.boxes[None, :, :3]) & (pos[:, None, :] < scene.boxes[None, :, 3:])).all(-1)
    assert not inside.any()
    dist = np.linalg.norm(pos[:, None, :] - scene.spheres[None, :, :3], axis=-1)
    assert (dist > scene.spheres[None, :, 3]).all()
    assert (pos[:, 1] > CURB).all() and (np.abs(pos[:, 0]) < scene.road_half).all()
    step = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    assert (step > 0).all() and (step < 2.0).all()  # moving, and coherent from frame to frame

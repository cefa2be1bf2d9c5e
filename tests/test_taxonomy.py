"""MSeg universal taxonomy, Cityscapes mapping, palette and EPE material classes."""

from __future__ import annotations

import numpy as np
import pytest

from epeflow.common.taxonomy import (
    MATERIAL_NAMES,
    NUM_UNIVERSAL_CLASSES,
    UNLABELED,
    cityscapes_to_universal_lut,
    colorize,
    materials_from_cityscapes,
    universal_from_cityscapes,
    universal_id,
    universal_names,
    universal_palette,
)


def test_universal_names():
    names = universal_names()
    assert len(names) == NUM_UNIVERSAL_CLASSES == 194 and len(set(names)) == 194
    assert names[0] == "backpack" and names[-1] == "window_blind"
    assert universal_id("road") == 98 and universal_id("sky") == 142 and universal_id("car") == 176
    assert universal_id("unlabeled") == UNLABELED
    with pytest.raises(KeyError):
        universal_id("spaceship")


@pytest.mark.parametrize("city_id, universal", [
    (7, "road"), (8, "sidewalk_pavement"), (11, "building"), (17, "pole"), (18, "pole"), (19, "traffic_light"),
    (20, "traffic_sign"), (21, "vegetation"), (22, "terrain"), (23, "sky"), (24, "person"), (25, "bicyclist"),
    (26, "car"), (29, "car"), (33, "bicycle"), (0, "unlabeled"), (1, "unlabeled"), (9, "unlabeled"),
])
def test_cityscapes_to_universal(city_id, universal):
    assert cityscapes_to_universal_lut()[city_id] == universal_id(universal)


def test_mapping_maps_whole_maps_and_unknown_ids():
    gt = np.array([[7, 23], [26, 200]], np.uint8)
    out = universal_from_cityscapes(gt)
    assert out.dtype == np.uint8 and out.tolist() == [[98, 142], [176, 255]]
    lut = cityscapes_to_universal_lut()
    assert (lut[34:] == UNLABELED).all()
    assert ((lut < NUM_UNIVERSAL_CLASSES) | (lut == UNLABELED)).all()


def test_palette_and_colorize():
    palette = universal_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert palette[universal_id("road")].tolist() == [128, 64, 128]
    assert (palette[UNLABELED] == 0).all()
    assert len({tuple(c) for c in palette[:NUM_UNIVERSAL_CLASSES].tolist()}) > 180  # nearly all distinct
    assert colorize(np.array([[98, 255]], np.uint8)).tolist() == [[[128, 64, 128], [0, 0, 0]]]


def test_materials_are_one_hot_with_the_reference_groups():
    gt = np.arange(256, dtype=np.uint8).reshape(16, 16)
    m = materials_from_cityscapes(gt)
    assert m.shape == (12, 16, 16) and m.dtype == np.float32
    assert np.array_equal(m.sum(0), np.ones((16, 16), np.float32))
    index = m.argmax(0).ravel()
    names = MATERIAL_NAMES
    assert len(names) == 12
    expect = {23: "sky", 7: "road", 8: "road", 6: "road", 10: "road", 26: "vehicle", 33: "vehicle", 22: "terrain",
              21: "vegetation", 24: "person", 25: "person", 17: "infrastructure", 18: "infrastructure",
              19: "traffic_light", 20: "traffic_sign", 1: "ego_vehicle", 11: "building", 4: "building",
              16: "building", 0: "unlabeled", 5: "unlabeled", 2: "unlabeled", 255: "unlabeled"}
    for city_id, material in expect.items():
        assert names[index[city_id]] == material, city_id


def test_materials_from_robust_labels_agree_with_those_from_gt_labels():
    """Frames without GT labels take materials from their MSeg labels: a GT map and its universal map give
    the same materials wherever MSeg keeps the class (and `unlabeled` where it does not)."""
    from epeflow.common.taxonomy import materials_from_universal, universal_from_cityscapes

    gt = np.arange(34, dtype=np.uint8).reshape(2, 17)
    universal = universal_from_cityscapes(gt)
    kept = universal != 255
    np.testing.assert_array_equal(materials_from_universal(universal)[:, kept], materials_from_cityscapes(gt)[:, kept])
    assert (materials_from_universal(universal).sum(axis=0) == 1).all()
    names = list(MATERIAL_NAMES)
    assert names[int(materials_from_universal(np.array([[universal_id("car")]], np.uint8)).argmax())] == "vehicle"

from __future__ import annotations

import numpy as np
import pytest
import torch

from epeflow.errors import EpeflowError
from epeflow.metrics import ckvd, skvd
from epeflow.metrics.frame_crops import crop_boxes, crop_side, frame_at_resolution, labels_at_resolution
from epeflow.metrics.kid import mmd2_unbiased
from epeflow.metrics.skvd import agreement, dominant_class, label_grid, match_crops, paired_ckvd

SKY, ROAD, CAR = 142, 98, 176  # any ids; 255 is unlabeled


def _grid(rows_sky: int, car_cells: int = 0) -> np.ndarray:
    """A 16x16 grid: `rows_sky` rows of sky, road below, the first `car_cells` cells of the last row car."""
    g = np.full((16, 16), ROAD, dtype=np.uint8)
    g[:rows_sky] = SKY
    g[15, :car_cells] = CAR
    return g


def test_label_grid_samples_the_cell_centres():
    labels = np.arange(64 * 32).reshape(64, 32) % 251
    grid = label_grid(labels.astype(np.uint8))
    # cell (i, j) of a 64x32 map is read at row 4i + 2, column 2j + 1
    assert grid.shape == (16, 16) and grid[3, 5] == labels[14, 11] and grid[15, 15] == labels[62, 31]


def test_matching_keeps_the_most_agreeing_partner_only_above_half():
    x = np.stack([
        _grid(8),  # agrees with y[1] in all 256 cells
        _grid(0, car_cells=16),  # best is y[2] (all road): 240 cells
        np.full((16, 16), 255, np.uint8),  # unlabeled: agrees with nothing, even with unlabeled cells
        _grid(16),  # all sky: y[0] has 129 sky cells (kept: > 128), y[3] exactly 128 (would not be)
    ])
    y0 = _grid(8)
    y0[8, 0] = SKY  # 129 sky cells
    y = np.stack([_grid(12), _grid(8), _grid(0), _grid(8), np.full((16, 16), 255, np.uint8)])
    y[0] = y0
    counts = agreement(x, y)
    assert counts[0].tolist() == [255, 256, 128, 256, 0]
    assert counts[2].max() == 0 and counts[3].tolist() == [129, 128, 0, 128, 0]
    pairs = match_crops(x, y)
    assert pairs.partner.tolist() == [1, 2, 0, 0]  # ties go to the first: y[1] over y[3]
    assert pairs.agreeing_cells.tolist() == [256, 240, 0, 129]
    assert pairs.kept.tolist() == [True, True, False, True]
    half = np.stack([_grid(16)]), np.stack([_grid(8)])  # exactly 128 of 256 agree: not more than half
    assert not match_crops(*half).kept[0]


def test_dominant_class_ignores_unlabeled_and_breaks_ties_low():
    g = np.full((2, 16, 16), 255, np.uint8)
    g[0, :2] = CAR  # 32 car cells, the rest unlabeled
    g[1, :8], g[1, 8:] = SKY, ROAD  # 128 each: the lower id wins
    assert dominant_class(g).tolist() == [CAR, ROAD]
    assert dominant_class(np.full((1, 16, 16), 255, np.uint8)).tolist() == [255]


def _crop_set(seed: int, n: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """n crops with distinct label grids (horizon row x car length) and features that depend on them."""
    rng = np.random.default_rng(seed)
    layouts = rng.permutation(8 * 16)[:n]
    grids = np.stack([_grid(4 + int(k) // 16, int(k) % 16) for k in layouts])
    features = rng.normal(size=(n, 32)) + shift + grids.reshape(n, -1)[:, :32] / 255.0
    return features, grids


def test_skvd_is_near_zero_for_identical_sets_and_grows_with_a_shift():
    features, grids = _crop_set(0, 60)
    same = skvd(features, grids, features, grids)
    assert same.pairs == 60 and same.crops_x == same.crops_y == 60
    other_f, other_g = _crop_set(1, 60)
    shifted = [skvd(other_f + d, other_g, features, grids) for d in (0.0, 0.5, 1.0)]
    assert same.real_crops_used == 60  # distinct layouts: every crop is its own partner
    assert abs(same.value) < 0.1 * shifted[1].value  # only the unbiased estimator's -2(k(x,x) - k(x,y))/n offset
    assert abs(shifted[0].value) < 0.05 * shifted[1].value  # another sample of the same distribution
    assert shifted[0].value < shifted[1].value < shifted[2].value
    assert all(r.pairs > 30 for r in shifted)  # same layout families: most crops find a partner


def test_skvd_is_the_x1000_mmd_of_the_kept_pairs():
    x_f, x_g = _crop_set(2, 10)
    y_f, y_g = _crop_set(3, 15)
    x_g[0] = 255  # one crop without labels: never kept
    pairs = match_crops(x_g, y_g)
    result = skvd(x_f, x_g, y_f, y_g)
    used = np.unique(pairs.partner[pairs.kept])
    assert len(used) < 9  # some real crops partner several enhanced crops
    expected = 1000 * mmd2_unbiased(x_f[pairs.kept], y_f[used])
    assert result.value == pytest.approx(expected, rel=1e-12) and result.pairs == 9
    assert result.real_crops_used == len(used)
    assert skvd(x_f[:1], x_g[:1], y_f, y_g).value is None  # no pair: no value, said so by pairs == 0


def test_ckvd_is_the_mean_of_per_class_kvds():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(9, 8)), rng.normal(0.3, 1.0, size=(9, 8))
    partners = np.arange(9)
    partners[1], y[1] = 0, y[0]  # crops 0 and 1 share a partner: it enters the real sample once
    classes = np.array([1, 1, 1, 1, 2, 2, 2, 7, 7])
    r = paired_ckvd(x, y, partners, classes, min_pairs=3)
    one = 1000 * mmd2_unbiased(x[:4], y[[0, 2, 3]])
    two = 1000 * mmd2_unbiased(x[4:7], y[4:7])
    assert r.per_class[1] == {"value": pytest.approx(one), "pairs": 4, "real_crops_used": 3}
    assert r.per_class[2]["value"] == pytest.approx(two) and r.per_class[7]["value"] is None
    assert r.mean == pytest.approx((one + two) / 2) and r.classes_measured == 2


def test_ckvd_from_crops_splits_pairs_by_the_enhanced_crops_class():
    features, grids = _crop_set(5, 40)
    grids[:20, 15, :] = CAR  # the car row does not change which class dominates (sky or road)
    result = ckvd(features, grids, features, grids, min_pairs=2)
    assert set(result.per_class) <= {SKY, ROAD}
    assert sum(v["pairs"] for v in result.per_class.values()) == 40


def test_labels_and_frames_reach_the_evaluation_size_alike():
    labels = np.zeros((100, 300), np.uint8)
    labels[:, 150:] = 1  # right half
    out = labels_at_resolution(labels, (50, 100))  # 50x150, centre 100 columns: 25..124 of the scaled map
    assert out.shape == (50, 100) and out[0, 49] == 0 and out[0, 50] == 1
    frame = torch.zeros(3, 100, 300)
    frame[:, :, 150:] = 1.0
    f = frame_at_resolution(frame, (50, 100))
    assert f.shape == (3, 50, 100) and f[0, 0, 40] == 0 and f[0, 0, 60] == 1
    with pytest.raises(EpeflowError, match=r"evaluate.skvd_size.*width <= 150"):
        labels_at_resolution(labels, (50, 200))


def test_crops_are_an_eighth_of_the_area_and_inside_the_frame():
    assert crop_side((526, 957)) == 251 and crop_side((128, 256)) == 64
    boxes = crop_boxes(200, (128, 256), 64, np.random.default_rng(0))
    assert boxes[:, 0].min() >= 0 and boxes[:, 0].max() <= 64 and boxes[:, 1].max() <= 192
    np.testing.assert_array_equal(boxes, crop_boxes(200, (128, 256), 64, np.random.default_rng(0)))

import numpy as np
import pandas as pd
import pytest
from crop_fixtures import make_crop_store, make_dataset

from epeflow.errors import EpeflowError
from epeflow.io import read_table, write_table
from epeflow.matching.coverage_weights import (
    box_means,
    coverage_weights,
    density_map,
    frame_weights,
    prefix_sums,
    run_weights,
    size_groups,
)


def _reference(boxes, height, width):
    """compute_weights.py, written from its definition: a loop over crops on one map."""
    d = np.zeros((height, width), dtype=np.int32)
    for r0, r1, c0, c1 in boxes:
        d[r0:r1, c0:c1] += 1
    w = np.zeros((len(boxes), 1))
    for i, (r0, r1, c0, c1) in enumerate(boxes):
        w[i, 0] = np.mean(d[r0:r1, c0:c1])
    return (np.max(d) / w)[:, 0], d


def _boxes(rng, n, height, width, size):
    r0, c0 = rng.integers(0, height - size + 1, n), rng.integers(0, width - size + 1, n)
    return np.stack([r0, r0 + size, c0, c0 + size], axis=1)


def test_weights_equal_the_loop_definition_bit_for_bit():
    rng = np.random.default_rng(0)
    boxes = _boxes(rng, 300, 37, 53, 11)
    expected, density = _reference(boxes, 37, 53)
    np.testing.assert_array_equal(density_map(boxes, 37, 53), density)
    got = frame_weights(boxes, 37, 53)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, expected)


def test_boxes_reaching_outside_are_clipped_like_slicing():
    boxes = np.array([[0, 10, 0, 10], [5, 30, 5, 30], [0, 3, 18, 40], [19, 25, 0, 4]])
    with np.errstate(invalid="ignore", divide="ignore"):
        expected, density = _reference(boxes, 20, 20)
    np.testing.assert_array_equal(density_map(boxes, 20, 20), density)
    np.testing.assert_array_equal(frame_weights(boxes, 20, 20), expected)


def test_box_means_use_the_integral_image():
    density = np.arange(30).reshape(5, 6)
    boxes = np.array([[0, 5, 0, 6], [1, 3, 2, 5], [4, 5, 5, 6]])
    np.testing.assert_array_equal(box_means(density, boxes), [density.mean(), density[1:3, 2:5].mean(), 29.0])


def test_frames_of_two_sizes_get_their_own_map():
    rng = np.random.default_rng(1)
    a, b = _boxes(rng, 40, 30, 40, 8), _boxes(rng, 25, 24, 24, 8)
    order = rng.permutation(65)
    boxes = np.concatenate([a, b])[order]
    heights = np.array([30] * 40 + [24] * 25)[order]
    widths = np.array([40] * 40 + [24] * 25)[order]
    got = coverage_weights(boxes, heights, widths)
    expected = np.concatenate([_reference(a, 30, 40)[0], _reference(b, 24, 24)[0]])[order]
    np.testing.assert_array_equal(got, expected)
    # one shared map would give other weights
    assert not np.array_equal(got, frame_weights(boxes, 30, 40))


def test_prefix_sums_are_the_2d_cumulative_sum_in_place():
    a = np.random.default_rng(3).integers(-5, 6, (7, 9))
    expected = a.cumsum(axis=0).cumsum(axis=1)
    assert prefix_sums(a) is a
    np.testing.assert_array_equal(a, expected)


def test_pairs_are_grouped_by_frame_size_in_one_pass():
    heights = np.array([30, 24, 30, 1080, 24, 30, 24])
    widths = np.array([40, 24, 40, 1920, 24, 24, 24])
    groups = size_groups(heights, widths)
    assert [(h, w) for h, w, _ in groups] == [(24, 24), (30, 24), (30, 40), (1080, 1920)]
    assert [m.tolist() for _, _, m in groups] == [[1, 4, 6], [5], [0, 2], [3]]
    # (30, 24) and (24, 30) are different sizes, not one key
    assert len(size_groups(np.array([30, 24]), np.array([24, 30]))) == 2
    # one size: no member lists to gather by
    assert size_groups(np.full(5, 1052), np.full(5, 1914)) == [(1052, 1914, None)]
    assert size_groups(np.zeros(0, int), np.zeros(0, int)) == []
    assert coverage_weights(np.zeros((0, 4), int), np.zeros(0, int), np.zeros(0, int)).shape == (0,)


def _matches(root, rows):
    """matches.parquet of one pair per row (frame, r0, r1, c0, c1) and the source crops.zarr holding them."""
    rows = np.asarray(rows)
    crops = make_crop_store(root / "src_crops.zarr", rows[:, 0], rows[:, 1:], np.zeros((len(rows), 8)))
    n = len(rows)
    table = pd.DataFrame({"src_crop": np.arange(n), "dst_crop": np.zeros(n, np.int64),
                          "dist": np.zeros(n, np.float32)})
    write_table(root / "matches.parquet", table, {"random_weights": True, "num_source_crops": n})
    return root / "matches.parquet", crops


def test_run_weights_reads_frame_sizes_from_the_manifest(tmp_path):
    manifest = make_dataset(tmp_path, "syn", [(30, 40), (24, 24), (30, 40)])
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 3, 50)
    heights, widths = np.array([30, 24, 30])[frames], np.array([40, 24, 40])[frames]
    r0 = rng.integers(0, heights - 8 + 1)
    c0 = rng.integers(0, widths - 8 + 1)
    rows = np.stack([frames, r0, r0 + 8, c0, c0 + 8], axis=1)
    matches, crops = _matches(tmp_path, rows)
    out = tmp_path / "weights.parquet"
    run_weights(matches, crops, manifest, out)
    df, meta = read_table(out)
    assert list(df.columns) == ["weight"] and df["weight"].dtype == np.float64 and len(df) == 50
    np.testing.assert_array_equal(df["weight"].to_numpy(), coverage_weights(rows[:, 1:], heights, widths))
    assert meta["random_weights"] is True and meta["frame_sizes"] == 2


def test_crop_outside_its_frame_is_an_error(tmp_path):
    manifest = make_dataset(tmp_path, "syn", [(30, 40)])
    matches, crops = _matches(tmp_path / "a", [[0, 25, 33, 0, 8]])
    with pytest.raises(EpeflowError, match=r"row 0: crop \[25, 33, 0, 8\] does not lie inside source frame 0"):
        run_weights(matches, crops, manifest, tmp_path / "w.parquet")
    matches, crops = _matches(tmp_path / "b", [[4, 0, 8, 0, 8]])
    with pytest.raises(EpeflowError, match="refers to source frame 4"):
        run_weights(matches, crops, manifest, tmp_path / "w.parquet")

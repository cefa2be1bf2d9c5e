import numpy as np
import pandas as pd
import pytest
from crop_fixtures import random_crop_store

from epeflow.artifacts.crops import CropStore
from epeflow.artifacts.knn import KnnStore
from epeflow.artifacts.matches import read_pair_boxes
from epeflow.errors import EpeflowError
from epeflow.io import read_table
from epeflow.matching.filter import MATCH_COLUMNS, gather_matches, matches_frame, run_filter, select_pairs
from epeflow.matching.knn import run_knn


def _loop_filter(index, dist, max_dist, src_frame, src_box, dst_frame, dst_box):
    """The reference's loop: np.nonzero on the threshold, then one pair at a time. Returns our thin table and
    the (frame, box) rows the reference writes for each side."""
    rows, src_rows, dst_rows = [], [], []
    src_ids, knn = np.nonzero(dist < max_dist)
    for i in range(src_ids.shape[0]):
        s, r = int(src_ids[i]), int(knn[i])
        d = int(index[s, r])
        if d < 0:
            continue
        rows.append((s, d, dist[s, r]))
        src_rows.append((src_frame[s], *src_box[s]))
        dst_rows.append((dst_frame[d], *dst_box[d]))
    table = pd.DataFrame(rows, columns=list(MATCH_COLUMNS)).astype(MATCH_COLUMNS)
    return table, np.array(src_rows, np.int64).reshape(-1, 5), np.array(dst_rows, np.int64).reshape(-1, 5)


def test_vectorised_filter_equals_the_reference_loop():
    rng = np.random.default_rng(0)
    ns, nd, k = 40, 25, 4
    index = rng.integers(0, nd, (ns, k))
    dist = rng.random((ns, k)).astype(np.float32) * 2
    index[3, 2], dist[3, 2] = -1, np.finfo(np.float32).max  # an empty IVF slot
    src_frame, dst_frame = rng.integers(0, 9, ns).astype(np.int32), rng.integers(0, 9, nd).astype(np.int32)
    src_box, dst_box = rng.integers(0, 50, (ns, 4)).astype(np.int32), rng.integers(0, 50, (nd, 4)).astype(np.int32)
    expected, _, _ = _loop_filter(index, dist, 0.7, src_frame, src_box, dst_frame, dst_box)
    blocks = []
    for start in range(0, ns, 15):  # block by block, as the store is read
        block_index, block_dist = index[start : start + 15], dist[start : start + 15]
        blocks.append(gather_matches(select_pairs(block_index, block_dist, 0.7), block_index, block_dist, start))
    got = matches_frame(blocks)
    pd.testing.assert_frame_equal(got, expected)
    assert len(got) > 10


def test_run_filter_writes_the_contract_table(tmp_path):
    src = random_crop_store(tmp_path / "src.zarr", 6, 4, (20, 30), seed=1)
    dst = random_crop_store(tmp_path / "dst.zarr", 5, 3, (20, 30), seed=2)
    knn = tmp_path / "knn.zarr"
    run_knn(src, dst, knn, {"k": 3, "chunk_size": 7})
    k_index, k_dist = KnnStore(knn).read(0, 24)
    threshold = float(np.median(k_dist))
    out = tmp_path / "matches.parquet"
    run_filter(knn, src, dst, out, threshold)
    df, meta = read_table(out)
    s, d = CropStore(src), CropStore(dst)
    expected, src_rows, dst_rows = _loop_filter(k_index, k_dist, threshold, s.frame, s.box, d.frame, d.box)
    pd.testing.assert_frame_equal(df, expected)
    assert dict(df.dtypes.astype(str)) == MATCH_COLUMNS
    assert meta["max_dist"] == threshold and meta["random_weights"] is True and meta["k"] == 3
    assert (meta["num_source_crops"], meta["num_target_crops"]) == (24, 15)
    # what consumers read back through the crop stores is what the reference writes row by row
    _, boxes, _ = read_pair_boxes(out, src, dst)
    np.testing.assert_array_equal(np.column_stack([boxes.src_frame, boxes.src_box]), src_rows)
    np.testing.assert_array_equal(np.column_stack([boxes.dst_frame, boxes.dst_box]), dst_rows)


def test_boxes_from_other_crop_stores_are_refused(tmp_path):
    src = random_crop_store(tmp_path / "src.zarr", 3, 2, (20, 30), seed=1)
    dst = random_crop_store(tmp_path / "dst.zarr", 3, 2, (20, 30), seed=2)
    other = random_crop_store(tmp_path / "other.zarr", 2, 2, (20, 30), seed=3)
    knn = tmp_path / "knn.zarr"
    run_knn(src, dst, knn, {"k": 2})
    run_filter(knn, src, dst, tmp_path / "m.parquet", 4.0)
    with pytest.raises(EpeflowError, match=r"made from target crops with 6 rows but .*other\.zarr has 4"):
        read_pair_boxes(tmp_path / "m.parquet", src, other)


def test_empty_result_says_which_key_to_relax_and_shows_distances(tmp_path):
    src = random_crop_store(tmp_path / "src.zarr", 3, 2, (20, 30), seed=1)
    dst = random_crop_store(tmp_path / "dst.zarr", 3, 2, (20, 30), seed=2)
    knn = tmp_path / "knn.zarr"
    run_knn(src, dst, knn, {"k": 2})
    with pytest.raises(EpeflowError) as e:
        run_filter(knn, src, dst, tmp_path / "m.parquet", 1e-9)
    message = str(e.value)
    assert "experiments.<exp>.max_dist" in message and "min " in message and "median" in message
    assert not (tmp_path / "m.parquet").exists()


def test_knn_of_other_crops_is_an_error(tmp_path):
    src = random_crop_store(tmp_path / "src.zarr", 3, 2, (20, 30), seed=1)
    dst = random_crop_store(tmp_path / "dst.zarr", 3, 2, (20, 30), seed=2)
    other = random_crop_store(tmp_path / "other.zarr", 4, 2, (20, 30), seed=3)
    knn = tmp_path / "knn.zarr"
    run_knn(src, dst, knn, {"k": 2})
    with pytest.raises(EpeflowError, match=r"knn\.zarr has 6 rows but .*other\.zarr has 8 crops"):
        run_filter(knn, other, dst, tmp_path / "m.parquet", 1.0)

import numpy as np
import pytest
import zarr

from epeflow.artifacts.zarr_rows import RowWriter, check_arrays, create_rows_array, open_group_checked, read_rows
from epeflow.errors import EpeflowError


def _arrays(path, rows=23, chunk=5):
    group = zarr.open_group(str(path), mode="w")
    return group, {
        "a": create_rows_array(group, "a", rows, None, "int32", chunk),
        "b": create_rows_array(group, "b", rows, 3, "float32", chunk),
    }


def test_irregular_appends_land_in_order(tmp_path):
    group, arrays = _arrays(tmp_path / "s.zarr")
    writer = RowWriter(arrays)
    rng = np.random.default_rng(0)
    a, b = np.arange(23, dtype=np.int32), rng.random((23, 3)).astype(np.float32)
    for lo, hi in [(0, 2), (2, 9), (9, 9), (9, 21), (21, 23)]:
        writer.append(a=a[lo:hi], b=b[lo:hi])
    writer.close()
    np.testing.assert_array_equal(arrays["a"][:], a)
    np.testing.assert_array_equal(arrays["b"][:], b)


def test_all_zero_chunks_are_still_written(tmp_path):
    group, arrays = _arrays(tmp_path / "s.zarr", rows=10)
    writer = RowWriter(arrays)
    writer.append(a=np.zeros(10, np.int32), b=np.zeros((10, 3), np.float32))
    writer.close()
    assert all(arr.nchunks_initialized == arr.nchunks == 2 for arr in arrays.values())


def test_row_count_is_enforced(tmp_path):
    _, arrays = _arrays(tmp_path / "s.zarr", rows=4)
    writer = RowWriter(arrays)
    with pytest.raises(ValueError, match="more than"):
        writer.append(a=np.zeros(5, np.int32), b=np.zeros((5, 3), np.float32))
    writer.append(a=np.zeros(3, np.int32), b=np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="3 rows written, 4 declared"):
        writer.close()


def test_missing_chunk_and_corrupt_chunk_are_errors_naming_the_store(tmp_path):
    path = tmp_path / "s.zarr"
    _, arrays = _arrays(path, rows=10)
    writer = RowWriter(arrays)
    writer.append(a=np.arange(10, dtype=np.int32), b=np.ones((10, 3), np.float32))
    writer.close()
    specs = {"a": ((None,), ("int32",)), "b": ((None, 3), ("float32",))}
    group = open_group_checked(path, "test store", "rerun")
    check_arrays(group, path, "test store", "rerun", specs)
    (path / "b" / "c" / "1" / "0").write_bytes(b"garbage")
    with pytest.raises(EpeflowError, match=r"s\.zarr: rows 0\.\.10 cannot be read"):
        read_rows(group["b"], 0, 10, path, "test store")
    (path / "a" / "c" / "1").unlink()
    with pytest.raises(EpeflowError, match=r"s\.zarr: `a` has 1 of 2 chunks"):
        check_arrays(open_group_checked(path, "test store", "rerun"), path, "test store", "rerun", specs)
    with pytest.raises(EpeflowError, match="has shape"):
        check_arrays(group, path, "test store", "rerun", {"b": ((None, 4), ("float32",))})
    with pytest.raises(EpeflowError, match="does not exist"):
        open_group_checked(tmp_path / "nope.zarr", "test store", "rerun")


def test_rows_reach_the_store_chunk_by_chunk_as_they_arrive(tmp_path):
    """Memory stays flat in the number of rows: after every append each whole chunk is on disk and less
    than one chunk is held back."""
    rows, chunk = 40, 6
    _, arrays = _arrays(tmp_path / "s.zarr", rows=rows, chunk=chunk)
    writer = RowWriter(arrays)
    appended = 0
    for n in [1, 4, 2, 11, 0, 5, 9, 8]:
        writer.append(a=np.arange(appended, appended + n, dtype=np.int32), b=np.ones((n, 3), np.float32))
        appended += n
        assert writer.written == appended // chunk * chunk and writer.buffered == appended % chunk < chunk
        assert arrays["a"].nchunks_initialized == appended // chunk
    writer.close()
    assert writer.buffered == 0 and arrays["a"].nchunks_initialized == arrays["a"].nchunks
    np.testing.assert_array_equal(arrays["a"][:], np.arange(rows))

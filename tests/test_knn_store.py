import subprocess
import sys

import numpy as np
import pytest
from crop_fixtures import random_crop_store

from epeflow.artifacts.crops import CropStore
from epeflow.artifacts.knn import KnnStore
from epeflow.errors import EpeflowError
from epeflow.matching.knn import KnnSettings, knn_search, run_knn


@pytest.fixture
def stores(tmp_path):
    src = random_crop_store(tmp_path / "src.zarr", frames=6, per_image=4, size=(20, 30), seed=1, random_weights=False)
    dst = random_crop_store(tmp_path / "dst.zarr", frames=5, per_image=3, size=(20, 30), seed=2, random_weights=True)
    return src, dst


def test_store_holds_the_neighbours_of_every_source_crop(tmp_path, stores):
    src, dst = stores
    out = tmp_path / "knn.zarr"
    run_knn(src, dst, out, {"k": 3, "chunk_size": 5}, threads=1)
    knn = KnnStore(out)
    features_src = CropStore(src).read(0, 24)
    features_dst = CropStore(dst).read(0, 15)
    dist, index = knn_search(features_src, features_dst, KnnSettings(k=3))
    got_index, got_dist = knn.read(0, len(knn))
    np.testing.assert_array_equal(got_index, index)
    np.testing.assert_allclose(got_dist, dist, atol=1e-6)
    assert knn.index.dtype == np.int64 and knn.dist.dtype == np.float32 and knn.k == 3 and len(knn) == 24
    assert knn.attrs["k"] == 3 and knn.attrs["index"] == "flat" and knn.attrs["num_target"] == 15
    assert knn.random_weights  # the target store was made with random weights
    assert [s for s, _, _ in knn.iter_chunks(10)] == [0, 10, 20]


def test_mismatched_feature_sizes_name_both_stores(tmp_path, stores):
    src, _ = stores
    other = random_crop_store(tmp_path / "other.zarr", 3, 2, (20, 30), seed=3, dim=256)
    with pytest.raises(EpeflowError, match=r"src\.zarr has 512-d features, .*other\.zarr has 256-d"):
        run_knn(src, other, tmp_path / "knn.zarr", {"k": 1})
    assert not (tmp_path / "knn.zarr").exists()


def test_incomplete_knn_store_is_an_error(tmp_path, stores):
    import zarr

    out = tmp_path / "knn.zarr"
    run_knn(*stores, out, {"k": 2})
    zarr.open_group(str(out), mode="a").attrs["complete"] = False
    with pytest.raises(EpeflowError, match=r"knn\.zarr is incomplete"):
        KnnStore(out)


def test_a_rerun_removes_the_store_a_killed_run_left(tmp_path, stores):
    src, dst = stores
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    left = tmp_path / f".knn.zarr.tmp-{proc.pid}-0123abcd"
    (left / "index").mkdir(parents=True)
    run_knn(src, dst, tmp_path / "knn.zarr", {"k": 1})
    assert not left.exists() and (tmp_path / "knn.zarr").is_dir()

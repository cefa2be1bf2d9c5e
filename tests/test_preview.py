import numpy as np
import pytest
import zarr
from crop_fixtures import make_crop_store_pair
from PIL import Image

from epeflow.artifacts.knn import KnnStore
from epeflow.errors import EpeflowError
from epeflow.io import read_table, write_table
from epeflow.matching.filter import run_filter
from epeflow.matching.knn import run_knn
from epeflow.matching.preview import distance_histogram, load_crops, neighbour_rank, pick_pairs, run_preview


@pytest.fixture
def matched(tmp_path):
    out = make_crop_store_pair(tmp_path)
    knn = tmp_path / "knn.zarr"
    run_knn(out["syn"][1], out["real"][1], knn, {"k": 3})
    matches = tmp_path / "matches.parquet"
    run_filter(knn, out["syn"][1], out["real"][1], matches, 4.0)
    return {**out, "knn": knn, "matches": matches, "root": tmp_path}


def test_pair_choice_is_seeded_and_distinct():
    a = pick_pairs(100, 10, seed=1)
    np.testing.assert_array_equal(a, pick_pairs(100, 10, seed=1))
    assert len(set(a.tolist())) == 10
    assert len(pick_pairs(4, 10, seed=0)) == 4


def test_crops_are_cut_from_the_right_frame(matched):
    manifest, _ = matched["syn"]
    paths = read_table(manifest)[0]["path"].tolist()
    crops = load_crops(paths, np.array([2, 0]), np.array([[1, 5, 2, 9], [0, 3, 0, 3]]))
    assert crops[0].shape == (4, 7, 3) and crops[1].shape == (3, 3, 3)
    np.testing.assert_array_equal(crops[0], np.asarray(Image.open(paths[2]).convert("RGB"))[1:5, 2:9])


def test_histogram_counts_every_distance_and_the_kept_pairs(matched):
    knn = KnnStore(matched["knn"])
    dist = knn.dist[:]
    threshold = float(np.median(dist))
    counts, edges, kept, empty = distance_histogram(knn, threshold)
    assert counts.sum() == dist.size and empty == 0
    assert kept == int((dist < threshold).sum())
    assert edges[0] == 0 and edges[-1] >= dist.max()


def test_empty_slots_are_left_out_of_the_histogram(matched):
    group = zarr.open_group(str(matched["knn"]), mode="a")
    index = group["index"][:]
    index[0, 0] = -1
    group["index"][:] = index
    counts, _, _, empty = distance_histogram(KnnStore(matched["knn"]), 1.0)
    assert empty == 1 and counts.sum() == index.size - 1


def test_preview_writes_both_pictures(matched):
    root = matched["root"]
    grid, hist = root / "preview.png", root / "distances.png"
    run_preview(matched["matches"], matched["knn"], matched["syn"][0], matched["real"][0], matched["syn"][1],
                matched["real"][1], grid, hist, 1.0, pairs=4)
    with Image.open(grid) as g, Image.open(hist) as h:
        assert g.format == h.format == "PNG"
        assert g.size[1] > g.size[0]  # one row per pair
    assert not list(root.glob(".*.tmp-*"))


def test_no_pairs_is_an_error(matched):
    root = matched["root"]
    df, meta = read_table(matched["matches"])
    write_table(root / "empty.parquet", df.iloc[:0], meta)
    with pytest.raises(EpeflowError, match="has no pairs"):
        run_preview(
            root / "empty.parquet",
            matched["knn"],
            matched["syn"][0],
            matched["real"][0],
            matched["syn"][1],
            matched["real"][1],
            root / "g.png",
            root / "h.png",
            1.0,
        )


def test_neighbour_rank_is_the_targets_place_in_the_knn_row(matched):
    knn = KnnStore(matched["knn"])
    index = knn.index[:]
    assert neighbour_rank(knn, 4, int(index[4, 2])) == 2 or index[4, 2] in index[4, :2]
    assert neighbour_rank(knn, 4, -7) == -1

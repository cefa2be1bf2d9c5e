import numpy as np
import pytest

from epeflow.common.shards import shard_count, shard_range
from epeflow.features.boxes import sample_boxes


def test_boxes_are_seeded_per_frame_and_inside_the_frame():
    a = sample_boxes(frame=3, height=40, width=60, size=16, count=50, seed=7)
    b = sample_boxes(frame=3, height=40, width=60, size=16, count=50, seed=7)
    assert a.dtype == np.int32 and a.shape == (50, 4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sample_boxes(4, 40, 60, 16, 50, seed=7))
    assert not np.array_equal(a, sample_boxes(3, 40, 60, 16, 50, seed=8))
    r0, r1, c0, c1 = a.T
    assert (r1 - r0 == 16).all() and (c1 - c0 == 16).all()
    assert r0.min() >= 0 and r1.max() <= 40 and c0.min() >= 0 and c1.max() <= 60


def test_every_position_is_reachable_including_both_ends():
    boxes = sample_boxes(frame=0, height=10, width=12, size=8, count=2000, seed=0)
    assert set(boxes[:, 0].tolist()) == {0, 1, 2}  # r0 in 0..height-size inclusive, as the reference
    assert set(boxes[:, 2].tolist()) == {0, 1, 2, 3, 4}


def test_a_frame_exactly_the_crop_size_has_one_position():
    boxes = sample_boxes(frame=5, height=8, width=8, size=8, count=3, seed=1)
    assert (boxes == [0, 8, 0, 8]).all()


def test_crop_larger_than_frame_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        sample_boxes(frame=0, height=10, width=30, size=16, count=1, seed=0)


def test_shards_partition_frames_contiguously():
    for n in (0, 1, 7, 10):
        for shards in (1, 3, 4):
            ranges = [shard_range(n, i, shards) for i in range(shards)]
            assert [f for r in ranges for f in r] == list(range(n))
            assert max(len(r) for r in ranges) - min(len(r) for r in ranges) <= 1


def test_bad_shard_index_is_refused():
    with pytest.raises(ValueError):
        shard_range(10, 3, 3)
    with pytest.raises(ValueError):
        shard_range(10, 0, 0)


def test_shard_count_follows_shard_frames():
    assert [shard_count(n, 500) for n in (0, 1, 500, 501, 25_000)] == [1, 1, 1, 2, 50]
    assert shard_count(25_000, None) == 1
    # balanced ranges cover every frame once, some empty when fewer frames are left than planned
    ranges = [shard_range(3, i, 5) for i in range(5)]
    assert [f for r in ranges for f in r] == [0, 1, 2] and sum(len(r) == 0 for r in ranges) == 2


def test_split_frames_for_planning():
    from epeflow.common.shards import split_frames

    assert split_frames(25_000, {"val": 0.1, "test": 0.1}, "test", None) == 2500
    assert split_frames(25_000, {"val": 0.1, "test": 0.1}, "train", None) == 20_000
    assert split_frames(25_000, {}, "all", 100) == 100
    assert split_frames(3, {"val": 0.1, "test": 0.1}, "test", None) == 1

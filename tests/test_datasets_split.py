"""Deterministic splits by hashed keys."""

from __future__ import annotations

import numpy as np

from epeflow.datasets.split import assign_splits, split_units, unit_hash


def test_hash_is_stable_and_uniform():
    keys = [f"frame_{i}" for i in range(4000)]
    u = unit_hash(keys, 0)
    assert np.array_equal(u, unit_hash(keys, 0)) and not np.array_equal(u, unit_hash(keys, 1))
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    assert unit_hash(["a"], 0)[0] == unit_hash(["b", "a"], 0)[1]  # a key's value does not depend on the others


def test_fractions_are_respected_on_large_sets():
    split = split_units([str(i) for i in range(20000)], val=0.1, test=0.2, seed=0)
    frac = {s: float((split == s).mean()) for s in ("train", "val", "test")}
    assert abs(frac["test"] - 0.2) < 0.01 and abs(frac["val"] - 0.1) < 0.01


def test_adding_frames_does_not_move_existing_ones():
    small = split_units([str(i) for i in range(500)], 0.1, 0.1, 3)
    large = split_units([str(i) for i in range(1000)], 0.1, 0.1, 3)
    assert np.array_equal(small, large[:500])


def test_tiny_sets_still_get_train_and_test():
    for seed in range(20):
        two = split_units(["a", "b"], 0.1, 0.1, seed)
        assert sorted(two) == ["test", "train"]
        four = split_units(["a", "b", "c", "d"], 0.1, 0.1, seed)
        assert {"train", "val", "test"} == set(four) and (four == "train").sum() >= 1
    assert split_units(["only"], 0.1, 0.1, 0).tolist() == ["train"]
    assert set(split_units(["a", "b", "c"], 0.0, 0.0, 0)) == {"train"}


def test_frames_of_a_sequence_share_a_split():
    keys = [f"seq{i % 7}" for i in range(70)]
    split = assign_splits(keys, 0.2, 0.2, 1)
    for s in set(keys):
        assert len({split[i] for i, k in enumerate(keys) if k == s}) == 1
    assert "test" in set(split)

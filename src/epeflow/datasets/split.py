"""Deterministic train / val / test splits by hashing a key (frame id, or sequence so none straddles).

A unit's split depends only on its key and the salt, so adding frames never moves existing ones. Tiny
datasets would often draw no test unit at all; then units are moved (lowest hash first) so that train,
test (when its fraction is > 0, from 2 units) and val (when > 0, from 3 units) are each non-empty.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

SPLIT_NAMES = ("train", "val", "test")


def unit_hash(keys: Sequence[str], seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per key, from sha1 of `<seed>:<key>` (stable across runs and machines)."""
    out = np.empty(len(keys), np.float64)
    for i, key in enumerate(keys):
        digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
        out[i] = int.from_bytes(digest[:8], "big") / 2.0**64
    return out


_PRIORITY = {"train": 0, "test": 1, "val": 2}  # training needs data most, then enhancement (test)


def _ensure(split: np.ndarray, u: np.ndarray, name: str, lowest: bool) -> None:
    """Give `name` a unit when it has none, taken from a split that keeps one or matters less."""
    if (split == name).any():
        return
    names, counts = np.unique(split.astype(str), return_counts=True)
    count = dict(zip(names.tolist(), counts.tolist(), strict=True))
    donors = np.flatnonzero([count[s] > 1 or _PRIORITY[s] > _PRIORITY[name] for s in split])
    if len(donors):
        pick = donors[np.argmin(u[donors])] if lowest else donors[np.argmax(u[donors])]
        split[pick] = name


def split_units(keys: Sequence[str], val: float, test: float, seed: int) -> np.ndarray:
    """Split of each unique unit key: 'test' for hash < test, 'val' below test + val, else 'train'."""
    u = unit_hash(keys, seed)
    split = np.where(u < test, "test", np.where(u < test + val, "val", "train")).astype(object)
    n = len(keys)
    if n == 1:
        split[:] = "train"
        return split
    _ensure(split, u, "train", lowest=False)
    if test > 0:
        _ensure(split, u, "test", lowest=True)
    if val > 0 and n >= 3:
        _ensure(split, u, "val", lowest=True)
    return split


def assign_splits(keys: Sequence[str], val: float, test: float, seed: int) -> np.ndarray:
    """Split per frame, where frames sharing a key (a sequence) always share a split."""
    unique, inverse = np.unique(np.asarray(keys, dtype=object).astype(str), return_inverse=True)
    return split_units(unique.tolist(), val, test, seed)[inverse]

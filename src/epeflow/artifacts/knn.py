"""knn.zarr: for every source crop its k nearest target crops (`index` [Ms, k] int64) and their
squared distances of L2-normalised features (`dist` [Ms, k] float32), rows in source-crop order."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from epeflow.artifacts.crops import CropStore
from epeflow.artifacts.zarr_rows import RowWriter, check_arrays, create_rows_array, open_group_checked, plain_attrs
from epeflow.artifacts.zarr_rows import read_rows as _read_rows
from epeflow.errors import EpeflowError
from epeflow.io import PathLike

log = logging.getLogger(__name__)

_WHAT = "k-NN store"
_RERUN = "rerun `epeflow knn`"
METRIC = "squared_l2_of_l2_normalized"


class KnnStore:
    """Reader of knn.zarr; opening it checks that it is complete."""

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        group = open_group_checked(self.path, _WHAT, _RERUN)
        self.attrs: dict[str, Any] = plain_attrs(group.attrs)
        if not self.attrs.get("complete"):
            raise EpeflowError(f"{_WHAT} {self.path} is incomplete (no `complete` mark); delete it and {_RERUN}")
        arrays = check_arrays(
            group, self.path, _WHAT, _RERUN, {"index": ((None, None), ("int64",)), "dist": ((None, None), ("float32",))}
        )
        self.index: zarr.Array = arrays["index"]
        self.dist: zarr.Array = arrays["dist"]
        if self.index.shape != self.dist.shape:
            raise EpeflowError(f"{_WHAT} {self.path}: `index` and `dist` have different shapes; {_RERUN}")

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def k(self) -> int:
        return int(self.index.shape[1])

    @property
    def random_weights(self) -> bool:
        return bool(self.attrs.get("random_weights", False))

    @property
    def chunk_rows(self) -> int:
        return int(self.index.chunks[0])

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(index (n, k) int64, dist (n, k) float32) of source crops [start, stop)."""
        return (
            _read_rows(self.index, start, stop, self.path, _WHAT),
            _read_rows(self.dist, start, stop, self.path, _WHAT),
        )

    def iter_chunks(self, chunk_size: int | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(start, index, dist) blocks over all source crops."""
        step = max(1, chunk_size or self.chunk_rows)
        for start in range(0, len(self), step):
            yield (start, *self.read(start, min(start + step, len(self))))


def create_knn_store(
    path: PathLike, rows: int, k: int, chunk_rows: int, attrs: Mapping[str, Any]
) -> tuple[zarr.Group, RowWriter]:
    group = zarr.open_group(str(path), mode="w")
    group.attrs.update(dict(attrs))
    writer = RowWriter(
        {
            "index": create_rows_array(group, "index", rows, k, "int64", chunk_rows),
            "dist": create_rows_array(group, "dist", rows, k, "float32", chunk_rows),
        }
    )
    return group, writer


def reopen_knn_store(path: PathLike, start: int) -> tuple[zarr.Group, RowWriter]:
    """A store `create_knn_store` made and a killed run filled up to row `start` (a chunk boundary), and a
    writer that continues there."""
    group = zarr.open_group(str(path), mode="r+")
    return group, RowWriter({name: group[name] for name in ("index", "dist")}, start=start)


def check_same_dim(src: CropStore, dst: CropStore) -> None:
    if src.dim != dst.dim:
        raise EpeflowError(
            f"feature sizes differ: {src.path} has {src.dim}-d features, {dst.path} has {dst.dim}-d; "
            "rebuild both crop stores with one epeflow version"
        )
    if src.attrs.get("feature") != dst.attrs.get("feature"):
        raise EpeflowError(
            f"crop features differ: {src.path} holds {src.attrs.get('feature')!r}, {dst.path} holds "
            f"{dst.attrs.get('feature')!r}; rebuild them with one config"
        )

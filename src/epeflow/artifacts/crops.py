"""crops.zarr: crop boxes and their VGG16 features, written in shards and merged in frame order.

Layout (zarr v3 group): `frame` [M] int32, `box` [M, 4] int32 (r0, r1, c0, c1), `features` [M, 512]
float16, attrs with the settings that produced them (`SETTINGS_KEYS`), a provenance stamp and
`complete: true`, set last. A shard also records its frame range in `frames` = [start, stop).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from epeflow.artifacts.zarr_rows import (
    RowWriter,
    check_arrays,
    create_rows_array,
    open_group_checked,
    plain_attrs,
    read_rows,
)
from epeflow.errors import EpeflowError
from epeflow.io import PathLike, atomic_path
from epeflow.log import progress
from epeflow.provenance import stamp

log = logging.getLogger(__name__)

FEATURE_DIM = 512
FEATURE_NAME = "vgg16_relu5_3"
SETTINGS_KEYS = ("mean", "std", "crop_size", "per_image", "seed", "padding", "feature", "random_weights", "num_frames")
SHARD_KEYS = ("frames", "shard", "num_shards")
_WHAT = "crop store"
_RERUN = "rerun `epeflow crops` (snakemake rebuilds it when it is deleted)"


class CropStore:
    """Reader of a crops.zarr store; opening it checks that it is complete and has `dim`-d features
    (512; None accepts any size, for callers that compare two stores and report both)."""

    def __init__(self, path: PathLike, dim: int | None = FEATURE_DIM) -> None:
        self.path = Path(path)
        group = open_group_checked(self.path, _WHAT, _RERUN)
        self.attrs: dict[str, Any] = plain_attrs(group.attrs)
        if not self.attrs.get("complete"):
            raise EpeflowError(f"{_WHAT} {self.path} is incomplete (no `complete` mark); delete it and {_RERUN}")
        missing = [k for k in SETTINGS_KEYS if k not in self.attrs]
        if missing:
            raise EpeflowError(f"{_WHAT} {self.path} lacks attribute(s) {', '.join(missing)}; {_RERUN}")
        arrays = check_arrays(
            group,
            self.path,
            _WHAT,
            _RERUN,
            {
                "frame": ((None,), ("int32",)),
                "box": ((None, 4), ("int32",)),
                "features": ((None, None), ("float16",)),
            },
        )
        self.features: zarr.Array = arrays["features"]
        if dim is not None and self.features.shape[1] != dim:
            raise EpeflowError(
                f"{_WHAT} {self.path} has {self.features.shape[1]}-d features, expected {dim} "
                f"({FEATURE_NAME}); it was written by something else: delete it and {_RERUN}"
            )
        n = self.features.shape[0]
        self.frame: np.ndarray = read_rows(arrays["frame"], 0, n, self.path, _WHAT)  # (M,) int32
        self.box: np.ndarray = read_rows(arrays["box"], 0, n, self.path, _WHAT)  # (M, 4) int32

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def random_weights(self) -> bool:
        return bool(self.attrs.get("random_weights", False))

    @property
    def chunk_rows(self) -> int:
        return int(self.features.chunks[0])

    def settings(self) -> dict[str, Any]:
        return {k: self.attrs[k] for k in SETTINGS_KEYS}

    def read(self, start: int, stop: int, dtype: Any = np.float32) -> np.ndarray:
        """Features of crops [start, stop) as `dtype`; (n, 512)."""
        return read_rows(self.features, start, stop, self.path, _WHAT).astype(dtype, copy=False)

    def iter_chunks(
        self, chunk_size: int, dtype: Any = np.float32, first: int = 0
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(start, features[start:start+chunk_size]) over the store from row `first`, float32 by default."""
        for start in range(first, len(self), max(1, chunk_size)):
            yield start, self.read(start, min(start + chunk_size, len(self)), dtype)


def create_crop_store(
    path: PathLike, rows: int, chunk_rows: int, attrs: Mapping[str, Any], dim: int = FEATURE_DIM
) -> tuple[zarr.Group, RowWriter]:
    """A new, not yet complete store with room for `rows` crops, and the writer that fills it."""
    group = zarr.open_group(str(path), mode="w")
    group.attrs.update(dict(attrs))
    writer = RowWriter(
        {
            "frame": create_rows_array(group, "frame", rows, None, "int32", chunk_rows),
            "box": create_rows_array(group, "box", rows, 4, "int32", chunk_rows),
            "features": create_rows_array(group, "features", rows, dim, "float16", chunk_rows),
        }
    )
    return group, writer


def reopen_crop_store(path: PathLike, start: int) -> tuple[zarr.Group, RowWriter]:
    """A store `create_crop_store` made and a killed run filled up to row `start` (a chunk boundary), and
    a writer that continues there."""
    group = zarr.open_group(str(path), mode="r+")
    return group, RowWriter({name: group[name] for name in ("frame", "box", "features")}, start=start)


def mark_complete(group: zarr.Group, writer: RowWriter) -> None:
    writer.close()
    group.attrs["complete"] = True


def _shard_range(store: CropStore) -> tuple[int, int]:
    frames = store.attrs.get("frames")
    if frames is None:
        return 0, int(store.attrs["num_frames"])
    return int(frames[0]), int(frames[1])


def check_shards(stores: Sequence[CropStore]) -> list[CropStore]:
    """Shards in frame order after checking they share their settings and cover every frame once."""
    if not stores:
        raise EpeflowError("crops-merge: no shard stores given")
    reference = stores[0].settings()
    for store in stores[1:]:
        settings = store.settings()
        differing = [k for k in SETTINGS_KEYS if settings[k] != reference[k]]
        if differing:
            detail = ", ".join(f"{k}={settings[k]!r} (vs {reference[k]!r})" for k in differing)
            raise EpeflowError(
                f"crop shard {store.path} differs from {stores[0].path} in {detail}; delete the shards "
                f"and rerun `epeflow crops` for all of them with one config"
            )
    ordered = sorted(stores, key=_shard_range)
    expected = 0
    for store in ordered:
        start, stop = _shard_range(store)
        if start != expected:
            what = "overlaps the previous shard" if start < expected else f"leaves frames {expected}..{start - 1} out"
            raise EpeflowError(f"crop shard {store.path} (frames {start}..{stop - 1}) {what}; pass every shard once")
        expected = stop
    total = int(reference["num_frames"])
    if expected != total:
        raise EpeflowError(f"crop shards cover frames 0..{expected - 1} of {total}; a shard is missing")
    return ordered


def merge_crop_stores(shards: Sequence[PathLike], out: PathLike) -> None:
    """Concatenate shard stores in frame order into `out`, chunk by chunk (atomic)."""
    stores = check_shards([CropStore(p) for p in shards])
    settings = stores[0].settings()
    rows = sum(len(s) for s in stores)
    chunk_rows = max(s.chunk_rows for s in stores)
    attrs = {
        **settings,
        "chunk_size": chunk_rows,
        "provenance": stamp(bool(settings["random_weights"]), merged_from=len(stores)),
    }
    with atomic_path(out, sweep=True) as tmp:
        group, writer = create_crop_store(tmp, rows, chunk_rows, attrs)
        for store in progress(stores, "merge crop shards", unit="shard"):
            for start, feats in store.iter_chunks(chunk_rows, dtype=np.float16):
                stop = start + len(feats)
                writer.append(frame=store.frame[start:stop], box=store.box[start:stop], features=feats)
        mark_complete(group, writer)
    log.info("merged %d shards: %d crops -> %s", len(stores), rows, out)

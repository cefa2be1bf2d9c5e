"""matches.parquet: the matched (synthetic crop, real crop) pairs that the filter keeps, with their distance.

The table is thin: crop ids into the two crops.zarr stores and the distance. Frames and boxes live once, in
the crop stores; `pair_boxes` joins them when a consumer needs them (weights, training, previews, report),
so the filter writes 3 columns, not 14 (the neighbour rank, when wanted, is the target's position in its
knn.zarr row). Row order is the reference's: row-major over
(source crop, neighbour rank). `load_pairs` joins the matches with their boxes and sampling weights
(`artifacts.weights`), as training draws them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epeflow.artifacts.crops import CropStore
from epeflow.artifacts.weights import read_weights
from epeflow.errors import EpeflowError
from epeflow.io import PathLike, read_table, read_table_meta, table_columns, write_table

BOX = ("r0", "r1", "c0", "c1")  # crop box: rows r0..r1, columns c0..c1 (end exclusive)
MATCH_COLUMNS: dict[str, str] = {
    "src_crop": "int64",  # row of the source crops.zarr
    "dst_crop": "int64",  # row of the target crops.zarr
    "dist": "float32",
}
_RERUN = "rerun the matching stage (`epeflow filter`)"


def write_matches(out: PathLike, matches: pd.DataFrame, meta: dict[str, Any]) -> None:
    write_table(out, matches, meta)


def read_matches(path: PathLike, columns: list[str] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(matches, metadata); `columns` reads only those, and each must be there."""
    present = table_columns(path)
    wanted = list(columns or MATCH_COLUMNS)
    missing = [c for c in wanted if c not in present]
    if missing:
        raise EpeflowError(f"{path} lacks column(s) {', '.join(missing)}; {_RERUN}")
    return read_table(path, columns=wanted)


def read_matches_meta(path: PathLike) -> dict[str, Any]:
    return read_table_meta(path)


@dataclass(frozen=True)
class PairBoxes:
    """Frames and boxes of matched pairs (row i = matches row i), read from the two crop stores."""

    src_frame: np.ndarray  # (M,) int64
    src_box: np.ndarray  # (M, 4) int64: r0, r1, c0, c1
    dst_frame: np.ndarray  # (M,) int64
    dst_box: np.ndarray  # (M, 4) int64


def side_boxes(
    crop: np.ndarray, store: CropStore, meta: dict[str, Any], side: str, path: PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """(frame (M,) int64, box (M, 4) int64) of crop ids `crop` of one side ("source" or "target") of the
    matches at `path`, after checking `store` has as many crops as the metadata records for that side."""
    expected = meta.get(f"num_{side}_crops")
    if expected is not None and int(expected) != len(store):
        raise EpeflowError(
            f"{path} was made from {side} crops with {int(expected)} rows but {store.path} has {len(store)}; "
            f"the crops changed since: {_RERUN}, or pass the crops.zarr the matches were made from"
        )
    if len(crop) and (crop.min() < 0 or crop.max() >= len(store)):
        raise EpeflowError(f"{path} refers to {side} crop {crop.max()} but {store.path} has {len(store)}; {_RERUN}")
    return store.frame.take(crop).astype(np.int64), store.box.take(crop, axis=0).astype(np.int64)


def pair_boxes(
    src_crop: np.ndarray,
    dst_crop: np.ndarray,
    src: CropStore,
    dst: CropStore,
    meta: dict[str, Any],
    path: PathLike,
) -> PairBoxes:
    """Frames and boxes of the pairs (src_crop[i], dst_crop[i]), after checking that the stores are the
    ones the matches at `path` were made from (same crop counts as its metadata records)."""
    src_frame, src_box = side_boxes(np.asarray(src_crop), src, meta, "source", path)
    dst_frame, dst_box = side_boxes(np.asarray(dst_crop), dst, meta, "target", path)
    return PairBoxes(src_frame, src_box, dst_frame, dst_box)


def read_pair_boxes(
    matches_path: PathLike, src_crops: PathLike, dst_crops: PathLike
) -> tuple[pd.DataFrame, PairBoxes, dict[str, Any]]:
    """(matches, their frames and boxes, metadata) from matches.parquet and both crops.zarr."""
    matches, meta = read_matches(matches_path)
    src, dst = CropStore(src_crops, dim=None), CropStore(dst_crops, dim=None)
    boxes = pair_boxes(matches["src_crop"].to_numpy(), matches["dst_crop"].to_numpy(), src, dst, meta, matches_path)
    return matches, boxes, meta


@dataclass(frozen=True)
class Pairs:
    """Matched crop pairs as arrays (row i = matches.parquet row i) with their sampling weights."""

    src_frame: np.ndarray  # (M,) int64
    src_box: np.ndarray  # (M, 4) int64: r0, r1, c0, c1
    dst_frame: np.ndarray  # (M,) int64
    dst_box: np.ndarray  # (M, 4) int64
    weight: np.ndarray  # (M,) float64
    meta: dict[str, Any]  # metadata of matches.parquet (provenance)
    weight_meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.src_frame)


def load_pairs(matches_path: Path, weights_path: Path, src_crops: Path, dst_crops: Path) -> Pairs:
    """Read matches.parquet, its boxes from both crops.zarr, and weights.parquet; check they belong together."""
    matches, boxes, meta = read_pair_boxes(matches_path, src_crops, dst_crops)
    weight, weight_meta = read_weights(weights_path)
    if len(weight) != len(matches):
        raise EpeflowError(
            f"{weights_path} has {len(weight)} weights but {matches_path} has {len(matches)} pairs; "
            "they come from different runs: rerun `epeflow weights` on these matches"
        )
    if len(matches) == 0:
        raise EpeflowError(f"{matches_path} has no matched pairs; raise the experiment's `max_dist` or `knn.k`")
    if not np.isfinite(weight).all() or (weight < 0).any() or weight.sum() <= 0:
        raise EpeflowError(f"{weights_path}: weights must be finite, non-negative and not all zero")
    return Pairs(
        src_frame=boxes.src_frame,
        src_box=boxes.src_box,
        dst_frame=boxes.dst_frame,
        dst_box=boxes.dst_box,
        weight=weight,
        meta=meta,
        weight_meta=weight_meta,
    )

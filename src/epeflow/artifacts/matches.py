"""matches.parquet: the matched (synthetic crop, real crop) pairs that the filter keeps, with their distance.

Row order is the reference's: row-major over (source crop, neighbour rank). `load_pairs` joins the matches
with their sampling weights (`artifacts.weights`), as training draws them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epeflow.artifacts.weights import read_weights
from epeflow.errors import EpeflowError
from epeflow.io import PathLike, read_table, read_table_meta, table_columns, write_table

BOX = ("r0", "r1", "c0", "c1")  # crop box: rows r0..r1, columns c0..c1 (end exclusive)
BOX_COLUMNS = {side: [f"{side}_{b}" for b in BOX] for side in ("src", "dst")}
MATCH_COLUMNS: dict[str, str] = {
    "src_crop": "int64",
    "src_frame": "int32",
    **{c: "int32" for c in BOX_COLUMNS["src"]},
    "dst_crop": "int64",
    "dst_frame": "int32",
    **{c: "int32" for c in BOX_COLUMNS["dst"]},
    "dist": "float32",
    "rank": "int16",
}
_RERUN = "rerun the matching stage (`epeflow filter`)"


def write_matches(out: PathLike, matches: pd.DataFrame, meta: dict[str, Any]) -> None:
    write_table(out, matches, meta)


def read_matches(path: PathLike, columns: list[str] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(matches, metadata); `columns` reads only those, and each must be there."""
    present = table_columns(path)
    missing = [c for c in (columns or MATCH_COLUMNS) if c not in present]
    if missing:
        raise EpeflowError(f"{path} lacks column(s) {', '.join(missing)}; {_RERUN}")
    return read_table(path, columns=None if columns is None else list(columns))


def read_matches_meta(path: PathLike) -> dict[str, Any]:
    return read_table_meta(path)


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


def load_pairs(matches_path: Path, weights_path: Path) -> Pairs:
    """Read matches.parquet and weights.parquet and check they belong together."""
    matches, meta = read_matches(matches_path, ["src_frame", *BOX_COLUMNS["src"], "dst_frame", *BOX_COLUMNS["dst"]])
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
        src_frame=matches["src_frame"].to_numpy(np.int64),
        src_box=matches[BOX_COLUMNS["src"]].to_numpy(np.int64),
        dst_frame=matches["dst_frame"].to_numpy(np.int64),
        dst_box=matches[BOX_COLUMNS["dst"]].to_numpy(np.int64),
        weight=weight,
        meta=meta,
        weight_meta=weight_meta,
    )

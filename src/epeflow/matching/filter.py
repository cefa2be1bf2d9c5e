"""Keep k-NN pairs closer than `max_dist` (the reference's filter.py, vectorised).

Rows come out in the reference's order: row-major over (source crop, neighbour rank), which is the
order of `np.nonzero(dist < max_dist)`. The table is thin (source crop, target crop, distance): frames and
boxes are read from the crop stores by whoever needs them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from epeflow.artifacts.crops import CropStore
from epeflow.artifacts.knn import KnnStore
from epeflow.artifacts.matches import MATCH_COLUMNS, write_matches
from epeflow.errors import EpeflowError
from epeflow.io import PathLike
from epeflow.log import progress
from epeflow.provenance import any_random, stamp

log = logging.getLogger(__name__)


def select_pairs(index: np.ndarray, dist: np.ndarray, max_dist: float) -> np.ndarray:
    """Positions (int64, in the row-major (rows, k) grid) of the pairs with dist < max_dist, in the
    reference's order; empty slots (-1) never.

    One flat nonzero: 2-D np.nonzero is several times slower. Empty slots (IVF only; faiss gives them an
    infinite distance) are looked for only when the block has any.
    """
    keep = dist < max_dist  # (rows, k) bool
    if index.size and index.min() < 0:
        keep &= index >= 0
    return np.flatnonzero(keep)  # (n,)


def gather_matches(flat: np.ndarray, index: np.ndarray, dist: np.ndarray, row_offset: int = 0) -> dict[str, np.ndarray]:
    """Columns of matches.parquet for the pairs at grid positions `flat` of a block of k-NN rows starting at
    `row_offset`; `flat` is consumed (it becomes the source crop column in place).

    Two gathers (target crop, distance) and one division: boxes stay in the crop stores
    (`artifacts.matches.pair_boxes`), the neighbour rank in knn.zarr. Every fresh page costs a page fault,
    so nothing is allocated that the table does not keep, and nothing is copied to reach the contract
    dtypes when the store already holds them (int64 index, float32 distances).
    """
    cols = {
        "dst_crop": np.asarray(index).reshape(-1).take(flat),
        "dist": np.asarray(dist).reshape(-1).take(flat),
    }
    src = np.floor_divide(flat, dist.shape[1], out=flat)  # (n,) row in the block
    if row_offset:
        src += row_offset
    cols["src_crop"] = src
    return {name: cols[name].astype(dtype, copy=False) for name, dtype in MATCH_COLUMNS.items()}


def matches_frame(blocks: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """One table of the blocks' columns. The arrays are handed to pandas as they are (copy=False): its
    default copies every column and packs same-dtype columns into 2-D blocks, costing as much as the
    whole filter."""
    if not blocks:
        return pd.DataFrame({name: np.zeros(0, dtype) for name, dtype in MATCH_COLUMNS.items()})
    if len(blocks) == 1:
        return pd.DataFrame(dict(blocks[0]), copy=False)
    return pd.DataFrame({name: np.concatenate([b[name] for b in blocks]) for name in MATCH_COLUMNS}, copy=False)


def describe_distances(dist: np.ndarray) -> str:
    finite = dist[np.isfinite(dist) & (dist < 1e30)]
    if finite.size == 0:
        return "no finite distances"
    q = np.quantile(finite, [0.01, 0.05, 0.25, 0.5])
    return (
        f"min {finite.min():.4g}, 1% {q[0]:.4g}, 5% {q[1]:.4g}, 25% {q[2]:.4g}, median {q[3]:.4g}, "
        f"max {finite.max():.4g} over {finite.size} pairs"
    )


def empty_result_error(knn: KnnStore, max_dist: float) -> EpeflowError:
    dist = np.concatenate([d.ravel() for _, _, d in knn.iter_chunks()]) if len(knn) else np.zeros(0, np.float32)
    finite = dist[np.isfinite(dist) & (dist < 1e30)]
    hint = f" (e.g. {np.quantile(finite, 0.25):.3g} keeps about a quarter of the pairs)" if finite.size else ""
    return EpeflowError(
        f"no matched pair: every k-NN distance in {knn.path} is >= max_dist {max_dist}. "
        f"Distances: {describe_distances(dist)}. Relax config key `experiments.<exp>.max_dist`{hint}."
    )


def check_knn_fits(knn: KnnStore, src: CropStore, dst: CropStore) -> None:
    if len(knn) != len(src):
        raise EpeflowError(
            f"{knn.path} has {len(knn)} rows but {src.path} has {len(src)} crops; rerun `epeflow knn` on these stores"
        )


def filter_matches(knn: KnnStore, src: CropStore, dst: CropStore, max_dist: float) -> pd.DataFrame:
    """matches.parquet rows for k-NN pairs closer than `max_dist`, block by block over source crops (the crop
    stores are only checked: their boxes are not copied into the table)."""
    check_knn_fits(knn, src, dst)
    blocks = []
    for start, index, dist in progress(knn.iter_chunks(), "filter", total=-(-len(knn) // knn.chunk_rows), unit="chunk"):
        if index.size and index.max() >= len(dst):
            raise EpeflowError(
                f"{knn.path} points at target crop {index.max()} but {dst.path} has {len(dst)}; rerun `epeflow knn`"
            )
        blocks.append(gather_matches(select_pairs(index, dist, max_dist), index, dist, start))
    return matches_frame(blocks)


def run_filter(knn_path: PathLike, src_path: PathLike, dst_path: PathLike, out: PathLike, max_dist: float) -> None:
    """`epeflow filter`: matches.parquet from knn.zarr and both crop stores."""
    knn, src, dst = KnnStore(knn_path), CropStore(src_path), CropStore(dst_path)
    matches = filter_matches(knn, src, dst, max_dist)
    if matches.empty:
        raise empty_result_error(knn, max_dist)
    random_weights = any_random(knn.random_weights, src.random_weights, dst.random_weights)
    meta = {
        "max_dist": float(max_dist),
        "k": knn.k,
        "num_source_crops": len(src),
        "num_target_crops": len(dst),
        "knn": str(Path(knn_path)),
        "source": str(Path(src_path)),
        "target": str(Path(dst_path)),
        "random_weights": random_weights,
        "provenance": stamp(random_weights),
    }
    write_matches(out, matches, meta)
    kept = matches["src_crop"].nunique()
    log.info("%d pairs below %s (%d of %d source crops matched)", len(matches), max_dist, kept, len(src))

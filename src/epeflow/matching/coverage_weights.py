"""Sampling weights that spread training crops evenly over the source frames (the reference's
compute_weights.py, without per-crop loops).

Density d(y, x) counts the matched pairs whose source crop covers pixel (y, x), accumulated in one map
per frame size; a pair's weight is max(d) / mean(d over its crop), so crops in often-matched regions are
drawn less. The map is built from a 2-D difference array (+1/-1 at the four corners, two cumsums) and
crop means come from its integral image (four lookups a crop); both are exact integer arithmetic, so
the result equals the straightforward loop bit for bit.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from epeflow.errors import EpeflowError
from epeflow.features.frames import read_frames
from epeflow.io import PathLike, read_table, write_table
from epeflow.provenance import stamp

log = logging.getLogger(__name__)

FORMULA = "max(density) / mean(density over crop), one density map per frame size"


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boxes clipped to the frame as numpy slicing does (d[r0:r1, c0:c1]); (n, 4) int64."""
    b = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    r = np.clip(b[:, 0:2], 0, height)
    c = np.clip(b[:, 2:4], 0, width)
    return np.stack([r[:, 0], np.maximum(r[:, 0], r[:, 1]), c[:, 0], np.maximum(c[:, 0], c[:, 1])], axis=1)


def density_map(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """How many boxes cover each pixel; (height, width) int64."""
    b = clip_boxes(boxes, height, width)
    r0, r1, c0, c1 = b.T
    stride = width + 1
    size = (height + 1) * stride
    diff = (
        np.bincount(r0 * stride + c0, minlength=size)
        - np.bincount(r0 * stride + c1, minlength=size)
        - np.bincount(r1 * stride + c0, minlength=size)
        + np.bincount(r1 * stride + c1, minlength=size)
    ).reshape(height + 1, stride)  # (H+1, W+1) corner increments
    return diff.cumsum(axis=0).cumsum(axis=1)[:height, :width]


def box_means(density: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean of `density` over each box (clipped like slicing; empty boxes give NaN as np.mean); (n,) float64."""
    height, width = density.shape
    b = clip_boxes(boxes, height, width)
    integral = np.zeros((height + 1, width + 1), dtype=np.int64)
    integral[1:, 1:] = density.cumsum(axis=0).cumsum(axis=1)  # integral[r, c] = sum of density[:r, :c]
    r0, r1, c0, c1 = b.T
    sums = integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]
    area = (r1 - r0) * (c1 - c0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums.astype(np.float64) / area


def frame_weights(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sampling weights of crops that all come from frames of one size; (n,) float64."""
    density = density_map(boxes, height, width)
    peak = density.max() if density.size else 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.float64(peak) / box_means(density, boxes)


def coverage_weights(boxes: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Sampling weights of source crops (n, 4) from frames of sizes (heights, widths); (n,) float64.

    Crops are grouped by their frame size; each group has its own density map.
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    sizes = np.stack([np.asarray(heights, np.int64), np.asarray(widths, np.int64)], axis=1)  # (n, 2)
    weights = np.empty(len(boxes), dtype=np.float64)
    if len(boxes) == 0:
        return weights
    distinct, group = np.unique(sizes, axis=0, return_inverse=True)
    group = group.reshape(-1)
    for g, (height, width) in enumerate(distinct):
        members = np.flatnonzero(group == g)
        weights[members] = frame_weights(boxes[members], int(height), int(width))
    return weights


def run_weights(matches_path: PathLike, manifest: PathLike, out: PathLike) -> np.ndarray:
    """`epeflow weights`: weights.parquet (column `weight`, aligned with the matches' rows)."""
    columns = ["src_frame", "src_r0", "src_r1", "src_c0", "src_c1"]
    matches, meta = read_table(matches_path)
    missing = [c for c in columns if c not in matches.columns]
    if missing:
        raise EpeflowError(f"{matches_path} lacks column(s) {', '.join(missing)}; rerun `epeflow filter`")
    frames = read_frames(manifest)
    src_frame = matches["src_frame"].to_numpy(np.int64)
    if len(src_frame) and (src_frame.min() < 0 or src_frame.max() >= len(frames)):
        raise EpeflowError(
            f"{matches_path} refers to source frame {src_frame.max()} but {manifest} has {len(frames)} frames; "
            "the matches are from another dataset version: rerun the matching stages"
        )
    heights = frames["height"].to_numpy(np.int64)[src_frame]
    widths = frames["width"].to_numpy(np.int64)[src_frame]
    boxes = matches[columns[1:]].to_numpy(np.int64)
    outside = (boxes[:, 0] < 0) | (boxes[:, 2] < 0) | (boxes[:, 1] > heights) | (boxes[:, 3] > widths)
    outside |= (boxes[:, 1] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 2])
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise EpeflowError(
            f"{matches_path} row {i}: crop {boxes[i].tolist()} does not lie inside source frame {src_frame[i]} "
            f"({heights[i]}x{widths[i]} in {manifest}); the matches are from another dataset version"
        )
    weights = coverage_weights(boxes, heights, widths)
    random_weights = bool(meta.get("random_weights", False))
    n_sizes = len(np.unique(np.stack([heights, widths], axis=1), axis=0)) if len(boxes) else 0
    write_table(
        out,
        pd.DataFrame({"weight": weights}),
        {
            "formula": FORMULA,
            "matches": str(Path(matches_path)),
            "num_pairs": len(weights),
            "frame_sizes": n_sizes,
            "random_weights": random_weights,
            "provenance": stamp(random_weights),
        },
    )
    log.info(
        "%d sampling weights from %d frame size(s); range %.3g..%.3g",
        len(weights),
        n_sizes,
        weights.min(initial=np.inf),
        weights.max(initial=0),
    )
    return weights

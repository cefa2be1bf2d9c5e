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

from epeflow.artifacts.crops import CropStore
from epeflow.artifacts.manifest import read_frames
from epeflow.artifacts.matches import read_matches, side_boxes
from epeflow.artifacts.weights import write_weights
from epeflow.errors import EpeflowError
from epeflow.io import PathLike
from epeflow.provenance import stamp

log = logging.getLogger(__name__)

FORMULA = "max(density) / mean(density over crop), one density map per frame size"


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boxes clipped to the frame as numpy slicing does (d[r0:r1, c0:c1]); (n, 4) int64."""
    b = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    b = np.minimum(np.maximum(b, 0), np.array([height, height, width, width], dtype=np.int64))
    np.maximum(b[:, 0], b[:, 1], out=b[:, 1])  # an end before its start is an empty slice
    np.maximum(b[:, 2], b[:, 3], out=b[:, 3])
    return b


def prefix_sums(a: np.ndarray) -> np.ndarray:
    """Inclusive 2-D prefix sums of `a`, in place; returns `a`.

    Along axis 0 one vector add a row: np.cumsum(axis=0) walks the columns with a row-sized stride and
    is ten times slower on a frame-sized map.
    """
    np.cumsum(a, axis=1, out=a)
    for i in range(1, a.shape[0]):
        np.add(a[i - 1], a[i], out=a[i])
    return a


def density_map(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """How many boxes cover each pixel; (height, width) int64."""
    r0, r1, c0, c1 = clip_boxes(boxes, height, width).T
    stride = width + 1
    size = (height + 1) * stride
    r0, r1 = r0 * stride, r1 * stride
    up = np.bincount(np.concatenate([r0 + c0, r1 + c1]), minlength=size)
    down = np.bincount(np.concatenate([r0 + c1, r1 + c0]), minlength=size)
    diff = (up - down).reshape(height + 1, stride)  # (H+1, W+1) corner increments
    return prefix_sums(diff)[:height, :width]


def box_means(density: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean of `density` over each box (clipped like slicing; empty boxes give NaN as np.mean); (n,) float64."""
    height, width = density.shape
    r0, r1, c0, c1 = clip_boxes(boxes, height, width).T
    integral = np.zeros((height + 1, width + 1), dtype=np.int64)
    integral[1:, 1:] = density
    flat = prefix_sums(integral).reshape(-1)  # integral[r, c] = sum of density[:r, :c]
    top, bottom = r0 * (width + 1), r1 * (width + 1)
    sums = flat.take(bottom + c1) - flat.take(top + c1) - flat.take(bottom + c0) + flat.take(top + c0)
    area = (r1 - r0) * (c1 - c0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums.astype(np.float64) / area


def frame_weights(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sampling weights of crops that all come from frames of one size; (n,) float64."""
    boxes = clip_boxes(boxes, height, width)
    density = density_map(boxes, height, width)
    peak = density.max() if density.size else 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.float64(peak) / box_means(density, boxes)


def size_groups(heights: np.ndarray, widths: np.ndarray) -> list[tuple[int, int, np.ndarray | None]]:
    """Pairs grouped by frame size: [(height, width, member positions, ascending)], members None when
    every pair has that one size (the common case: no gather at all).

    One integer key per pair and one np.unique on it: np.unique(sizes, axis=0) sorts rows as structured
    values and costs twice the weights themselves; a mask per size would pass over the pairs once a size.
    """
    h, w = np.asarray(heights, np.int64).reshape(-1), np.asarray(widths, np.int64).reshape(-1)
    if len(h) == 0:
        return []
    if h.min() < 0 or w.min() < 0:
        raise ValueError("frame sizes must be non-negative")
    key = h * (int(w.max()) + 1) + w  # (n,) one int64 a pair, same order as (height, width)
    if key.min() == key.max():
        return [(int(h[0]), int(w[0]), None)]
    _, first, group, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    order = np.argsort(group, kind="stable")  # (n,) positions grouped by size, ascending within a size
    ends = np.cumsum(counts)
    return [
        (int(h[first[g]]), int(w[first[g]]), order[end - count : end])
        for g, (count, end) in enumerate(zip(counts.tolist(), ends.tolist(), strict=True))
    ]


def coverage_weights(boxes: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Sampling weights of source crops (n, 4) from frames of sizes (heights, widths); (n,) float64.

    Crops are grouped by their frame size; each group has its own density map.
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    groups = size_groups(heights, widths)
    if len(groups) == 1 and groups[0][2] is None:
        return frame_weights(boxes, groups[0][0], groups[0][1])
    weights = np.empty(len(boxes), dtype=np.float64)
    for height, width, members in groups:
        weights[members] = frame_weights(boxes[members], height, width)
    return weights


def run_weights(matches_path: PathLike, src_crops: PathLike, manifest: PathLike, out: PathLike) -> np.ndarray:
    """`epeflow weights`: weights.parquet (column `weight`, aligned with the matches' rows); the source
    boxes come from the source crops.zarr the matches were made from."""
    matches, meta = read_matches(matches_path, ["src_crop"])
    src_frame, boxes = side_boxes(
        matches["src_crop"].to_numpy(), CropStore(src_crops, dim=None), meta, "source", matches_path
    )
    frames = read_frames(manifest)
    if len(src_frame) and (src_frame.min() < 0 or src_frame.max() >= len(frames)):
        raise EpeflowError(
            f"{matches_path} refers to source frame {src_frame.max()} but {manifest} has {len(frames)} frames; "
            "the matches are from another dataset version: rerun the matching stages"
        )
    heights = frames["height"].to_numpy(np.int64)[src_frame]
    widths = frames["width"].to_numpy(np.int64)[src_frame]
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
    n_sizes = len(size_groups(heights, widths))
    write_weights(
        out,
        weights,
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

"""Pictures to judge the matching: a grid of random matched crop pairs and the k-NN distance histogram.

Both are for the report: do matched crops look alike, and where does `max_dist` cut the distribution?
Rendering uses matplotlib's Figure directly (Agg), so no global pyplot state is touched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from epeflow.artifacts.knn import KnnStore
from epeflow.artifacts.manifest import read_frames
from epeflow.artifacts.matches import read_pair_boxes
from epeflow.errors import EpeflowError
from epeflow.io import PathLike, atomic_path, read_image

log = logging.getLogger(__name__)

MAX_SQUARED_DISTANCE = 4.0  # of two unit vectors


def pick_pairs(num_matches: int, count: int, seed: int) -> np.ndarray:
    """Up to `count` distinct match rows drawn with `seed`, in drawing order."""
    return np.random.default_rng(seed).permutation(num_matches)[: min(count, num_matches)]


def load_crops(paths: Sequence[str], frames: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    """Crops (r0:r1, c0:c1) of frames given by id; each image is decoded once."""
    cache: dict[int, np.ndarray] = {}
    crops = []
    for frame, (r0, r1, c0, c1) in zip(frames.tolist(), boxes.tolist(), strict=True):
        if frame not in cache:
            cache[frame] = read_image(paths[frame])
        crops.append(cache[frame][r0:r1, c0:c1])
    return crops


def render_pair_grid(
    src_crops: Sequence[np.ndarray], dst_crops: Sequence[np.ndarray], labels: Sequence[str], path: PathLike
) -> None:
    """One row per pair: source crop | target crop | text; PNG written atomically."""
    n = len(src_crops)
    fig = Figure(figsize=(7.5, 2.4 * max(n, 1)), dpi=80)
    axes = fig.subplots(max(n, 1), 3, squeeze=False)
    for row, (src, dst, text) in enumerate(zip(src_crops, dst_crops, labels, strict=True)):
        axes[row, 0].imshow(src)
        axes[row, 1].imshow(dst)
        axes[row, 2].text(0.0, 0.5, text, va="center", ha="left", fontsize=10, family="monospace")
    for ax in axes.ravel():
        ax.set_axis_off()
    axes[0, 0].set_title("source (synthetic)")
    axes[0, 1].set_title("matched target (real)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _valid(index: np.ndarray, dist: np.ndarray) -> np.ndarray:
    return (index >= 0) & np.isfinite(dist) & (dist < 1e30)


def distance_histogram(knn: KnnStore, max_dist: float, bins: int = 100) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Counts of all k-NN distances, read chunk by chunk, over [0, a bit beyond max(largest distance,
    max_dist)] (at most 4, the largest squared distance of unit vectors); also the number of pairs below
    `max_dist` and of empty slots (IVF): (counts (bins,), edges (bins+1,), kept, empty)."""
    largest = 0.0
    for _, index, dist in knn.iter_chunks():
        valid = _valid(index, dist)
        if valid.any():
            largest = max(largest, float(dist[valid].max()))
    upper = min(MAX_SQUARED_DISTANCE, 1.1 * max(largest, max_dist)) or MAX_SQUARED_DISTANCE
    edges = np.linspace(0.0, upper, bins + 1)
    counts = np.zeros(bins, dtype=np.int64)
    kept = empty = 0
    for _, index, dist in knn.iter_chunks():
        valid = _valid(index, dist)
        empty += int((~valid).sum())
        kept += int((dist[valid] < max_dist).sum())
        counts += np.histogram(np.clip(dist[valid], 0.0, upper), bins=edges)[0]
    return counts, edges, kept, empty


def render_histogram(counts: np.ndarray, edges: np.ndarray, max_dist: float, kept: int, path: PathLike) -> None:
    """Bar histogram with the `max_dist` threshold marked; PNG written atomically."""
    total = int(counts.sum())
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4c72b0")
    ax.axvline(max_dist, color="#c44e52", linewidth=2, label=f"max_dist = {max_dist:g}: {kept} of {total} pairs kept")
    ax.set_xlabel("squared L2 distance of normalised VGG16 features")
    ax.set_ylabel("k-NN pairs")
    ax.set_title("k-NN distances of source crops")
    ax.legend(loc="upper right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def run_preview(
    matches_path: PathLike,
    knn_path: PathLike,
    src_manifest: PathLike,
    dst_manifest: PathLike,
    src_crops: PathLike,
    dst_crops: PathLike,
    grid: PathLike,
    hist: PathLike,
    max_dist: float,
    pairs: int = 12,
    seed: int = 0,
) -> None:
    """`epeflow preview`: the pair grid and the distance histogram (boxes from both crops.zarr)."""
    matches, boxes, _ = read_pair_boxes(matches_path, src_crops, dst_crops)
    if matches.empty:
        raise EpeflowError(f"{matches_path} has no pairs; rerun `epeflow filter` with a larger max_dist")
    src_paths = read_frames(src_manifest)["path"].astype(str).tolist()
    dst_paths = read_frames(dst_manifest)["path"].astype(str).tolist()
    rows = pick_pairs(len(matches), pairs, seed)
    src = load_crops(src_paths, boxes.src_frame[rows], boxes.src_box[rows])
    dst = load_crops(dst_paths, boxes.dst_frame[rows], boxes.dst_box[rows])
    knn = KnnStore(knn_path)
    src_crop, dst_crop, dist = (matches[c].to_numpy() for c in ("src_crop", "dst_crop", "dist"))
    b = boxes
    labels = [
        pair_label(dist[i], neighbour_rank(knn, src_crop[i], dst_crop[i]), b.src_frame[i], b.src_box[i],
                   b.dst_frame[i], b.dst_box[i])
        for i in rows
    ]
    render_pair_grid(src, dst, labels, grid)
    counts, edges, kept, empty = distance_histogram(knn, max_dist)
    if empty:
        log.warning("%d empty k-NN slots left out of the histogram", empty)
    render_histogram(counts, edges, max_dist, kept, hist)
    log.info("preview of %d pairs -> %s, histogram -> %s", len(rows), Path(grid), Path(hist))


def neighbour_rank(knn: KnnStore, src_crop: int, dst_crop: int) -> int:
    """Rank of target crop `dst_crop` among the k-NN of source crop `src_crop` (-1 if it is not one)."""
    index, _ = knn.read(int(src_crop), int(src_crop) + 1)
    hits = np.flatnonzero(index[0] == dst_crop)
    return int(hits[0]) if len(hits) else -1


def pair_label(
    dist: float, rank: int, src_frame: int, src_box: np.ndarray, dst_frame: int, dst_box: np.ndarray
) -> str:
    """Text beside a pair: distance, rank and both crops' frame and top-left corner (boxes are r0, r1, c0, c1)."""
    return (
        f"d = {dist:.4f} (rank {rank})\n"
        f"src frame {src_frame}\n  at ({src_box[0]}, {src_box[2]})\n"
        f"dst frame {dst_frame}\n  at ({dst_box[0]}, {dst_box[2]})"
    )

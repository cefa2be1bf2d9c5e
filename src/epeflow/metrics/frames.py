"""Which frames an evaluation compares, and decoding them in threads ahead of the model.

Enhanced frames are found by id (`<enhanced>/<id>.png`, the enhance stage's contract) and paired with the
source frame of the same id from the source manifest; the real reference set is a seeded subset of one
split of the target manifest.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from epeflow.artifacts.enhanced import INDEX, frame_path, read_index
from epeflow.artifacts.manifest import read_frames
from epeflow.errors import EpeflowError
from epeflow.io import read_image
from epeflow.provenance import marked_random

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class EvalFrames:
    """Frame files of one evaluation; `source[i]` is the frame `enhanced[i]` was made from."""

    ids: list[str]  # of the source frames (and their enhanced versions)
    source: list[Path]
    enhanced: list[Path]
    real_ids: list[str]
    real: list[Path]
    enhanced_random: bool  # the enhanced index says it was made with random weights
    sequence: list[str] | None = None  # per enhanced frame, from the source manifest ("" = in no sequence)
    frame_index: list[int] | None = None  # position in its sequence


def enhanced_pairs(enhanced_dir: Path, src_manifest: Path) -> tuple[list[str], list[Path], list[Path], bool]:
    """(ids, source paths, enhanced paths, random flag) of every frame in `<enhanced_dir>/index.parquet`."""
    index_path = enhanced_dir / INDEX
    index, meta = read_index(enhanced_dir)
    manifest = read_frames(src_manifest)
    source_of = dict(zip(manifest["id"], manifest["path"], strict=True))
    ids = [str(i) for i in index["id"]]
    unknown = [i for i in ids if i not in source_of]
    if unknown:
        raise EpeflowError(
            f"enhanced frame id {unknown[0]!r} ({len(unknown)} in all) in {index_path} is not in the source "
            f"manifest {src_manifest}; the manifest changed after enhancing: rerun `epeflow enhance`"
        )
    enhanced = [frame_path(enhanced_dir, i) for i in ids]
    absent = [p for p in enhanced if not p.is_file()]
    if absent:
        raise EpeflowError(f"enhanced frame {absent[0]} is missing ({len(absent)} in all); rerun `epeflow enhance`")
    return ids, [Path(source_of[i]) for i in ids], enhanced, marked_random(meta)


def real_frames(dst_manifest: Path, split: str, max_frames: int | None, seed: int) -> tuple[list[str], list[Path]]:
    """(ids, paths) of the real reference frames: one split (or all), at most `max_frames` drawn with `seed`."""
    manifest = read_frames(dst_manifest, extra=("split",))
    if split != "all":
        manifest = manifest[manifest["split"] == split]
    if len(manifest) == 0:
        raise EpeflowError(
            f"{dst_manifest} has no frames in split {split!r}; set config key `evaluate.real_split` to one "
            "that has frames (or `all`)"
        )
    ids, paths = [str(i) for i in manifest["id"]], [Path(p) for p in manifest["path"]]
    if max_frames is not None and len(paths) > max_frames:
        keep = np.sort(np.random.default_rng(seed).choice(len(paths), max_frames, replace=False))
        ids, paths = [ids[i] for i in keep], [paths[i] for i in keep]
    return ids, paths


def collect_frames(
    enhanced_dir: Path, src_manifest: Path, dst_manifest: Path, real_split: str, max_frames: int | None, seed: int
) -> EvalFrames:
    ids, source, enhanced, random = enhanced_pairs(Path(enhanced_dir), Path(src_manifest))
    real_ids, real = real_frames(Path(dst_manifest), real_split, max_frames, seed)
    sequence, frame_index = sequence_positions(Path(src_manifest), ids)
    return EvalFrames(ids, source, enhanced, real_ids, real, random, sequence, frame_index)


def sequence_positions(src_manifest: Path, ids: list[str]) -> tuple[list[str], list[int]]:
    """(sequence, frame index) of each frame id from the source manifest, for the temporal metrics."""
    manifest = read_frames(src_manifest, extra=("sequence", "frame_index"))
    where = {str(i): k for k, i in enumerate(manifest["id"])}
    rows = [where[i] for i in ids]
    sequences = ["" if s is None or s != s else str(s) for s in manifest["sequence"].to_numpy()[rows]]
    return sequences, [int(k) for k in manifest["frame_index"].to_numpy()[rows]]


def load_rgb(path: Path) -> torch.Tensor:
    """Decode a frame as (3, H, W) float32 RGB in [0, 1]."""
    return torch.tensor(read_image(path)).permute(2, 0, 1).float().div_(255.0)  # copies the read-only array


def resize_short_side(x: torch.Tensor, short_side: int) -> torch.Tensor:
    """Downscale (..., 3, H, W) so min(H, W) <= short_side, keeping the aspect ratio (never upscales)."""
    h, w = x.shape[-2:]
    if min(h, w) <= short_side:
        return x
    scale = short_side / min(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    batched = x if x.dim() == 4 else x.unsqueeze(0)
    out = F.interpolate(batched, size=size, mode="bilinear", antialias=True, align_corners=False)
    return out if x.dim() == 4 else out.squeeze(0)


def prefetch(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """fn over items in a thread pool, in order, at most 2*workers results ahead (bounded memory)."""
    workers = max(1, workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def same_size_batches(
    items: Iterable[tuple[torch.Tensor, ...]], max_batch: int
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Stack consecutive items whose tensors have equal shapes: (C, H, W) each -> (B, C, H, W) each."""
    group: list[tuple[torch.Tensor, ...]] = []
    for item in items:
        if group and (len(group) >= max_batch or [t.shape for t in item] != [t.shape for t in group[0]]):
            yield tuple(torch.stack(ts) for ts in zip(*group, strict=True))
            group = []
        group.append(item)
    if group:
        yield tuple(torch.stack(ts) for ts in zip(*group, strict=True))

"""Import G-buffers exported by the game (one file or folder per frame) into the store.

Every file is checked against its frame (size, channel count, channel names), the configured channel
group is selected, and the result is stored as float16 at full resolution. Files are decoded and
compressed by a thread pool (numpy, zlib and blosc release the GIL).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epeflow.artifacts.gbuffers import GBufferWriter, fingerprint
from epeflow.artifacts.manifest import frame_digests
from epeflow.common.moments import Moments
from epeflow.errors import EpeflowError
from epeflow.gbuffers.channels import default_names, select_channels
from epeflow.gbuffers.files import read_gbuffer_file
from epeflow.gbuffers.settings import GBufferSettings
from epeflow.log import progress
from epeflow.provenance import stamp

log = logging.getLogger(__name__)


class ChannelLayout:
    """Channel names of a dataset's G-buffer files and the indices of the selected group."""

    def __init__(self, file_names: Sequence[str] | None, count: int, settings: GBufferSettings, probe: Path):
        if settings.names is not None and len(settings.names) != count:
            raise EpeflowError(
                f"config key `gbuffer_names` lists {len(settings.names)} channels, but G-buffer file {probe} has "
                f"{count}"
            )
        self.file_names = list(file_names) if file_names is not None else None
        self.count = count
        names = self.file_names or (list(settings.names) if settings.names else None)
        self.all_names = names or default_names(count)
        self.index = select_channels(self.all_names, settings.channels, named=names is not None)
        self.names = [self.all_names[i] for i in self.index]

    def check(self, path: Path, array: np.ndarray, names: list[str] | None, size: tuple[int, int]) -> None:
        """Raise naming `path` when a frame's file does not fit the dataset's layout or its frame."""
        if array.shape[:2] != size:
            raise EpeflowError(
                f"G-buffer file {path} is {array.shape[0]}x{array.shape[1]}, but its frame is {size[0]}x{size[1]}; "
                "export the G-buffers at the frame's resolution or remove the frame from the dataset"
            )
        if array.shape[2] != self.count:
            raise EpeflowError(
                f"G-buffer file {path} has {array.shape[2]} channels, but the dataset's files have {self.count}; "
                "every frame needs the same G-buffer channels"
            )
        if self.file_names is not None and names is not None and names != self.file_names:
            raise EpeflowError(
                f"G-buffer file {path} names its channels {names}, but other files use {self.file_names}; "
                "export every frame with the same channels in the same order"
            )


def gbuffer_paths(manifest: pd.DataFrame, manifest_path: Path) -> list[Path]:
    """The manifest's gbuffer_path per frame; a frame without one is an error naming it."""
    if "gbuffer_path" not in manifest.columns:
        raise EpeflowError(f"{manifest_path} has no gbuffer_path column; rebuild it with `epeflow manifest`")
    paths: list[Path] = []
    for row in manifest.itertuples(index=False):
        if row.gbuffer_path is None or (isinstance(row.gbuffer_path, float) and np.isnan(row.gbuffer_path)) or (
            not str(row.gbuffer_path)
        ):
            raise EpeflowError(
                f"frame {row.path} has no G-buffer file in {manifest_path}; set `gbuffer_dir` or give the G-buffer "
                "in the file list (or use `gbuffers: fake`)"
            )
        paths.append(Path(str(row.gbuffer_path)))
    return paths


def _bounded(pool: ThreadPoolExecutor, fn, items: Sequence[int], in_flight: int) -> Iterator[Future]:
    """Submit lazily so at most `in_flight` decoded frames are held in memory; yield finished futures."""
    pending: set[Future] = set()
    items = iter(items)
    while True:
        for item in items:
            pending.add(pool.submit(fn, item))
            if len(pending) >= in_flight:
                break
        if not pending:
            return
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield from done


def import_real_gbuffers(
    manifest: pd.DataFrame,
    out: Path,
    settings: GBufferSettings,
    threads: int = 1,
    manifest_path: Path = Path("manifest.parquet"),
    attrs: Mapping[str, Any] | None = None,
    frames: range | None = None,
) -> Moments | None:
    """Build `out` (gbuffers.zarr) from the per-frame files named in the manifest; returns the dataset moments.
    With `frames`, only those frames, into a shard store for `merge_gbuffer_shards` (returns None)."""
    paths = gbuffer_paths(manifest, manifest_path)
    sizes = manifest[["height", "width"]].to_numpy(dtype=np.int32)  # (N, 2)
    first, first_names = read_gbuffer_file(paths[0], settings.key)
    layout = ChannelLayout(first_names, first.shape[2], settings, paths[0])
    log.info("G-buffer channels (%s): %s", settings.channels, ", ".join(layout.names))
    fp = fingerprint(
        {"kind": "real", "key": settings.key, "channels": layout.names, "index": layout.index.tolist(),
         "frames": [[str(p), int(h), int(w), d]
                    for p, (h, w), d in zip(paths, sizes.tolist(), frame_digests(manifest), strict=True)]}
    )
    writer = GBufferWriter(
        out, mode="real", names=layout.names, frame_sizes=sizes, stored_sizes=sizes, fingerprint=fp, chunk=256
    )

    def import_frame(frame: int) -> None:
        array, names = read_gbuffer_file(paths[frame], settings.key)  # (H, W, C_file)
        layout.check(paths[frame], array, names, tuple(sizes[frame].tolist()))
        writer.write(frame, np.ascontiguousarray(array[:, :, layout.index].transpose(2, 0, 1)))  # (C, H, W)

    todo = writer.pending(frames)
    try:
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            finished = _bounded(pool, import_frame, todo, 2 * max(1, threads))
            for future in progress(finished, "G-buffers", len(todo), unit="frame"):
                future.result()
    finally:
        writer.flush()  # frames written so far count when the job is rerun
    provenance = stamp(False, gbuffer_channels=settings.channels, source="files", **dict(attrs or {}))
    if frames is not None:
        writer.finish_shard(frames, provenance)
        log.info("wrote shard %s: frames %d..%d", out, frames.start, frames.stop - 1)
        return None
    total = writer.finish(provenance)
    log.info("wrote %s: %d frames, %d channels", out, len(paths), len(layout.names))
    return total

"""The G-buffer store (`gbuffers.zarr`): writer that survives kills, and the reader every stage uses.

Layout (zarr v3 group):
- attrs: format, mode (real|fake), channels, names, resolution (full|feature), num_frames, mean [C],
  std [C], random_weights, provenance; `complete` is set only by `finish`.
- `frame_size` [N, 2] int32: each frame's full (H, W); `stored_size` [N, 2] int32: the (h, w) kept on disk
  (equal for real G-buffers, VGG16 feature resolution for fake ones).
- `location` [N, 2] int32: (block, row) of each frame; `blocks/<b>` [n_b, C, h, w] float16 holds all frames
  of one size, one shard file per frame, chunked spatially so a crop reads only the chunks it covers.
- `moments/{count,mean,m2}`: per-frame statistics, written after the frame's data; a frame whose count is
  0 is not finished. A killed job resumes from these; the dataset mean / std are combined from them.

The store is built in `<out>.partial` and renamed to `<out>` when every frame is in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from epeflow import io
from epeflow.common.moments import Moments, combine_all, frame_moments
from epeflow.common.resample import apply_window, upsample, window_for
from epeflow.errors import EpeflowError

log = logging.getLogger(__name__)

FORMAT = "epeflow-gbuffers/1"
_COMPRESSOR = BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")  # byte shuffle suits float16
_MOMENT_ROWS = 4096
_MIN_STD = 1e-6  # channels flatter than this are only centred, not scaled, on read


def normalize_gbuffers(raw: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(C, H, W) raw G-buffers minus `mean`, over `std` per channel: the one normalisation training and
    enhancement both use (flat channels only centred)."""
    std = np.where(std > _MIN_STD, std, 1.0).astype(np.float32)
    return (raw - mean[:, None, None].astype(np.float32)) / std[:, None, None]


def fingerprint(settings: Mapping[str, Any]) -> str:
    """Hash of everything that determines a store's content; a partial store with another one is rebuilt."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _blocks_of(frame_sizes: np.ndarray, stored_sizes: np.ndarray) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Distinct (H, W, h, w) in order of first appearance, and each frame's (block, row)."""
    keys: dict[tuple[int, ...], int] = {}
    rows: list[int] = []
    location = np.zeros((len(frame_sizes), 2), dtype=np.int32)
    for i, (full, stored) in enumerate(zip(frame_sizes.tolist(), stored_sizes.tolist(), strict=True)):
        key = (*full, *stored)
        if key not in keys:
            keys[key] = len(keys)
            rows.append(0)
        b = keys[key]
        location[i] = (b, rows[b])
        rows[b] += 1
    return list(keys), location


class GBufferWriter:
    """Builds a store frame by frame in `<out>.partial`; `write` may be called from several threads."""

    def __init__(
        self,
        out: Path,
        *,
        mode: str,
        names: Sequence[str],
        frame_sizes: np.ndarray,
        stored_sizes: np.ndarray,
        fingerprint: str,
        chunk: int = 256,
        flush_every: int = 64,
    ) -> None:
        self.out = Path(out)
        self.partial = io.partial_dir(self.out)
        self.names = list(names)
        self.frame_sizes = np.asarray(frame_sizes, dtype=np.int32).reshape(-1, 2)  # (N, 2)
        self.stored_sizes = np.asarray(stored_sizes, dtype=np.int32).reshape(-1, 2)  # (N, 2)
        self.flush_every = flush_every
        self._lock = threading.Lock()
        self._dirty: set[int] = set()
        n, c = len(self.frame_sizes), len(self.names)
        if not self._resume(fingerprint):
            self._create(mode, fingerprint, chunk)
        self._group = zarr.open_group(self.partial, mode="r+")
        self._blocks = {int(k): self._group[f"blocks/{k}"] for k in self._group["blocks"].array_keys()}
        self._location = self._group["location"][:]
        self._moment_arrays = {k: self._group[f"moments/{k}"] for k in ("count", "mean", "m2")}
        self.counts = self._moment_arrays["count"][:]  # (N,) int64; 0 = frame not written yet
        self.means = self._moment_arrays["mean"][:]  # (N, C) float64
        self.m2s = self._moment_arrays["m2"][:]  # (N, C) float64
        assert self.means.shape == (n, c)

    def _resume(self, fp: str) -> bool:
        try:
            attrs = dict(zarr.open_group(self.partial, mode="r").attrs)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError):
            attrs = {}
        if attrs.get("format") == FORMAT and attrs.get("fingerprint") == fp:
            try:
                done = int((zarr.open_group(self.partial, mode="r")["moments/count"][:] > 0).sum())
            except Exception as e:  # a chunk torn by a kill: start over rather than trust it
                log.warning("partial G-buffer store %s is unreadable (%s); starting over", self.partial, e)
                return False
            log.info("resuming %s: %d of %d frames already written", self.partial, done, len(self.frame_sizes))
            return True
        if any(self.partial.iterdir()):
            log.warning("partial G-buffer store %s was built with other settings or frame contents; starting over",
                        self.partial)
        return False

    def _create(self, mode: str, fp: str, chunk: int) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        n, c = len(self.frame_sizes), len(self.names)
        keys, location = _blocks_of(self.frame_sizes, self.stored_sizes)
        group = zarr.open_group(self.partial, mode="w")
        group.create_array("frame_size", data=self.frame_sizes, chunks=(max(n, 1), 2))
        group.create_array("stored_size", data=self.stored_sizes, chunks=(max(n, 1), 2))
        group.create_array("location", data=location, chunks=(max(n, 1), 2))
        rows = min(max(n, 1), _MOMENT_ROWS)
        group.create_array("moments/count", shape=(n,), chunks=(rows,), dtype="int64", fill_value=0)
        for name in ("mean", "m2"):
            group.create_array(f"moments/{name}", shape=(n, c), chunks=(rows, c), dtype="float64", fill_value=0.0)
        group.require_group("blocks")
        for b, (_, _, h, w) in enumerate(keys):
            count = int((location[:, 0] == b).sum())
            ch, cw = min(chunk, h), min(chunk, w)
            shard = (1, c, -(-h // ch) * ch, -(-w // cw) * cw)  # one shard file per frame
            group.create_array(
                f"blocks/{b}", shape=(count, c, h, w), chunks=(1, c, ch, cw), shards=shard, dtype="float16",
                compressors=_COMPRESSOR, fill_value=0,
            )
        group.attrs.update(
            {"format": FORMAT, "mode": mode, "channels": c, "names": self.names, "num_frames": n,
             "resolution": "full" if np.array_equal(self.frame_sizes, self.stored_sizes) else "feature",
             "fingerprint": fp, "complete": False}
        )

    def pending(self, frames: range | None = None) -> np.ndarray:
        """Frames not written yet, in order (of `frames` only, for a shard)."""
        todo = np.flatnonzero(self.counts == 0)
        return todo if frames is None else todo[(todo >= frames.start) & (todo < frames.stop)]

    def write(self, frame: int, data: np.ndarray) -> None:
        """Store one frame's (C, h, w) G-buffers as float16 and record its moments."""
        expected = (len(self.names), *self.stored_sizes[frame].tolist())
        if data.shape != expected:
            raise ValueError(f"frame {frame}: G-buffers of shape {data.shape}, expected {expected}")
        with np.errstate(over="ignore"):  # overflow is reported below, naming the frame
            data16 = data.astype(np.float16)
        if not np.isfinite(data16).all():
            raise EpeflowError(f"frame {frame}: G-buffers hold NaN / inf values (or values beyond float16 range)")
        block, row = self._location[frame]
        self._blocks[int(block)][int(row)] = data16
        moments = frame_moments(data16)  # of the stored values, which is what readers normalise
        with self._lock:
            self.counts[frame], self.means[frame], self.m2s[frame] = moments.count, moments.mean, moments.m2
            self._dirty.add(frame)
            if len(self._dirty) >= self.flush_every:
                self._flush()

    def _flush(self) -> None:
        if not self._dirty:
            return
        lo, hi = min(self._dirty), max(self._dirty) + 1
        self._moment_arrays["mean"][lo:hi] = self.means[lo:hi]
        self._moment_arrays["m2"][lo:hi] = self.m2s[lo:hi]
        self._moment_arrays["count"][lo:hi] = self.counts[lo:hi]  # last: marks the rows finished
        self._dirty.clear()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def finish(self, attrs: Mapping[str, Any]) -> Moments:
        """Combine the per-frame moments into dataset mean / std, write attrs, move the store into place."""
        self.flush()
        missing = self.pending()
        if missing.size:
            raise RuntimeError(f"{missing.size} frames were not written (first: {missing[:5].tolist()})")
        total = combine_all(self.counts, self.means, self.m2s)
        self._group.attrs.update(
            {**attrs, "mean": total.mean.tolist(), "std": total.std.tolist(), "complete": True}
        )
        io.finalize_dir(self.partial, self.out)
        return total

    def finish_shard(self, frames: range, attrs: Mapping[str, Any]) -> None:
        """Move a store holding only `frames` into place as one shard of the dataset's store (not readable
        as a store: `merge_gbuffer_shards` makes one)."""
        self.flush()
        missing = self.pending(frames)
        if missing.size:
            raise RuntimeError(f"{missing.size} frames of the shard were not written (first: {missing[:5].tolist()})")
        self._group.attrs.update({**attrs, SHARD_KEY: [frames.start, frames.stop]})
        io.finalize_dir(self.partial, self.out)


SHARD_KEY = "shard_frames"  # [start, stop) of a shard store; the merged store has none


def _copier(root: Path):
    """copytree's copy function for a shard store at `root`: frame data (one file per frame under blocks/)
    is hard-linked; everything else (metadata, the moments the merge rewrites) is copied, so the merge never
    writes into a shard's files."""

    def copy(src: str, dst: str) -> None:
        if Path(src).relative_to(root).parts[0] == "blocks":
            io.link_or_copy(src, dst)
        else:
            shutil.copy2(src, dst)

    return copy


def merge_gbuffer_shards(shards: Sequence[str | Path], out: str | Path) -> Moments:
    """One gbuffers.zarr from shard stores of the same dataset and settings (frame files hard-linked, the
    per-frame moments gathered, dataset mean / std combined from them): equal to one job's store."""
    stores = []
    for path in shards:
        try:
            attrs = dict(zarr.open_group(Path(path), mode="r").attrs)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError):
            raise EpeflowError(f"G-buffer shard {path} does not exist; rerun its `epeflow gbuffers --shard` job"
                               ) from None
        if attrs.get("format") != FORMAT or SHARD_KEY not in attrs:
            raise EpeflowError(f"{path} is not a finished G-buffer shard; rerun its `epeflow gbuffers --shard` job")
        stores.append((Path(path), attrs))
    stores.sort(key=lambda item: tuple(item[1][SHARD_KEY]))
    first = stores[0][1]
    expected = 0
    for path, attrs in stores:
        if attrs.get("fingerprint") != first.get("fingerprint"):
            raise EpeflowError(f"G-buffer shard {path} was built from other settings or frames than {stores[0][0]}; "
                               "delete the shards and rerun them with one config")
        start, stop = attrs[SHARD_KEY]
        if start != expected:
            what = "overlaps the previous shard" if start < expected else f"leaves frames {expected}..{start - 1} out"
            raise EpeflowError(f"G-buffer shard {path} (frames {start}..{stop - 1}) {what}; pass every shard once")
        expected = stop
    if expected != int(first["num_frames"]):
        raise EpeflowError(f"G-buffer shards cover frames 0..{expected - 1} of {first['num_frames']}; "
                           "a shard is missing")
    out = Path(out)
    partial = io.partial_dir(out)
    shutil.rmtree(partial)
    shutil.copytree(stores[0][0], partial, copy_function=_copier(stores[0][0]))
    for path, _ in stores[1:]:
        blocks = path / "blocks"
        for src in blocks.rglob("*"):
            dst = partial / "blocks" / src.relative_to(blocks)
            if src.is_file() and not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                io.link_or_copy(src, dst)
    group = zarr.open_group(partial, mode="r+")
    moments = {k: group[f"moments/{k}"] for k in ("count", "mean", "m2")}
    for path, attrs in stores[1:]:
        start, stop = attrs[SHARD_KEY]
        shard = zarr.open_group(path, mode="r")
        for k, array in moments.items():
            array[start:stop] = shard[f"moments/{k}"][start:stop]
    counts, means, m2s = (moments[k][:] for k in ("count", "mean", "m2"))
    if (counts == 0).any():
        raise EpeflowError(f"G-buffer shards lack frame {int(np.flatnonzero(counts == 0)[0])}; rerun its shard job")
    total = combine_all(counts, means, m2s)
    merged = {k: v for k, v in first.items() if k != SHARD_KEY}
    merged.update({"mean": total.mean.tolist(), "std": total.std.tolist(), "complete": True})
    group.attrs.put(merged)
    io.finalize_dir(partial, out)
    log.info("merged %d G-buffer shards: %d frames -> %s", len(stores), expected, out)
    return total


class GBufferStore:
    """Reader of `gbuffers.zarr`: per-frame (C, H, W) float32 G-buffers at the frame's size, normalised."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            group = zarr.open_group(self.path, mode="r")
            attrs = dict(group.attrs)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError):
            raise EpeflowError(f"G-buffer store {self.path} does not exist; run `epeflow gbuffers` first") from None
        if attrs.get("format") != FORMAT or not attrs.get("complete"):
            raise EpeflowError(f"{self.path} is not a finished G-buffer store; delete it and rerun `epeflow gbuffers`")
        self.attrs = attrs
        self.mode: str = attrs["mode"]
        self.names: list[str] = list(attrs["names"])
        self.channels: int = int(attrs["channels"])
        self.mean = np.asarray(attrs["mean"], dtype=np.float32)  # (C,)
        self.std = np.asarray(attrs["std"], dtype=np.float32)  # (C,)
        self.random_weights: bool = bool(attrs.get("random_weights", False))
        self.frame_sizes = group["frame_size"][:]  # (N, 2)
        self.stored_sizes = group["stored_size"][:]  # (N, 2)
        self.location = group["location"][:]  # (N, 2)
        self._group: zarr.Group | None = group
        self._blocks: dict[int, zarr.Array] = {}

    def __len__(self) -> int:
        return len(self.frame_sizes)

    @property
    def content(self) -> str | None:
        """The fingerprint the store was built for (settings, frames and their content digests)."""
        return self.attrs.get("fingerprint")

    def describe(self) -> dict[str, Any]:
        """What a model trained on this store carries about it (enhancement checks its store against it)."""
        return {"channels": self.channels, "names": list(self.names), "mean": self.mean.tolist(),
                "std": self.std.tolist(), "mode": self.mode}

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers reopen the group themselves
        state = self.__dict__.copy()
        state["_group"], state["_blocks"] = None, {}
        return state

    def _block(self, b: int) -> zarr.Array:
        if b not in self._blocks:
            if self._group is None:
                self._group = zarr.open_group(self.path, mode="r")
            self._blocks[b] = self._group[f"blocks/{b}"]
        return self._blocks[b]

    def frame_size(self, frame: int) -> tuple[int, int]:
        h, w = self.frame_sizes[frame]
        return int(h), int(w)

    def _check_frame(self, frame: int) -> None:
        if not 0 <= frame < len(self):
            raise IndexError(f"frame {frame} is not in {self.path} ({len(self)} frames)")

    def _normalize(self, data: np.ndarray) -> np.ndarray:
        return normalize_gbuffers(data, self.mean, self.std)

    def read(self, frame: int, size: tuple[int, int] | None = None, normalize: bool = True) -> np.ndarray:
        """(C, H, W) float32 at `size` (default: the frame's full size), upsampled bicubically when stored smaller."""
        self._check_frame(frame)
        size = tuple(size) if size is not None else self.frame_size(frame)
        block, row = self.location[frame]
        data = self._block(int(block))[int(row)].astype(np.float32)  # (C, h, w)
        if data.shape[1:] != size:
            data = upsample(data, size)  # (C, H, W)
        return self._normalize(data) if normalize else data

    def read_crop(
        self,
        frame: int,
        box: tuple[int, int, int, int],
        size: tuple[int, int] | None = None,
        normalize: bool = True,
    ) -> np.ndarray:
        """(C, r1-r0, c1-c0) float32: `read(frame, size)[:, r0:r1, c0:c1]`, reading only the window it needs."""
        self._check_frame(frame)
        size = tuple(size) if size is not None else self.frame_size(frame)
        r0, r1, c0, c1 = (int(v) for v in box)
        if not (0 <= r0 < r1 <= size[0] and 0 <= c0 < c1 <= size[1]):
            raise ValueError(f"crop box {box} does not lie inside a {size[0]}x{size[1]} frame")
        block, row = self.location[frame]
        array = self._block(int(block))
        stored = tuple(int(v) for v in self.stored_sizes[frame])
        if stored == size:
            data = array[int(row), :, r0:r1, c0:c1].astype(np.float32)
        else:
            (a0, a1, b0, b1), row_w, col_w = window_for(stored, size, (r0, r1, c0, c1))
            data = apply_window(array[int(row), :, a0:a1, b0:b1], row_w, col_w)  # (C, r1-r0, c1-c0)
        return self._normalize(data) if normalize else data

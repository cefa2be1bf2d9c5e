"""Training data: matched crop pairs, drawn by weight, loaded by DataLoader workers in a fixed order.

Which pairs a step trains on comes from `WeightedPairSampler` in the main process; each sample's random
choices (position of the training crop inside the matched crop, flips) come from a generator seeded with
the sample's global number. So batches do not depend on the number of workers or on prefetching, and a
resumed run sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from epeflow.artifacts.gbuffers import normalize_gbuffers
from epeflow.artifacts.manifest import read_frames
from epeflow.artifacts.matches import Pairs
from epeflow.errors import EpeflowError
from epeflow.gbuffers.channels import x_direction_channels
from epeflow.io import read_image, read_label
from epeflow.train.stop import ignore_stop_signals

# --- which pairs: weighted, resumable draws ----------------------------------------------------------
# Weighted draws of matched pairs for training (the reference's MatchedCrops sampling, resumable).
#
# The reference draws u ~ U[0, 1) and takes the first pair whose normalised cumulative weight exceeds u;
# we do the same with `np.searchsorted` (O(log N) a draw instead of a scan), from a seeded generator
# whose state is plain Python values, so a checkpoint saved with `weights_only=True` resumes the same
# sequence of draws.

STATE_FORMAT = "epeflow-weighted-pair-sampler/1"


class WeightedPairSampler:
    """Draw pair indices with probability proportional to `weights` (float, >= 0, finite, not all 0)."""

    def __init__(self, weights: np.ndarray, seed: int) -> None:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.size == 0:
            raise EpeflowError("sampling weights are empty: no matched pairs to train on; rerun the matching stages")
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise EpeflowError(
                f"sampling weight {i} is {w[i]!r}; weights must be finite and >= 0: rerun `epeflow weights`"
            )
        total = w.sum()
        if total <= 0:
            raise EpeflowError("sampling weights are all zero; rerun `epeflow weights`")
        self.cdf = np.cumsum(w) / total  # (N,) normalised cumulative weights, last = 1 up to rounding
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.drawn = 0

    def __len__(self) -> int:
        return len(self.cdf)

    def draw(self, n: int) -> np.ndarray:
        """`n` pair indices, int64 (n,)."""
        u = self.rng.random(n)
        idx = np.searchsorted(self.cdf, u, side="right")  # first i with u < cdf[i], as the reference
        self.drawn += n
        return np.minimum(idx, len(self.cdf) - 1).astype(np.int64)

    def state_dict(self) -> dict[str, Any]:
        """Plain types only (ints, strs, dicts), for checkpoints loaded with `weights_only=True`."""
        state = self.rng.bit_generator.state
        return {
            "format": STATE_FORMAT,
            "num_weights": len(self.cdf),
            "seed": self.seed,
            "drawn": self.drawn,
            "bit_generator": str(state["bit_generator"]),
            "state": {"state": int(state["state"]["state"]), "inc": int(state["state"]["inc"])},
            "has_uint32": int(state["has_uint32"]),
            "uinteger": int(state["uinteger"]),
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Continue the sequence of a saved sampler; the weights must be the same pairs."""
        if d.get("format") != STATE_FORMAT:
            raise EpeflowError(f"sampler state has format {d.get('format')!r}, expected {STATE_FORMAT!r}")
        if int(d["num_weights"]) != len(self.cdf):
            raise EpeflowError(
                f"the checkpoint's sampler was built on {d['num_weights']} matched pairs, the weights now have "
                f"{len(self.cdf)}; the matches changed since the checkpoint: start training afresh"
            )
        self.rng.bit_generator.state = {
            "bit_generator": d["bit_generator"],
            "state": {"state": int(d["state"]["state"]), "inc": int(d["state"]["inc"])},
            "has_uint32": int(d["has_uint32"]),
            "uinteger": int(d["uinteger"]),
        }
        self.seed = int(d["seed"])
        self.drawn = int(d["drawn"])


# --- what a pair loads -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frames:
    """What loading needs from a manifest, indexed by the integer frame id."""

    manifest: Path
    paths: list[str]
    ids: list[str]
    sizes: np.ndarray  # (N, 2) int64: height, width
    gt_label_paths: list[str | None]


def load_frames(manifest_path: Path) -> tuple[Frames, pd.DataFrame]:
    manifest = read_frames(manifest_path, extra=["gt_label_path"])
    gt = manifest["gt_label_path"]
    frames = Frames(
        manifest=Path(manifest_path),
        paths=[str(p) for p in manifest["path"]],
        ids=[str(i) for i in manifest["id"]],
        sizes=manifest[["height", "width"]].to_numpy(np.int64),
        gt_label_paths=[None if pd.isna(p) else str(p) for p in gt],
    )
    return frames, manifest


def training_crop(box: np.ndarray, size: int | None, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A `size` x `size` box at a random place inside the matched crop `box` (the whole box when None)."""
    r0, r1, c0, c1 = (int(v) for v in box)
    if size is None:
        return r0, r1, c0, c1
    dr = int(rng.integers(0, r1 - r0 - size + 1))
    dc = int(rng.integers(0, c1 - c0 - size + 1))
    return r0 + dr, r0 + dr + size, c0 + dc, c0 + dc + size


def check_crop_sizes(pairs: Pairs, crop_size: int | None) -> tuple[int, int]:
    """The (h, w) of every training crop; matched crops of several sizes need a `crop_size`."""
    heights = np.concatenate([pairs.src_box[:, 1] - pairs.src_box[:, 0], pairs.dst_box[:, 1] - pairs.dst_box[:, 0]])
    widths = np.concatenate([pairs.src_box[:, 3] - pairs.src_box[:, 2], pairs.dst_box[:, 3] - pairs.dst_box[:, 2]])
    if crop_size is None:
        if len(np.unique(heights)) > 1 or len(np.unique(widths)) > 1:
            raise EpeflowError(
                "matched crops have several sizes; set config key `train.crop_size` to train on crops of one size"
            )
        return int(heights[0]), int(widths[0])
    if crop_size > min(heights.min(), widths.min()):
        raise EpeflowError(
            f"config key `train.crop_size`: {crop_size} is larger than the smallest matched crop "
            f"({int(min(heights.min(), widths.min()))} px); use a smaller value or null"
        )
    return crop_size, crop_size


def _chw(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def _flip(array: np.ndarray, flip: bool) -> np.ndarray:
    return np.ascontiguousarray(array[..., ::-1]) if flip else array


def mirror_gbuffers(raw: np.ndarray, x_channels: np.ndarray) -> np.ndarray:
    """(C, h, w) G-buffers as a horizontal mirror of the scene would have them: flipped, x directions negated."""
    out = np.array(raw[..., ::-1], dtype=np.float32)
    out[x_channels] *= -1
    return out


class MatchedPairs(torch.utils.data.Dataset):
    """Loads the sample with key (pair row, global sample number): a source crop with everything the
    generator and discriminator need, and its matched real crop.

    Returns tensors: image (3,h,w) in [0,1], gbuffers (C,h,w) normalised, materials (12,h,w) one-hot,
    labels (h,w) int64 MSeg ids, real (3,h,w), real_labels (h,w), pair () int64.
    """

    def __init__(
        self,
        pairs: Pairs,
        src: Frames,
        dst: Frames,
        src_labels: Path,
        dst_labels: Path,
        gbuffers: Path | None,
        crop_size: int | None,
        flip: bool,
        seed: int,
    ) -> None:
        self.pairs, self.src, self.dst = pairs, src, dst
        self.src_labels, self.dst_labels = Path(src_labels), Path(dst_labels)
        self.gbuffers = None if gbuffers is None else Path(gbuffers)  # None: image-only (no G-buffers, materials)
        self.crop_size, self.flip, self.seed = crop_size, flip, seed
        for side, frames, used in (("src", src, pairs.src_frame), ("dst", dst, pairs.dst_frame)):
            if used.min() < 0 or used.max() >= len(frames.paths):
                raise EpeflowError(
                    f"matched pairs refer to {side} frame {int(used.max())}, but {frames.manifest} has "
                    f"{len(frames.paths)} frames; the matches come from another manifest: rerun the matching stage"
                )
        self._store: Any = None  # opened lazily in each worker process

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None}

    def __len__(self) -> int:
        return len(self.pairs)

    def store(self) -> Any:
        if self._store is None:
            from epeflow.artifacts.gbuffers import GBufferStore

            self._store = GBufferStore(self.gbuffers)
        return self._store

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        pair, sample = key
        rng = np.random.default_rng([self.seed, sample])
        src_box = training_crop(self.pairs.src_box[pair], self.crop_size, rng)
        dst_box = training_crop(self.pairs.dst_box[pair], self.crop_size, rng)
        flip_src, flip_dst = (bool(f) for f in rng.random(2) < 0.5) if self.flip else (False, False)

        frame = int(self.pairs.src_frame[pair])
        image = self._image(self.src, frame, src_box)
        labels = self._labels(self.src, self.src_labels, frame, src_box)
        if self.gbuffers is None:  # image-only generator: empty G-buffers and materials
            gbuffers = np.zeros((0, *image.shape[1:]), np.float32)  # (0, h, w)
            materials = np.zeros((0, *image.shape[1:]), np.float32)
        else:
            store = self.store()
            raw = store.read_crop(frame, box=src_box, size=tuple(self.src.sizes[frame]), normalize=False)  # (C, h, w)
            if flip_src:
                raw = mirror_gbuffers(raw, x_direction_channels(store.names))
            gbuffers = normalize_gbuffers(raw, store.mean, store.std)
            materials = self._materials(frame, src_box, labels)
        real_frame = int(self.pairs.dst_frame[pair])
        real = self._image(self.dst, real_frame, dst_box)
        real_labels = self._labels(self.dst, self.dst_labels, real_frame, dst_box)
        return {
            "image": torch.from_numpy(_flip(image, flip_src)),  # (3, h, w)
            "gbuffers": torch.from_numpy(np.ascontiguousarray(gbuffers, dtype=np.float32)),  # (C, h, w), mirrored
            "materials": torch.from_numpy(_flip(materials, flip_src)),  # (12, h, w); (0, h, w) image-only
            "labels": torch.from_numpy(_flip(labels, flip_src)),  # (h, w)
            "real": torch.from_numpy(_flip(real, flip_dst)),
            "real_labels": torch.from_numpy(_flip(real_labels, flip_dst)),
            "pair": torch.tensor(pair, dtype=torch.int64),
        }

    def _checked(self, frames: Frames, frame: int, array: np.ndarray, path: str | Path, what: str) -> np.ndarray:
        if tuple(array.shape[:2]) != tuple(frames.sizes[frame]):
            raise EpeflowError(
                f"{what} {path} is {array.shape[0]}x{array.shape[1]}, but {frames.manifest} says frame {frame} "
                f"is {frames.sizes[frame][0]}x{frames.sizes[frame][1]}; rerun the stages of this dataset"
            )
        return array

    def _image(self, frames: Frames, frame: int, box: tuple[int, int, int, int]) -> np.ndarray:
        r0, r1, c0, c1 = box
        image = self._checked(frames, frame, read_image(frames.paths[frame]), frames.paths[frame], "image")
        return _chw(image[r0:r1, c0:c1])  # (3, h, w) float32

    def _labels(self, frames: Frames, folder: Path, frame: int, box: tuple[int, int, int, int]) -> np.ndarray:
        r0, r1, c0, c1 = box
        path = folder / f"{frames.ids[frame]}.png"
        labels = self._checked(frames, frame, read_label(path), path, "label map")
        return labels[r0:r1, c0:c1].astype(np.int64)

    def _materials(self, frame: int, box: tuple[int, int, int, int], robust: np.ndarray) -> np.ndarray:
        """One-hot materials (12, h, w) of a source crop: from its GT label map (Cityscapes ids, as the
        reference), or, for a frame without one, from its robust labels `robust` (h, w) (MSeg universal ids)."""
        from epeflow.common.taxonomy import check_cityscapes_ids, materials_from_cityscapes, materials_from_universal

        path = self.src.gt_label_paths[frame]
        if path is None:
            return materials_from_universal(robust.astype(np.uint8))
        r0, r1, c0, c1 = box
        gt = self._checked(self.src, frame, check_cityscapes_ids(read_label(path), path), path,
                           "ground-truth label map")
        return materials_from_cityscapes(gt[r0:r1, c0:c1]).astype(np.float32, copy=False)  # (12, h, w)


class PairBatches(torch.utils.data.Sampler):
    """Keys of the batches of steps `start`..`stop`-1 drawn from the weighted pair sampler.

    The loader iterates this ahead of training (prefetching), so the sampler's state is remembered before
    each step's draw: `state_before(step)` is what a checkpoint after step-1 must store.
    """

    def __init__(self, sampler: Any, batch_size: int, start: int, stop: int, shard: Any = None) -> None:
        self.sampler, self.batch_size, self.start, self.stop = sampler, batch_size, start, stop
        self.shard = shard or list  # Runtime.shard: this rank's part of the global batch
        self._states: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            self._states[step] = copy.deepcopy(self.sampler.state_dict())
            pairs = self.sampler.draw(self.batch_size)
            keys = [(int(p), step * self.batch_size + i) for i, p in enumerate(pairs)]
            yield self.shard(keys)

    def state_before(self, step: int) -> dict[str, Any]:
        """Sampler state before the draw of `step` (forgets older ones)."""
        for old in [s for s in self._states if s < step]:
            del self._states[old]
        if step in self._states:
            return self._states[step]
        return copy.deepcopy(self.sampler.state_dict())  # not drawn yet: the current state is that state


def make_loader(dataset: MatchedPairs, batches: PairBatches, num_workers: int, pin_memory: bool) -> Iterator[Any]:
    """Batches of `dataset` in the order of `batches`; workers only decode, so the order is theirs to keep."""
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if num_workers else None,
        persistent_workers=False,
    )
    return iter(loader)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers decode images; the main process owns the cores for training
    ignore_stop_signals()  # the main process finishes its step on SIGTERM, then ends its workers itself

"""Fake G-buffers from VGG16 features, for datasets without real ones (as the reference's
generate_fake_gbuffers.py).

The reference normalises frames with the dataset's RGB mean / std (averaged per-frame statistics of up
to 1000 frames), runs VGG16 without padding up to relu2_2 (128 channels at half resolution), averages
groups of 4 consecutive channels to 32 and upsamples bicubically to the frame size before saving a
float16 npz per frame. We store the 32 channels at feature resolution (about 4x fewer values) and
upsample on read, which gives the same array.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from epeflow import io
from epeflow.artifacts.gbuffers import GBufferWriter, fingerprint
from epeflow.artifacts.manifest import frame_digests
from epeflow.common.device import select_device
from epeflow.common.moments import Moments
from epeflow.common.vgg16 import VGG16, build_vgg16
from epeflow.errors import EpeflowError
from epeflow.features.crop_stats import frames_mean_std
from epeflow.gbuffers.settings import GBufferSettings
from epeflow.log import progress
from epeflow.provenance import stamp

log = logging.getLogger(__name__)

FAKE_CHANNELS = 32
FAKE_LAYER = "relu2_2"  # the reference's `relu_3` module
FAKE_NAMES = [f"vgg16_{FAKE_LAYER}_g{i:02d}" for i in range(FAKE_CHANNELS)]


def feature_size(height: int, width: int) -> tuple[int, int]:
    """Size of unpadded VGG16 relu2_2 maps: two 3x3 convs, a 2x2 max-pool, two 3x3 convs."""
    return (height - 4) // 2 - 4, (width - 4) // 2 - 4


def fake_gbuffer_features(model: VGG16, images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 32, h, w): relu2_2 with groups of 4 channels averaged."""
    f = model(images, layers=(FAKE_LAYER,))[FAKE_LAYER]  # (B, 128, H/2 - 6, W/2 - 6)
    b, c, h, w = f.shape
    return f.reshape(b, FAKE_CHANNELS, c // FAKE_CHANNELS, h, w).mean(dim=2)  # (B, 32, h, w)


def image_mean_std(paths: Sequence[str], max_frames: int, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """RGB mean / std as the reference: per-frame mean and (unbiased) std, averaged over up to `max_frames`
    frames spread evenly over the dataset (the reference takes the first 1000 of a shuffled loader)."""
    n = len(paths)
    pick = np.unique(np.linspace(0, n - 1, num=min(n, max_frames)).round().astype(np.int64))
    stats = frames_mean_std(paths, pick, threads)
    return np.asarray(stats["mean"]), np.asarray(stats["std"])


class _Frames(Dataset):
    """Decoded frames as (frame, (3, H, W) float32 in [0, 1])."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, frame: int) -> tuple[int, torch.Tensor]:
        rgb = io.read_image(self.paths[frame])  # (H, W, 3) uint8
        return frame, torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div_(255.0)


def size_batches(frames: Sequence[int], sizes: np.ndarray, batch_size: int) -> list[list[int]]:
    """Batches of at most `batch_size` frames of one size (frames keep their order within a size)."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for f in frames:
        by_size.setdefault(tuple(sizes[f].tolist()), []).append(int(f))
    return [group[i : i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)]


def compute_fake_gbuffers(
    manifest: pd.DataFrame,
    out: Path,
    settings: GBufferSettings,
    weights: Mapping[str, Any] | None,
    allow_random: bool,
    threads: int = 1,
    attrs: Mapping[str, Any] | None = None,
    frames: range | None = None,
) -> Moments | None:
    """Build `out` (gbuffers.zarr) with 32 VGG16 feature channels per frame at feature resolution. With
    `frames`, only those frames (the input statistics still over the whole dataset), into a shard store for
    `merge_gbuffer_shards` (returns None)."""
    paths = manifest["path"].astype(str).tolist()
    sizes = manifest[["height", "width"]].to_numpy(dtype=np.int32)  # (N, 2)
    stored = np.array([feature_size(h, w) for h, w in sizes.tolist()], dtype=np.int32).reshape(-1, 2)  # (N, 2)
    too_small = np.flatnonzero((stored <= 0).any(axis=1))
    if too_small.size:
        f = int(too_small[0])
        raise EpeflowError(
            f"frame {paths[f]} is {sizes[f, 0]}x{sizes[f, 1]}; fake G-buffers need frames of at least 14x14 pixels"
        )
    model, random_weights = build_vgg16(weights, allow_random, padding="none")
    weight_id = "random" if random_weights else str((weights or {}).get("path") or "hub:vgg16")
    fp = fingerprint(
        {"kind": "fake", "weights": weight_id, "stats_frames": settings.stats_frames,
         "frames": [[p, int(h), int(w), d]
                    for p, (h, w), d in zip(paths, sizes.tolist(), frame_digests(manifest), strict=True)]}
    )
    writer = GBufferWriter(
        out, mode="fake", names=FAKE_NAMES, frame_sizes=sizes, stored_sizes=stored, fingerprint=fp, chunk=128
    )
    mean, std = image_mean_std(paths, settings.stats_frames, threads)
    log.info("input RGB mean %s std %s", np.round(mean, 4).tolist(), np.round(std, 4).tolist())
    model.set_normalization(mean.tolist(), std.tolist())

    device = select_device()
    cuda = device.type == "cuda"
    model = model.to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    todo = writer.pending(frames)
    loader = DataLoader(
        _Frames(paths),
        batch_sampler=size_batches(todo, sizes, settings.batch_size),
        num_workers=min(settings.num_workers, max(0, threads - 1)),
        pin_memory=cuda,
    )
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            for batch_frames, images in progress(loader, "fake G-buffers", len(loader), unit="batch"):
                images = images.to(device, non_blocking=True)
                if cuda:
                    images = images.contiguous(memory_format=torch.channels_last)
                features = fake_gbuffer_features(model, images).float().cpu().numpy()  # (B, 32, h, w)
                for frame, data in zip(batch_frames.tolist(), features, strict=True):
                    writer.write(frame, data)
    finally:
        writer.flush()
    provenance = stamp(random_weights, feature=f"vgg16_{FAKE_LAYER}_mean4", input_mean=mean.tolist(),
                       input_std=std.tolist(), stats_frames=settings.stats_frames, **dict(attrs or {}))
    if frames is not None:
        writer.finish_shard(frames, provenance)
        log.info("wrote shard %s: frames %d..%d", out, frames.start, frames.stop - 1)
        return None
    total = writer.finish(provenance)
    log.info("wrote %s: %d frames, %d channels at feature resolution", out, len(paths), FAKE_CHANNELS)
    return total

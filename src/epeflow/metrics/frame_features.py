"""VGG16 relu5_3 embeddings: of whole frames for KID and the Fréchet distance (averaged over space, 512-d),
of square crops for sKVD (flattened, so the layout inside the crop counts).

EPE measures realism with KID on VGG features rather than Inception ones; whole frames (downscaled so the
short side is at most a few hundred pixels, aspect kept) give one vector each.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from epeflow.common.vgg16 import VGG16
from epeflow.log import progress
from epeflow.metrics.frame_crops import frame_at_resolution
from epeflow.metrics.frames import load_rgb, prefetch, resize_short_side, same_size_batches

EMBEDDING_LAYER = "relu5_3"
EMBEDDING_DIM = 512


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on GPU; a disabled context on CPU (fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def to_model_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU batch moved to `device`; channels_last on GPU, where convolutions run faster with it."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


@torch.no_grad()
def frame_embedding(model: VGG16, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] on the model's device -> (B, 512) float32."""
    with autocast(x.device):
        f = model(x, (EMBEDDING_LAYER,))[EMBEDDING_LAYER]  # (B, 512, H/16, W/16)
    return f.float().mean(dim=(2, 3))


def embed_frames(
    model: VGG16,
    paths: Sequence[Path],
    short_side: int,
    threads: int = 1,
    batch_size: int = 8,
    desc: str = "VGG16 frame features",
) -> np.ndarray:
    """Embeddings of frame files, (N, 512) float32 in `paths` order; frames decode in `threads` threads."""
    device = next(model.parameters()).device
    out = np.empty((len(paths), EMBEDDING_DIM), dtype=np.float32)

    def load(path: Path) -> tuple[torch.Tensor]:
        return (resize_short_side(load_rgb(path), short_side),)

    frames = prefetch(load, progress(paths, desc=desc, total=len(paths), unit="frame"), threads)
    row = 0
    for (batch,) in same_size_batches(frames, batch_size):
        out[row : row + len(batch)] = frame_embedding(model, to_model_input(batch, device)).cpu().numpy()
        row += len(batch)
    return out


@torch.no_grad()
def crop_embedding(model: VGG16, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, s, s) RGB crops in [0, 1] -> (B, 512 * (s/16)²) float32: relu5_3 flattened, layout kept (sKVD)."""
    with autocast(x.device):
        f = model(x, (EMBEDDING_LAYER,))[EMBEDDING_LAYER]  # (B, 512, s/16, s/16)
    return f.float().flatten(1)


def embed_crops(
    model: VGG16,
    paths: Sequence[Path],
    boxes: np.ndarray,
    side: int,
    size: tuple[int, int],
    threads: int = 1,
    batch_size: int = 8,
    desc: str = "VGG16 crop features",
) -> np.ndarray:
    """Flattened relu5_3 features of one square crop per frame, (N, D) float32 in `paths` order.

    Each frame is brought to the evaluation `size` (height, width) first (`frame_at_resolution`); crop i is
    `side` pixels square at boxes[i] = (top, left) of that frame.
    """
    device = next(model.parameters()).device

    def load(item: tuple[Path, np.ndarray]) -> tuple[torch.Tensor]:
        path, (top, left) = item
        frame = frame_at_resolution(load_rgb(path), size, str(path))
        return (frame[:, top : top + side, left : left + side],)

    items = progress(list(zip(paths, boxes, strict=True)), desc=desc, unit="crop")
    out = [crop_embedding(model, to_model_input(batch, device)).cpu().numpy()
           for (batch,) in same_size_batches(prefetch(load, items, threads), batch_size)]
    return np.concatenate(out) if out else np.empty((0, 0), dtype=np.float32)

"""Inception-v3 pool3 features of frames, as torch-fidelity computes them for its FID and KID.

Published FID / KID numbers (the EPE paper's, and most since) come from the 2015-12-05 TensorFlow Inception
network fed the way TensorFlow's FID code fed it; torch-fidelity reproduces that in PyTorch, and so does this
module, step for step, so the same frames give the same features:

1. frames decoded by Pillow to uint8 RGB, (B, 3, H, W);
2. cast to float32 (the network runs in float32, no autocast);
3. resized to 299x299 whatever the aspect ratio, with TensorFlow 1.x's bilinear resize (`align_corners=False`,
   no half-pixel centres: output pixel i samples input position i * in/out; no antialiasing);
4. normalised as (x - 128) / 128;
5. `InceptionV3Pool3` (epeflow.metrics.inception_net): the 2048 averages of the last mixed block.

The weights are never downloaded: `weights.inception.path` (or the torch hub cache) must hold
`pt_inception-2015-12-05-6726825d.pth`; torch-fidelity's `weights-inception-2015-12-05-6726825d.pth` holds
the same network under the same names. Without the file the Inception metrics are recorded as "weights
missing" with the path expected (`InceptionWeightsMissing`); they never run on random weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from epeflow.errors import EpeflowError
from epeflow.io import read_image
from epeflow.log import progress
from epeflow.metrics.frames import prefetch, same_size_batches
from epeflow.metrics.inception_net import POOL3_DIM, InceptionV3Pool3
from epeflow.weights import OFFICIAL, hub_checkpoint_dir, load_state_dict, resolve_weights, sha256_of

INPUT_SIZE = 299
WEIGHTS_NAME = "inception"
TORCH_FIDELITY_FILENAME = "weights-inception-2015-12-05-6726825d.pth"  # the same network, torch-fidelity's name

INPUT_RECORD = {
    "decoding": "Pillow, converted to uint8 RGB (torch-fidelity's ImagesPathDataset)",
    "dtype": "uint8 -> float32; the network runs in float32 (TF32 off on CUDA)",
    "resize": "to 299x299 whatever the aspect ratio, TensorFlow 1.x bilinear (align_corners=False, no half-pixel "
              "centres, no antialiasing): torch-fidelity's interpolate_bilinear_2d_like_tensorflow1x, 'slow' method",
    "normalisation": "(x - 128) / 128",
}


class InceptionWeightsMissing(EpeflowError):
    """No Inception weight file where the config says (or in the torch hub cache)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"Inception-v3 FID weights not found at {path}: download {OFFICIAL[WEIGHTS_NAME].url} (or torch-fidelity's "
            f"{TORCH_FIDELITY_FILENAME}, the same network) and save it as {path}, or set config key "
            f"`weights.{WEIGHTS_NAME}.path`"
        )


def expected_path(spec: Mapping[str, Any] | None) -> Path:
    """Where the Inception weights are looked for: the configured path, else the torch hub cache."""
    configured = (spec or {}).get("path")
    if configured:
        return Path(configured).expanduser()
    hub = hub_checkpoint_dir()
    official = hub / OFFICIAL[WEIGHTS_NAME].filename
    alias = hub / TORCH_FIDELITY_FILENAME  # a torch-fidelity user has this one already
    return alias if not official.is_file() and alias.is_file() else official


def load_inception(spec: Mapping[str, Any] | None) -> tuple[InceptionV3Pool3, dict[str, str]]:
    """The network with verified weights and its record {file, sha256}; InceptionWeightsMissing without the file."""
    path = expected_path(spec)
    if not path.is_file():
        raise InceptionWeightsMissing(path)
    path = resolve_weights(WEIGHTS_NAME, {**dict(spec or {}), "path": str(path)}, allow_random=False)
    assert path is not None  # allow_random=False: missing is an error above
    model = inception_from_state(load_state_dict(path, "Inception-v3"), str(path))
    return model, {"file": str(path), "sha256": sha256_of(path)}


def inception_from_state(state: Mapping[str, torch.Tensor], what: str = "state dict") -> InceptionV3Pool3:
    """Build the network from a state dict with the FID files' names; a mismatch names the keys."""
    model = InceptionV3Pool3()
    missing, unexpected = model.load_state_dict(dict(state), strict=False)
    if missing or unexpected:
        raise EpeflowError(
            f"{what} is not the FID Inception-v3 (pt_inception-2015-12-05): missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]}; download {OFFICIAL[WEIGHTS_NAME].url} again"
        )
    return model.float().eval().requires_grad_(False)


def resize_bilinear_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TensorFlow 1.x `resize_bilinear(align_corners=False)` of (B, C, H, W) float: output pixel i reads input
    position i * (in / out) (no half-pixel offset), between floor and floor + 1 (clamped to the last pixel);
    rows first, then columns. Upsampling and downsampling alike, without antialiasing."""
    (h, w), (oh, ow) = x.shape[-2:], size

    def axis(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = torch.arange(n_out, dtype=torch.float32, device=x.device) * torch.tensor(n_in / n_out,
                                                                                        dtype=torch.float32)
        lo = pos.long()  # pos >= 0: truncation is floor
        return lo, (lo + 1).clamp_max(n_in - 1), (pos - lo.float()).to(x.dtype)

    y0, y1, fy = axis(h, oh)
    x0, x1, fx = axis(w, ow)
    top, bottom = x[:, :, y0], x[:, :, y1]  # (B, C, oh, W)
    top = top[..., x0] + (top[..., x1] - top[..., x0]) * fx
    bottom = bottom[..., x0] + (bottom[..., x1] - bottom[..., x0]) * fx
    return top + (bottom - top) * fy[:, None]


def network_input(frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 RGB -> (B, 3, 299, 299) float32 as the network expects (steps 2-4 of the module doc)."""
    if frames.dtype != torch.uint8 or frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"Inception input: expected a (B, 3, H, W) uint8 batch, got {tuple(frames.shape)} "
                         f"{frames.dtype}")
    x = resize_bilinear_tf1(frames.to(torch.float32), (INPUT_SIZE, INPUT_SIZE))
    return (x - 128) / 128


@contextlib.contextmanager
def _full_float32(device: torch.device) -> Iterator[None]:
    """No TF32 on CUDA meanwhile: features to float32 precision on every device."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@torch.no_grad()
def pool3(model: InceptionV3Pool3, frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 RGB on the model's device -> (B, 2048) float32 pool3 features."""
    with _full_float32(frames.device):
        return model(network_input(frames)).float()


def inception_features(
    model: InceptionV3Pool3,
    paths: Sequence[Path],
    threads: int = 1,
    batch_size: int = 8,
    desc: str = "Inception features",
) -> np.ndarray:
    """pool3 features of image files, (N, 2048) float32 in `paths` order; frames decode in `threads` threads."""
    device = next(model.parameters()).device
    out = np.empty((len(paths), POOL3_DIM), dtype=np.float32)

    def load(path: Path) -> tuple[torch.Tensor]:
        return (torch.from_numpy(np.ascontiguousarray(read_image(path).transpose(2, 0, 1))),)  # (3, H, W) uint8

    row = 0
    frames = prefetch(load, progress(paths, desc=desc, total=len(paths), unit="frame"), threads)
    for (batch,) in same_size_batches(frames, batch_size):
        out[row : row + len(batch)] = pool3(model, batch.to(device)).cpu().numpy()
        row += len(batch)
    return out

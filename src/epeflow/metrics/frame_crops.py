"""Frames and label maps at sKVD's evaluation resolution, and the seeded square crops cut from both.

EPE evaluated at 957x526 (half of Playing for Data's 1914x1052): every frame is rescaled to the
evaluation height (aspect kept) and centre-cropped to the evaluation width, so crops of 1/8 of the area
cover the same share of the scene in every dataset; label maps take the same path with nearest sampling.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from epeflow.errors import EpeflowError

CROP_FRACTION = 1 / 8  # of the frame area, per crop (EPE)
SIZE_KEY = "evaluate.skvd_size"


def scaled_width(height: int, width: int, target_height: int) -> int:
    return max(1, round(width * target_height / height))


def _check_width(shape: tuple[int, int], size: tuple[int, int], what: str) -> int:
    new_width = scaled_width(shape[0], shape[1], size[0])
    if new_width < size[1]:
        raise EpeflowError(
            f"{what} is {shape[1]}x{shape[0]}: at height {size[0]} it is {new_width} wide, narrower than the "
            f"evaluation width {size[1]}; set `{SIZE_KEY}` to [height, width] with width <= "
            f"{math.floor(shape[1] * size[0] / shape[0])}"
        )
    return new_width


def centre_crop_columns(width: int, target_width: int) -> slice:
    left = (width - target_width) // 2
    return slice(left, left + target_width)


def frame_at_resolution(frame: torch.Tensor, size: tuple[int, int], what: str = "a frame") -> torch.Tensor:
    """(3, H, W) float -> (3, height, width): bilinear (antialiased when shrinking) to the height, centre crop."""
    height, width = size
    new_width = _check_width(tuple(frame.shape[-2:]), size, what)
    if tuple(frame.shape[-2:]) != (height, new_width):
        frame = F.interpolate(frame[None], size=(height, new_width), mode="bilinear", antialias=True,
                              align_corners=False)[0]
    return frame[:, :, centre_crop_columns(new_width, width)]


def labels_at_resolution(labels: np.ndarray, size: tuple[int, int], what: str = "a label map") -> np.ndarray:
    """(H, W) uint8 -> (height, width): nearest sampling at pixel centres to the height, then the centre crop."""
    height, width = size
    h, w = labels.shape
    new_width = _check_width((h, w), size, what)
    rows = ((np.arange(height) + 0.5) * h / height).astype(np.int64)
    cols = ((np.arange(new_width) + 0.5) * w / new_width).astype(np.int64)
    return np.asarray(labels)[rows[:, None], cols[None, centre_crop_columns(new_width, width)]]


def crop_side(size: tuple[int, int], fraction: float = CROP_FRACTION) -> int:
    """Side of a square crop covering `fraction` of a (height, width) frame (at most its short side)."""
    return min(round(math.sqrt(size[0] * size[1] * fraction)), *size)


def crop_boxes(count: int, size: tuple[int, int], side: int, rng: np.random.Generator) -> np.ndarray:
    """`count` uniformly placed square crops inside a (height, width) frame: (count, 2) int (top, left)."""
    tops = rng.integers(0, size[0] - side + 1, size=count)
    lefts = rng.integers(0, size[1] - side + 1, size=count)
    return np.stack([tops, lefts], axis=1)

"""Bicubic upsampling of stored feature maps, whole or only a window.

Fake G-buffers are stored at VGG16 feature resolution and upsampled on read exactly as the reference
does at write time (`F.interpolate(mode="bicubic", align_corners=False)`). A training crop needs only a
few hundred pixels of a 1080p frame, so `upsample_window` builds PyTorch's bicubic weights for just the
requested output rows / columns and applies them to the small input window they touch: the result
equals the crop of the full upsampling, at a fraction of the cost.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

_A = -0.75  # PyTorch's cubic convolution coefficient


def _cubic_near(x: np.ndarray) -> np.ndarray:  # |x| <= 1
    return ((_A + 2) * x - (_A + 3)) * x * x + 1


def _cubic_far(x: np.ndarray) -> np.ndarray:  # 1 < |x| < 2
    return ((_A * x - 5 * _A) * x + 8 * _A) * x - 4 * _A


def bicubic_weights(in_size: int, out_size: int, start: int, stop: int) -> tuple[int, np.ndarray]:
    """Weights that map input samples to output samples start..stop-1 along one axis.

    Returns (first, W) with W of shape (stop - start, n): output[i] = sum_j W[i, j] * input[first + j].
    Same source positions, kernel and border clamping as PyTorch's bicubic with align_corners=False.
    """
    # Source positions rounded as PyTorch's float32 kernel does (float32 scale, one rounding at the end),
    # so the crop agrees with `upsample` to float32 precision even on 1080p frames.
    scale = np.float64(np.float32(in_size) / np.float32(out_size))
    dst = np.arange(start, stop, dtype=np.float64)
    src = (scale * (dst + 0.5) - 0.5).astype(np.float32).astype(np.float64)
    base = np.floor(src)
    t = src - base
    weights = np.stack([_cubic_far(t + 1), _cubic_near(t), _cubic_near(1 - t), _cubic_far(2 - t)], axis=1)
    index = np.clip(base.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :], 0, in_size - 1)  # (n_out, 4)
    first, last = int(index.min()), int(index.max())
    matrix = np.zeros((stop - start, last - first + 1), dtype=np.float64)
    rows = np.repeat(np.arange(stop - start), 4)
    np.add.at(matrix, (rows, (index - first).ravel()), weights.ravel())
    return first, matrix


def upsample(data: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(C, h, w) -> (C, H, W) float32, bicubic (align_corners=False), as the reference."""
    x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))[None]  # (1, C, h, w)
    return F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False)[0].numpy()


def window_for(
    stored: tuple[int, int], size: tuple[int, int], box: tuple[int, int, int, int]
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
    """Input window (a0, a1, b0, b1) of a stored (h, w) map and the row / column weights of an output box."""
    r0, r1, c0, c1 = box
    row_first, row_w = bicubic_weights(stored[0], size[0], r0, r1)
    col_first, col_w = bicubic_weights(stored[1], size[1], c0, c1)
    window = (row_first, row_first + row_w.shape[1], col_first, col_first + col_w.shape[1])
    return window, row_w.astype(np.float32), col_w.astype(np.float32)


def apply_window(window_data: np.ndarray, row_w: np.ndarray, col_w: np.ndarray) -> np.ndarray:
    """(C, wh, ww) input window -> (C, R, K) output crop: row_w @ data @ col_w.T for every channel."""
    return np.matmul(np.matmul(row_w[None], window_data.astype(np.float32)), col_w.T[None])

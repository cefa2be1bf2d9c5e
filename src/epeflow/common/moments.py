"""Per-channel mean / std over a whole dataset, one frame at a time.

Each frame contributes (count, mean, M2) computed in float64 with two passes over its pixels; frames
are combined with Chan et al.'s pairwise update, which stays accurate for millions of frames where a
running sum of squares would lose all digits. Per-frame moments are kept in the store, so a resumed
job never has to read finished frames again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Moments:
    """Per-channel count, mean and sum of squared deviations (M2)."""

    count: int
    mean: np.ndarray  # (C,) float64
    m2: np.ndarray  # (C,) float64

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (as np.std)."""
        if self.count == 0:
            return np.zeros_like(self.mean)
        return np.sqrt(np.maximum(self.m2 / self.count, 0.0))


def frame_moments(data: np.ndarray) -> Moments:
    """Moments of one (C, H, W) frame; one channel at a time in float64 to bound memory."""
    c = data.shape[0]
    count = int(data[0].size) if c else 0
    mean = np.empty(c, dtype=np.float64)
    m2 = np.empty(c, dtype=np.float64)
    for i in range(c):
        x = data[i].astype(np.float64).ravel()
        mean[i] = x.mean()
        m2[i] = np.square(x - mean[i]).sum()
    return Moments(count, mean, m2)


def combine(a: Moments, b: Moments) -> Moments:
    """Moments of the union of two disjoint sets of pixels (Chan et al.)."""
    if a.count == 0:
        return b
    if b.count == 0:
        return a
    n = a.count + b.count
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.count / n)
    m2 = a.m2 + b.m2 + np.square(delta) * (a.count * b.count / n)
    return Moments(n, mean, m2)


def combine_all(counts: np.ndarray, means: np.ndarray, m2s: np.ndarray) -> Moments:
    """Combine per-frame moments (counts [N], means / m2s [N, C]) by pairwise tree reduction."""
    parts = [Moments(int(n), mu, m) for n, mu, m in zip(counts, means, m2s, strict=True)]
    if not parts:
        raise ValueError("no frames to combine")
    while len(parts) > 1:  # pairwise: rounding error grows with log(N), not N
        parts = [combine(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    return parts[0]

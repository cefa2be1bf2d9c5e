"""Reinhard et al. 2001 colour transfer: the weight-free baseline an enhancement method should beat.

Each Lab channel of an image is shifted and scaled so its mean and std match a target's. Reinhard used
Ruderman's decorrelated lαβ space; we use CIELab (D65), which is close to decorrelated for natural images
and is the space `swd_lab` measures in, so the baseline is judged in the space it optimises. Statistics are
pooled over all pixels of a set (every pixel counts once, so larger images weigh more).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from epeflow.metrics.colour import Images, as_float_image, as_image_list, lab_to_srgb, srgb_to_lab


@dataclass(frozen=True)
class LabStats:
    """Per-channel mean and std of CIELab pixel colours (L, a, b), each shape (3,)."""

    mean: np.ndarray
    std: np.ndarray


def fit_reinhard(images: Images) -> LabStats:
    """Lab mean/std of a set of images (N, H, W, 3) or a list of (H, W, 3), or of one (H, W, 3) image."""
    pixels = np.concatenate([srgb_to_lab(im).reshape(-1, 3) for im in as_image_list(images)])
    return LabStats(mean=pixels.mean(axis=0), std=pixels.std(axis=0))


def apply_reinhard(image: np.ndarray, source_stats: LabStats, target_stats: LabStats) -> np.ndarray:
    """Map an image's Lab colours from source to target statistics: (H, W, 3) -> float (H, W, 3) in [0, 1].

    source_stats is usually `fit_reinhard(image)` (per-image transfer, Reinhard's original) or the stats of
    the whole synthetic set (one global mapping, which keeps frame-to-frame colour consistency). Channels
    with zero source std are only shifted. The result is clipped to the sRGB gamut.
    """
    lab = srgb_to_lab(as_float_image(image))
    gain = np.where(source_stats.std > 0, target_stats.std / np.where(source_stats.std > 0, source_stats.std, 1.0),
                    1.0)
    return lab_to_srgb((lab - source_stats.mean) * gain + target_stats.mean)

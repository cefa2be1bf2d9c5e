"""Sliced Wasserstein distances between two image sets; no pretrained weights needed.

`swd` is the multi-scale patch SWD of Karras et al. 2018 (Progressive GAN, appendix D): each image's Laplacian
pyramid (5-tap binomial filter, levels down to 16 px), `descriptors_per_image` random 7x7x3 neighbourhoods per
image and level, each set's descriptors normalised per level by that set's own per-channel mean and std, then
the mean 1-D Wasserstein-1 distance over 4 repeats x 128 random unit directions. It compares local structure
(texture, edges, fine colour contrast) at each scale; the per-set normalisation makes it blind to a global
per-channel gain and offset, so `normalise="joint"` (both sets normalised by the union's statistics) is offered
for when such shifts should count. `swd_lab` measures colour alone: the same sliced distance on CIELab pixel
colours (3-D, in Lab units), which a global colour cast does move.

Units: values are the raw distances (descriptor units of one standard deviation for `swd`, Lab units for
`swd_lab`); Karras's tables report `swd` x 1e3. Both sets are sampled independently (as Karras does), so
`swd(a, a)` is the estimator's noise floor, small but not 0; compare values computed with the same settings.
Sets of unequal size are compared exactly, by integrating |F_a^-1(t) - F_b^-1(t)| over the quantile level t
(the 1-D Wasserstein-1 distance between the two empirical distributions) instead of Karras's requirement of
equal counts. Images may differ in size within and across sets: each has its own pyramid, and the number of
levels is set by the smallest image side in either set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy.ndimage import correlate1d

from epeflow.metrics.colour import Images, as_image_list, srgb_to_lab

_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # separable 5x5 Gaussian of cv2.pyrDown


@dataclass(frozen=True)
class SwdResult:
    """Per-level SWD (level 0 = finest, full resolution; level k = 1/2^k scale) and their mean."""

    per_level: tuple[float, ...]
    mean: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _blur(image: np.ndarray, scale: float = 1.0) -> np.ndarray:
    out = correlate1d(image, _BINOMIAL * scale, axis=0, mode="mirror")
    return correlate1d(out, _BINOMIAL * scale, axis=1, mode="mirror")


def pyr_down(image: np.ndarray) -> np.ndarray:
    """Blur then keep every second row and column: (H, W, C) -> (ceil(H/2), ceil(W/2), C)."""
    return _blur(image)[::2, ::2]


def pyr_up(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Zero-insert upsampling then blur (x4 to keep brightness), cropped to `shape` (H, W) for odd sizes."""
    up = np.zeros((2 * image.shape[0], 2 * image.shape[1], image.shape[2]), dtype=image.dtype)
    up[::2, ::2] = image
    return _blur(up, scale=2.0)[: shape[0], : shape[1]]  # 2.0 per axis = 4.0 in 2-D


def laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Band-pass levels (finest first) plus the low-pass residual as the last level; sums back to the image."""
    pyramid = [np.asarray(image, dtype=np.float64)]
    for _ in range(1, levels):
        pyramid.append(pyr_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - pyr_up(pyramid[-1], pyramid[-2].shape[:2])
    return pyramid


def num_levels(shapes: Sequence[tuple[int, ...]], min_size: int = 16) -> int:
    """Levels such that the smallest side of every image is still >= min_size at the coarsest one."""
    side = min(min(s[0], s[1]) for s in shapes)
    if side < min_size:
        raise ValueError(f"images need sides of at least {min_size} px for SWD, the smallest has {side}")
    levels = 1
    while (side + 1) // 2 >= min_size:
        side, levels = (side + 1) // 2, levels + 1
    return levels


def sample_neighbourhoods(level: np.ndarray, count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random size x size neighbourhoods fully inside `level` (H, W, C) -> (count, size, size, C)."""
    half = size // 2
    h, w = level.shape[:2]
    ys = rng.integers(half, h - half, size=count)
    xs = rng.integers(half, w - half, size=count)
    offsets = np.arange(-half, half + 1)
    return level[(ys[:, None] + offsets)[:, :, None], (xs[:, None] + offsets)[:, None, :]]


def normalise_descriptors(desc: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(N, s, s, C) descriptors -> (N, s*s*C) after per-channel standardisation with the given (C,) stats."""
    return ((desc - mean) / np.where(std > 0, std, 1.0)).reshape(len(desc), -1)


def wasserstein_1d_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """W1 between empirical 1-D distributions, per row: a (K, n), b (K, m), each sorted along its last axis -> (K,).

    The quantile functions are step functions with steps at multiples of 1/n and 1/m; integrating their
    absolute difference over the merged steps is exact, and for n == m it is mean(|a - b|).
    """
    n, m = a.shape[-1], b.shape[-1]
    if n == m:
        return np.abs(a - b).mean(axis=-1)
    if max(n, m) % min(n, m) == 0:  # each step of the coarser function spans whole steps of the finer one
        coarse, fine = (a, b) if n < m else (b, a)
        return np.abs(np.repeat(coarse, fine.shape[-1] // coarse.shape[-1], axis=-1) - fine).mean(axis=-1)
    ends = np.union1d(np.arange(1, n + 1) * m, np.arange(1, m + 1) * n)  # step ends, in units of 1/(n*m)
    widths = np.diff(ends, prepend=0)
    mids2 = 2 * ends - widths  # interval midpoints, in units of 1/(2*n*m)
    ia, ib = mids2 // (2 * m), mids2 // (2 * n)
    return np.abs(a[..., ia] - b[..., ib]) @ (widths / (n * m))


def sliced_wasserstein_many(sets: Sequence[np.ndarray], b: np.ndarray, rng: np.random.Generator,
                            dir_repeats: int = 4, dirs_per_repeat: int = 128) -> list[float]:
    """`sliced_wasserstein(a, b, rng)` for every a in `sets`, with the same directions: b is projected and
    sorted once per direction set, which is most of the work when b is the large real set."""
    for a in sets:
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"descriptor lengths differ: {a.shape[1]} vs {b.shape[1]}")
    results: list[list[float]] = [[] for _ in sets]
    for _ in range(dir_repeats):
        dirs = rng.standard_normal((b.shape[1], dirs_per_repeat))  # (D, dirs)
        dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
        # (dirs, n): one contiguous row per direction, so the sorts run along memory
        proj_b = np.sort(dirs.T @ b.T, axis=1)
        for i, a in enumerate(sets):
            results[i].append(wasserstein_1d_sorted(np.sort(dirs.T @ a.T, axis=1), proj_b).mean())
    return [float(np.mean(r)) for r in results]


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, dir_repeats: int = 4,
                       dirs_per_repeat: int = 128) -> float:
    """Mean W1 of the projections of a (n, D) and b (m, D) on dir_repeats x dirs_per_repeat random unit vectors."""
    return sliced_wasserstein_many([a], b, rng, dir_repeats, dirs_per_repeat)[0]


def _descriptors(images: list[np.ndarray], levels: int, count: int, size: int,
                 rng: np.random.Generator) -> list[np.ndarray]:
    per_level: list[list[np.ndarray]] = [[] for _ in range(levels)]
    for image in images:
        for k, level in enumerate(laplacian_pyramid(image, levels)):
            per_level[k].append(sample_neighbourhoods(level, count, size, rng))
    return [np.concatenate(d) for d in per_level]  # levels x (N*count, size, size, 3)


def _channel_stats(*descs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = np.concatenate([d.reshape(-1, d.shape[-1]) for d in descs])
    return flat.mean(axis=0), flat.std(axis=0)


def swd_many(image_sets: Sequence[Images], images_b: Images, *, descriptors_per_image: int = 128,
             nhood_size: int = 7, dir_repeats: int = 4, dirs_per_repeat: int = 128, min_size: int = 16,
             normalise: Literal["per_set", "joint"] = "per_set", seed: int = 0) -> list[SwdResult]:
    """`swd(a, images_b)` for every set a, sharing b's descriptors and projections (same values as one call
    per set, except that the number of pyramid levels is set by the smallest image of all sets)."""
    if normalise not in ("per_set", "joint"):
        raise ValueError(f"normalise must be 'per_set' or 'joint', got {normalise!r}")
    sets, b = [as_image_list(images) for images in image_sets], as_image_list(images_b)
    levels = num_levels([im.shape for images in [*sets, b] for im in images], max(min_size, nhood_size))
    seed_a, seed_b, seed_dirs = np.random.SeedSequence(seed).spawn(3)
    # every set draws its neighbourhoods and the directions from the same seeds, as in a call of its own
    desc_sets = [_descriptors(a, levels, descriptors_per_image, nhood_size, np.random.default_rng(seed_a))
                 for a in sets]
    desc_b = _descriptors(b, levels, descriptors_per_image, nhood_size, np.random.default_rng(seed_b))
    per_level: list[list[float]] = [[] for _ in sets]
    if normalise == "joint":  # b's normalisation depends on each set: nothing to share
        for i, desc_a in enumerate(desc_sets):
            rng_dirs = np.random.default_rng(seed_dirs)
            for da, db in zip(desc_a, desc_b, strict=True):
                stats = _channel_stats(da, db)
                per_level[i].append(sliced_wasserstein(normalise_descriptors(da, *stats),
                                                       normalise_descriptors(db, *stats), rng_dirs, dir_repeats,
                                                       dirs_per_repeat))
    else:
        rng_dirs = np.random.default_rng(seed_dirs)
        for k, db in enumerate(desc_b):
            sides = [normalise_descriptors(d[k], *_channel_stats(d[k])) for d in desc_sets]
            values = sliced_wasserstein_many(sides, normalise_descriptors(db, *_channel_stats(db)), rng_dirs,
                                             dir_repeats, dirs_per_repeat)
            for i, value in enumerate(values):
                per_level[i].append(value)
    return [SwdResult(per_level=tuple(v), mean=float(np.mean(v))) for v in per_level]


def swd(images_a: Images, images_b: Images, *, descriptors_per_image: int = 128, nhood_size: int = 7,
        dir_repeats: int = 4, dirs_per_repeat: int = 128, min_size: int = 16,
        normalise: Literal["per_set", "joint"] = "per_set", seed: int = 0) -> SwdResult:
    """Multi-scale patch SWD (Karras et al. 2018) between two image sets; defaults are the paper's."""
    return swd_many([images_a], images_b, descriptors_per_image=descriptors_per_image, nhood_size=nhood_size,
                    dir_repeats=dir_repeats, dirs_per_repeat=dirs_per_repeat, min_size=min_size,
                    normalise=normalise, seed=seed)[0]


def _lab_pixels(images: list[np.ndarray], count: int, rng: np.random.Generator) -> np.ndarray:
    picks = []
    for image in images:
        flat = image.reshape(-1, 3)
        picks.append(flat[rng.integers(0, len(flat), size=count)])
    return srgb_to_lab(np.concatenate(picks))  # (N*count, 3)


def swd_lab_many(image_sets: Sequence[Images], images_b: Images, *, pixels_per_image: int = 1024,
                 dir_repeats: int = 4, dirs_per_repeat: int = 128, seed: int = 0) -> list[float]:
    """`swd_lab(a, images_b)` for every set a, sharing b's pixels and projections (the same values)."""
    seed_a, seed_b, seed_dirs = np.random.SeedSequence(seed).spawn(3)
    sides = [_lab_pixels(as_image_list(a), pixels_per_image, np.random.default_rng(seed_a)) for a in image_sets]
    b = _lab_pixels(as_image_list(images_b), pixels_per_image, np.random.default_rng(seed_b))
    return sliced_wasserstein_many(sides, b, np.random.default_rng(seed_dirs), dir_repeats, dirs_per_repeat)


def swd_lab(images_a: Images, images_b: Images, *, pixels_per_image: int = 1024, dir_repeats: int = 4,
            dirs_per_repeat: int = 128, seed: int = 0) -> float:
    """Sliced W1 between the CIELab colours of random pixels (same count per image), in Lab units."""
    return swd_lab_many([images_a], images_b, pixels_per_image=pixels_per_image, dir_repeats=dir_repeats,
                        dirs_per_repeat=dirs_per_repeat, seed=seed)[0]

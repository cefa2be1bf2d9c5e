"""Distances between two sets of feature vectors: KID and the Fréchet distance, edge cases as the reference tools.

KID (Bińkowski et al. 2018) is the unbiased MMD² with the cubic polynomial kernel, averaged over random
subsets; unlike the Fréchet distance it has no bias that depends on the number of samples, which is why
EPE reports it for the few hundred frames a held-out split has. Subsets are drawn exactly as torch-fidelity
draws them (numpy `RandomState(seed)`, per subset `choice(n_x, size, replace=False)` then the same for y,
one size for both sets, seed 2020 by default), so a KID here equals torch-fidelity's on the same features;
a set smaller than the subset size is an error, as there, unless the caller asks for `subset_size="auto"`.
The Fréchet distance follows pytorch-fid's `calculate_frechet_distance`: a singular product retries with
1e-6 on the covariance diagonals, and a square root whose diagonal is complex beyond 1e-3 is an error.
Pure functions on (N, D) arrays.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import scipy.linalg

from epeflow.errors import EpeflowError
from epeflow.log import progress

TORCH_FIDELITY_SEED = 2020  # torch-fidelity's default `rng_seed`
FID_OFFSET = 1e-6  # pytorch-fid's `eps`: added to both covariance diagonals when their product is singular
FID_IMAGINARY_TOLERANCE = 1e-3  # pytorch-fid's `atol` on the imaginary part of the square root's diagonal


def _as_features(x: np.ndarray, what: str, dtype: type[np.floating] = np.float64) -> np.ndarray:
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 2:
        raise ValueError(f"{what}: expected an (N, D) array of feature vectors, got shape {x.shape}")
    if len(x) < 2:
        raise EpeflowError(f"{what}: needs at least 2 feature vectors, got {len(x)}; use more frames")
    return x


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x·y / d + 1)^3 for all pairs (gamma = 1/d, coef0 = 1, degree 3): (N, D), (M, D) -> (N, M)."""
    return (x @ y.T * (1.0 / x.shape[1]) + 1.0) ** 3  # gamma as a factor, as torch-fidelity (same rounding)


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between samples x (m, d) and y (n, d): within-set means leave out the diagonal.

    For m == n this is torch-fidelity's `mmd2(..., mmd_est="unbiased")` (the cross term keeps its diagonal).
    Sums run in torch-fidelity's order (row sums less the diagonal, then their total), so float32 features
    give its float32 result to the last bits, not only to float32 precision.
    """
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    off_xx = (k_xx.sum(axis=1) - np.diagonal(k_xx)).sum()
    off_yy = (k_yy.sum(axis=1) - np.diagonal(k_yy)).sum()
    cross = k_xy.sum(axis=0).sum()
    if m == n:
        return float((off_xx + off_yy) / (m * (m - 1)) - 2 * cross / (m * m))
    return float(off_xx / (m * (m - 1)) + off_yy / (n * (n - 1)) - 2 * cross / (m * n))


@dataclass(frozen=True)
class KidResult:
    """KID mean and standard deviation over subsets, with what decides them (for metrics.json)."""

    mean: float
    std: float
    subsets: int
    subset_size: int
    subset_size_rule: str  # "as set" or "auto: the smaller set's size"
    seed: int
    n_x: int
    n_y: int

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def resolve_subset_size(subset_size: int | Literal["auto"], n_x: int, n_y: int, key: str = "subset_size") -> int:
    """The KID subset size for sets of n_x and n_y vectors: `auto` is the smaller set's size; an integer
    larger than either set is an error naming `key` (torch-fidelity refuses it too; never capped silently)."""
    if subset_size == "auto":
        size = min(n_x, n_y)
        if size < 2:
            raise EpeflowError(f"KID needs at least 2 feature vectors in each set, got {n_x} and {n_y}")
        return size
    if isinstance(subset_size, bool) or not isinstance(subset_size, int | np.integer) or subset_size < 2:
        raise ValueError(f"KID: subset size must be an integer >= 2 or 'auto', got {subset_size!r}")
    if n_x < subset_size or n_y < subset_size:
        raise EpeflowError(
            f"KID subset size {subset_size} needs at least {subset_size} feature vectors in each set, got "
            f"{n_x} and {n_y}; set `{key}` to at most {min(n_x, n_y)}, or to `auto` (the smaller set's size, "
            "recorded with the result), or compare more frames"
        )
    return int(subset_size)


def kid(
    x: np.ndarray,
    y: np.ndarray,
    subsets: int = 100,
    subset_size: int | Literal["auto"] = 1000,
    seed: int = TORCH_FIDELITY_SEED,
    key: str = "subset_size",
    dtype: type[np.floating] = np.float64,
) -> KidResult:
    """KID between feature sets x (N, D) and y (M, D) as torch-fidelity computes it (see the module doc).

    `key` names the setting in the error raised when a set is smaller than `subset_size`. `dtype`: of the
    kernel sums; torch-fidelity keeps its features' float32 there (its KID then differs from the float64 one
    by ~1e-5 relative, more for KIDs near 0), so `np.float32` reproduces its Inception KID to the last bits.
    """
    x, y = _as_features(x, "KID first set", dtype), _as_features(y, "KID second set", dtype)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"KID: feature sizes differ ({x.shape[1]} vs {y.shape[1]})")
    if subsets < 1:
        raise ValueError(f"KID: need subsets >= 1, got {subsets}")
    size = resolve_subset_size(subset_size, len(x), len(y), key)
    rng = np.random.RandomState(seed)  # legacy generator on purpose: torch-fidelity's draws, call for call
    values = np.empty(subsets, dtype=np.float64)
    for i in progress(range(subsets), desc="KID subsets", unit="subset"):
        pick_x = rng.choice(len(x), size, replace=False)
        pick_y = rng.choice(len(y), size, replace=False)
        values[i] = mmd2_unbiased(x[pick_x], y[pick_y])
    rule = "auto: the smaller set's size" if subset_size == "auto" else "as set"
    return KidResult(float(values.mean()), float(values.std()), subsets, size, rule, seed, len(x), len(y))


class FrechetDistanceError(EpeflowError):
    """The covariances give no real square root within pytorch-fid's tolerance: no Fréchet distance."""


@dataclass(frozen=True)
class FidResult:
    """A Fréchet distance and how its matrix square root was obtained."""

    value: float
    offset_added: bool  # the product of the covariances was singular: FID_OFFSET was added to the diagonals
    max_imaginary: float  # largest |imaginary part| of the square root's diagonal that was dropped
    n_x: int
    n_y: int

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def frechet_distance_from_moments(
    mu_x: np.ndarray, cov_x: np.ndarray, mu_y: np.ndarray, cov_y: np.ndarray, eps: float = FID_OFFSET
) -> tuple[float, bool, float]:
    """||mu_x - mu_y||² + Tr(S_x + S_y - 2 (S_x S_y)^½) as pytorch-fid: (value, offset_added, max_imaginary).

    A non-finite square root is retried with `eps` on both diagonals; a diagonal imaginary part beyond
    1e-3 is a FrechetDistanceError (pytorch-fid raises ValueError('Imaginary component ...') there).
    """
    mu_x, mu_y = np.atleast_1d(mu_x), np.atleast_1d(mu_y)
    cov_x, cov_y = np.atleast_2d(cov_x), np.atleast_2d(cov_y)
    if mu_x.shape != mu_y.shape or cov_x.shape != cov_y.shape:
        raise ValueError(f"Fréchet distance: shapes differ ({mu_x.shape}, {cov_x.shape} vs {mu_y.shape}, "
                         f"{cov_y.shape})")
    offset_added = False
    with warnings.catch_warnings():  # a singular product is handled below, as pytorch-fid does
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(cov_x @ cov_y)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(cov_x)) * eps
            covmean = scipy.linalg.sqrtm((cov_x + offset) @ (cov_y + offset))
            offset_added = True
    max_imaginary = 0.0
    if np.iscomplexobj(covmean):
        max_imaginary = float(np.abs(np.diagonal(covmean).imag).max())
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=FID_IMAGINARY_TOLERANCE):
            raise FrechetDistanceError(
                f"Fréchet distance: the square root of the covariance product has an imaginary component of "
                f"{np.abs(covmean.imag).max():.3g} (pytorch-fid refuses more than {FID_IMAGINARY_TOLERANCE} on "
                "the diagonal); the covariances are too ill-conditioned, usually from far fewer samples than "
                "feature dimensions: compare more frames, or drop `fid_vgg` from `evaluate.metrics`"
            )
        covmean = covmean.real
    diff = mu_x - mu_y
    value = float(diff @ diff + np.trace(cov_x) + np.trace(cov_y) - 2.0 * np.trace(covmean))
    return value, offset_added, max_imaginary


def fid(x: np.ndarray, y: np.ndarray, eps: float = FID_OFFSET) -> FidResult:
    """Fréchet distance of Gaussians fitted to x (N, D) and y (M, D) (FID when the features are Inception's)."""
    x, y = _as_features(x, "Fréchet distance first set"), _as_features(y, "Fréchet distance second set")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"Fréchet distance: feature sizes differ ({x.shape[1]} vs {y.shape[1]})")
    value, offset_added, max_imaginary = frechet_distance_from_moments(
        x.mean(axis=0), np.cov(x, rowvar=False), y.mean(axis=0), np.cov(y, rowvar=False), eps
    )
    return FidResult(value, offset_added, max_imaginary, len(x), len(y))

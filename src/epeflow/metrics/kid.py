"""Distances between two sets of feature vectors: KID and the Fréchet distance.

KID (Bińkowski et al. 2018) is the unbiased MMD² with the cubic polynomial kernel, averaged over random
subsets; unlike the Fréchet distance it has no bias that depends on the number of samples, which is why
EPE reports it for the few hundred frames a held-out split has. Pure functions on (N, D) arrays.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import scipy.linalg

from epeflow.errors import EpeflowError
from epeflow.log import progress


def _as_features(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{what}: expected an (N, D) array of feature vectors, got shape {x.shape}")
    if len(x) < 2:
        raise EpeflowError(f"{what}: needs at least 2 feature vectors, got {len(x)}; use more frames")
    return x


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x·y / d + 1)^3 for all pairs: (N, D), (M, D) -> (N, M)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between samples x (m, d) and y (n, d): within-set means leave out the diagonal."""
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


@dataclass(frozen=True)
class KidResult:
    """KID mean and standard deviation over subsets, and the subset sizes actually used."""

    mean: float
    std: float
    subsets: int
    subset_size_x: int
    subset_size_y: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def kid(x: np.ndarray, y: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> KidResult:
    """KID between feature sets x (N, D) and y (M, D); subsets drawn without replacement, seeded.

    The subset size is capped separately by each set's size (the estimator stays unbiased with unequal
    sizes), so a small enhanced split is still compared against many real frames.
    """
    x, y = _as_features(x, "KID first set"), _as_features(y, "KID second set")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"KID: feature sizes differ ({x.shape[1]} vs {y.shape[1]})")
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"KID: need subsets >= 1 and subset_size >= 2, got {subsets}, {subset_size}")
    m, n = min(subset_size, len(x)), min(subset_size, len(y))
    rng = np.random.default_rng(seed)
    values = np.empty(subsets, dtype=np.float64)
    for i in progress(range(subsets), desc="KID subsets", unit="subset"):
        values[i] = mmd2_unbiased(x[rng.choice(len(x), m, replace=False)], y[rng.choice(len(y), n, replace=False)])
    return KidResult(float(values.mean()), float(values.std()), subsets, m, n)


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """||mu_x - mu_y||² + Tr(S_x + S_y - 2 (S_x S_y)^½) of Gaussians fitted to x (N, D) and y (M, D).

    As pytorch-fid: when the square root is not finite (singular covariances, fewer samples than
    dimensions) a small ridge is added; the tiny imaginary part numerical noise leaves is dropped.
    """
    x, y = _as_features(x, "Fréchet distance first set"), _as_features(y, "Fréchet distance second set")
    mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)  # (D, D)
    with warnings.catch_warnings():  # singular products are expected with few frames; handled below
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(cov_x @ cov_y)
        if not np.isfinite(covmean).all():
            ridge = np.eye(len(cov_x)) * 1e-6
            covmean = scipy.linalg.sqrtm((cov_x + ridge) @ (cov_y + ridge))
    diff = mu_x - mu_y
    return float(diff @ diff + np.trace(cov_x) + np.trace(cov_y) - 2.0 * np.trace(np.real(covmean)))

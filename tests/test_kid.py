from __future__ import annotations

import numpy as np
import pytest

from epeflow.errors import EpeflowError
from epeflow.metrics.kid import (
    FID_OFFSET,
    FrechetDistanceError,
    fid,
    frechet_distance_from_moments,
    kid,
    mmd2_unbiased,
    polynomial_kernel,
)


def _loop_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook unbiased estimator, one kernel value at a time."""
    d = x.shape[1]

    def k(a, b):
        return (sum(a[i] * b[i] for i in range(d)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def _torch_fidelity_kid(x: np.ndarray, y: np.ndarray, subsets: int, size: int, seed: int) -> tuple[float, float]:
    """torch-fidelity 0.4's kid_features_to_metric written out: its draws and its `mmd2` sums."""
    rng = np.random.RandomState(seed)
    mmds = []
    for _ in range(subsets):
        f1 = x[rng.choice(len(x), size, replace=False)]
        f2 = y[rng.choice(len(y), size, replace=False)]
        k11, k22, k12 = ((a @ b.T / a.shape[1] + 1) ** 3 for a, b in ((f1, f1), (f2, f2), (f1, f2)))
        m = size
        kt11, kt22 = k11.sum() - np.diagonal(k11).sum(), k22.sum() - np.diagonal(k22).sum()
        mmds.append((kt11 + kt22) / (m * (m - 1)) - 2 * k12.sum() / (m * m))
    return float(np.mean(mmds)), float(np.std(mmds))


def test_kernel_shape_and_values():
    x, y = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[1.0, 1.0]])
    np.testing.assert_allclose(polynomial_kernel(x, y), [[1.5**3], [2.0**3]])


def test_mmd2_matches_the_loop_implementation():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5)), rng.normal(0.3, 1.2, size=(9, 5))
    assert mmd2_unbiased(x, y) == pytest.approx(_loop_mmd2(x, y), rel=1e-10)


def test_kid_draws_and_values_are_torch_fidelitys():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 8)), rng.normal(0.5, 1.0, size=(45, 8))
    result = kid(x, y, subsets=7, subset_size=12)
    assert result.seed == 2020 and result.subset_size == 12 and (result.n_x, result.n_y) == (30, 45)
    mean, std = _torch_fidelity_kid(x, y, 7, 12, 2020)
    assert result.mean == pytest.approx(mean, rel=1e-12) and result.std == pytest.approx(std, rel=1e-12)
    other = kid(x, y, subsets=7, subset_size=12, seed=5)
    assert other.mean == pytest.approx(_torch_fidelity_kid(x, y, 7, 12, 5)[0], rel=1e-12)
    assert other.mean != result.mean


def test_kid_over_whole_sets_equals_the_loop_value_for_every_subset():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 4)), rng.normal(0.5, 1.0, size=(6, 4))
    result = kid(x, y, subsets=5, subset_size=6)
    assert result.mean == pytest.approx(_loop_mmd2(x, y), rel=1e-10)
    assert result.std == pytest.approx(0.0, abs=1e-12)


def test_a_set_smaller_than_the_subset_size_is_an_error_saying_what_to_set():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 8)), rng.normal(size=(48, 8))
    with pytest.raises(EpeflowError, match=r"needs at least 16 .* got 12 and 48; set `evaluate.kid_subset_size` to "
                                           r"at most 12, or to `auto`"):
        kid(x, y, subsets=3, subset_size=16, key="evaluate.kid_subset_size")


def test_auto_subset_size_is_the_smaller_set_and_recorded():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 8)), rng.normal(size=(48, 8))
    auto = kid(x, y, subsets=4, subset_size="auto")
    assert auto.subset_size == 12 and auto.as_dict()["subset_size_rule"].startswith("auto")
    assert auto == kid(x, y, subsets=4, subset_size="auto")
    explicit = kid(x, y, subsets=4, subset_size=12)
    assert explicit.mean == auto.mean and explicit.subset_size_rule == "as set"


def test_kid_is_near_zero_for_one_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(300, 16))
    same = rng.normal(size=(300, 16))
    kids = [kid(same + shift, real, subsets=20, subset_size=100).mean for shift in (0.0, 0.3, 0.6, 1.2)]
    assert abs(kids[0]) < 0.02
    assert kids[1] > 5 * abs(kids[0])
    assert kids[0] < kids[1] < kids[2] < kids[3]


def test_frechet_distance():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(400, 6))
    assert fid(x, x).value == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, -2.0, 0.0, 0.5, 0.0, 0.0])
    assert fid(x, x + shift).value == pytest.approx(float(shift @ shift), rel=1e-6)
    # same mean, covariance scaled by 4: Tr(S + 4S - 2 (4 S^2)^½) = Tr(S)
    mean = x.mean(axis=0)
    scaled = (x - mean) * 2.0 + mean
    result = fid(x, scaled)
    assert result.value == pytest.approx(np.trace(np.cov(x, rowvar=False)), rel=1e-6)
    assert not result.offset_added and (result.n_x, result.n_y) == (400, 400)


def test_frechet_distance_with_fewer_samples_than_dimensions_is_finite():
    rng = np.random.default_rng(7)
    result = fid(rng.normal(size=(10, 32)), rng.normal(1.0, 1.0, size=(12, 32)))
    assert np.isfinite(result.value) and result.value > 0 and result.max_imaginary < 1e-3


def test_a_singular_product_is_retried_with_pytorch_fids_offset():
    # A @ B is nilpotent: it has no square root (scipy gives inf). With 1e-6 on both diagonals it is the
    # Jordan block (1+e)[[e, 1], [0, e]], whose root has sqrt(e(1+e)) on its diagonal.
    a, b, zero = np.array([[0.0, 1.0], [0.0, 0.0]]), np.eye(2), np.zeros(2)
    value, offset_added, _ = frechet_distance_from_moments(zero, a, zero, b)
    e = FID_OFFSET
    assert offset_added
    assert value == pytest.approx(0.0 + 2.0 - 2 * 2 * np.sqrt(e * (1 + e)), rel=1e-9)


def test_a_complex_square_root_beyond_pytorch_fids_tolerance_is_an_error():
    zero = np.zeros(2)
    with pytest.raises(FrechetDistanceError, match="imaginary component of 1 "):
        frechet_distance_from_moments(zero, np.eye(2), zero, np.diag([-1.0, 1.0]))  # sqrt(-1) on the diagonal


def test_too_few_samples_is_an_error():
    with pytest.raises(EpeflowError, match="at least 2"):
        kid(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(EpeflowError, match="at least 2"):
        fid(np.zeros((5, 4)), np.zeros((1, 4)))

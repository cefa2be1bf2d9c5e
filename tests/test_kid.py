from __future__ import annotations

import numpy as np
import pytest

from epeflow.errors import EpeflowError
from epeflow.metrics.kid import frechet_distance, kid, mmd2_unbiased, polynomial_kernel


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


def test_kernel_shape_and_values():
    x, y = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[1.0, 1.0]])
    np.testing.assert_allclose(polynomial_kernel(x, y), [[1.5**3], [2.0**3]])


def test_mmd2_matches_the_loop_implementation():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5)), rng.normal(0.3, 1.2, size=(9, 5))
    assert mmd2_unbiased(x, y) == pytest.approx(_loop_mmd2(x, y), rel=1e-10)


def test_kid_over_whole_sets_equals_the_loop_value_for_every_subset():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 4)), rng.normal(0.5, 1.0, size=(8, 4))
    result = kid(x, y, subsets=5, subset_size=100, seed=0)
    assert (result.subset_size_x, result.subset_size_y, result.subsets) == (6, 8, 5)
    assert result.mean == pytest.approx(_loop_mmd2(x, y), rel=1e-10)
    assert result.std == pytest.approx(0.0, abs=1e-12)


def test_kid_subsets_are_seeded_and_capped_per_set():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 8)), rng.normal(size=(200, 8))
    a, b = kid(x, y, subsets=10, subset_size=20, seed=3), kid(x, y, subsets=10, subset_size=20, seed=3)
    assert a == b
    assert kid(x, y, subsets=10, subset_size=20, seed=4).mean != a.mean
    assert (a.subset_size_x, a.subset_size_y) == (20, 20)
    small = kid(x[:5], y, subsets=3, subset_size=20, seed=0)
    assert (small.subset_size_x, small.subset_size_y) == (5, 20)
    assert small.as_dict()["subset_size_x"] == 5


def test_kid_is_near_zero_for_one_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(300, 16))
    same = rng.normal(size=(300, 16))
    kids = [kid(same + shift, real, subsets=20, subset_size=100, seed=0).mean for shift in (0.0, 0.3, 0.6, 1.2)]
    assert abs(kids[0]) < 0.02
    assert kids[1] > 5 * abs(kids[0])
    assert kids[0] < kids[1] < kids[2] < kids[3]


def test_frechet_distance():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(400, 6))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, -2.0, 0.0, 0.5, 0.0, 0.0])
    assert frechet_distance(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    # same mean, covariance scaled by 4: Tr(S + 4S - 2 (4 S^2)^½) = Tr(S)
    mean = x.mean(axis=0)
    scaled = (x - mean) * 2.0 + mean
    expected = np.trace(np.cov(x, rowvar=False))
    assert frechet_distance(x, scaled) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_with_fewer_samples_than_dimensions_is_finite():
    rng = np.random.default_rng(7)
    value = frechet_distance(rng.normal(size=(10, 32)), rng.normal(1.0, 1.0, size=(12, 32)))
    assert np.isfinite(value) and value > 0


def test_too_few_samples_is_an_error():
    with pytest.raises(EpeflowError, match="at least 2"):
        kid(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(EpeflowError, match="at least 2"):
        frechet_distance(np.zeros((5, 4)), np.zeros((1, 4)))

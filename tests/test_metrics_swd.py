from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from epeflow.metrics.swd import (
    laplacian_pyramid,
    num_levels,
    pyr_up,
    sliced_wasserstein,
    swd,
    swd_lab,
    swd_lab_many,
    swd_many,
    wasserstein_1d_sorted,
)


def _textures(n: int, seed: int, blur: float = 1.0, size: tuple[int, int] = (48, 64),
              tint: tuple[float, float, float] = (0.5, 0.5, 0.5)) -> np.ndarray:
    """n images of blurred colour noise around `tint`: one 'distribution' per (blur, tint)."""
    rng = np.random.default_rng(seed)
    noise = gaussian_filter(rng.normal(size=(n, *size, 3)), sigma=(0, blur, blur, 0))
    noise /= noise.std()
    return np.clip(np.asarray(tint) + 0.15 * noise, 0.0, 1.0)


def test_laplacian_pyramid_sums_back_to_the_image_for_odd_sizes():
    image = np.random.default_rng(0).random((37, 51, 3))
    pyramid = laplacian_pyramid(image, 3)
    assert [p.shape[:2] for p in pyramid] == [(37, 51), (19, 26), (10, 13)]
    rebuilt = pyramid[-1]
    for level in pyramid[-2::-1]:
        rebuilt = pyr_up(rebuilt, level.shape[:2]) + level
    np.testing.assert_allclose(rebuilt, image, atol=1e-12)


def test_levels_go_down_to_16_px_like_karras():
    assert num_levels([(256, 256, 3)]) == 5  # 256, 128, 64, 32, 16
    assert num_levels([(128, 256, 3), (64, 90, 3)]) == 3  # the smallest image sets the count
    with pytest.raises(ValueError, match="at least 16"):
        num_levels([(12, 40, 3)])


def test_wasserstein_of_unequal_sets_is_exact():
    a = np.array([[0.0, 1.0]])
    b = np.array([[0.0, 0.0, 3.0]])
    # Quantile functions: a = 0 on (0, 1/2], 1 after; b = 0 on (0, 2/3], 3 after.
    expected = (2 / 3 - 1 / 2) * 1 + (1 - 2 / 3) * 2
    assert wasserstein_1d_sorted(a, b)[0] == pytest.approx(expected)
    x = np.sort(np.random.default_rng(0).normal(size=(4, 50)), axis=1)
    y = np.sort(np.random.default_rng(1).normal(size=(4, 30)), axis=1)
    # the merged-steps integral equals the brute-force one on a fine common quantile grid
    t = (np.arange(3000) + 0.5) / 3000
    brute = np.abs(x[:, (t * 50).astype(int)] - y[:, (t * 30).astype(int)]).mean(axis=1)
    np.testing.assert_allclose(wasserstein_1d_sorted(x, y), brute, atol=1e-12)
    np.testing.assert_allclose(wasserstein_1d_sorted(x, x), 0.0)
    np.testing.assert_allclose(wasserstein_1d_sorted(x, x + 0.5), 0.5)
    # sizes that divide each other (12 vs 48 frames) take the repeat shortcut: the same integral
    z = np.sort(np.random.default_rng(2).normal(size=(4, 10)), axis=1)
    brute = np.abs(x[:, (t * 50).astype(int)] - z[:, (t * 10).astype(int)]).mean(axis=1)
    np.testing.assert_allclose(wasserstein_1d_sorted(x, z), brute, atol=1e-12)
    np.testing.assert_allclose(wasserstein_1d_sorted(z, x), brute, atol=1e-12)


def test_sliced_wasserstein_of_a_shift_is_near_the_mean_projected_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 3))
    shifted = sliced_wasserstein(a, a + np.array([1.0, 0.0, 0.0]), np.random.default_rng(1), 4, 256)
    assert shifted == pytest.approx(0.5, abs=0.05)  # E|u_1| for a random unit vector in 3-D is 1/2


def test_swd_per_level_output_and_units():
    result = swd(_textures(3, 0, size=(64, 80)), _textures(2, 1, size=(64, 80)), descriptors_per_image=32)
    assert len(result.per_level) == 3  # 64, 32, 16
    assert result.mean == pytest.approx(np.mean(result.per_level))
    assert set(result.as_dict()) == {"per_level", "mean"}


def test_swd_same_distribution_small_different_distribution_large():
    # Random projections of 147-D descriptors are close to Gaussian, so the estimator needs a few thousand
    # descriptors to separate textures that differ only in their correlation length; its floor is ~1/sqrt(N).
    same = swd(_textures(12, 0, blur=0.5), _textures(12, 1, blur=0.5))
    other = swd(_textures(12, 0, blur=0.5), _textures(12, 1, blur=4.0))
    assert all(o > 2 * s for s, o in zip(same.per_level, other.per_level, strict=True))


def test_swd_of_identical_sets_is_the_noise_floor_and_is_seeded():
    images = _textures(4, 0)
    identical = swd(images, images, descriptors_per_image=64, seed=3)
    assert identical == swd(images, images, descriptors_per_image=64, seed=3)
    assert identical != swd(images, images, descriptors_per_image=64, seed=4)
    assert identical.mean < 0.2  # ~1/sqrt(256 descriptors) in units of one descriptor std
    more = swd(images, images, descriptors_per_image=256, seed=3)
    assert more.mean < 0.7 * identical.mean  # the floor falls as descriptors are added


def test_swd_accepts_uint8_and_images_of_different_sizes():
    a = [(_textures(1, 0, size=(40, 60))[0] * 255).astype(np.uint8), _textures(1, 1, size=(32, 48))[0]]
    result = swd(a, _textures(2, 2, size=(50, 50)), descriptors_per_image=16)
    assert len(result.per_level) == 2 and np.isfinite(result.mean)


def test_per_set_normalisation_ignores_a_colour_shift_and_joint_sees_it():
    images = _textures(4, 0)
    cast = np.clip(images * 0.7 + np.array([0.25, 0.0, 0.05]), 0, 1)
    per_set = swd(images, cast, descriptors_per_image=64)
    joint = swd(images, cast, descriptors_per_image=64, normalise="joint")
    np.testing.assert_allclose(per_set.per_level, swd(images, images, descriptors_per_image=64).per_level, rtol=1e-6)
    assert joint.per_level[-1] > 5 * per_set.per_level[-1]  # the low-pass residual carries the cast


def test_swd_lab_grows_with_a_colour_shift_and_is_seeded():
    images = _textures(4, 0)
    floor = swd_lab(images, images, pixels_per_image=256)
    small = swd_lab(images, np.clip(images + [0.05, 0, 0], 0, 1), pixels_per_image=256)
    large = swd_lab(images, np.clip(images + [0.2, 0, 0], 0, 1), pixels_per_image=256)
    assert floor < small < large
    assert floor < 2.0  # Lab units; 1024 pixels per set
    assert floor == swd_lab(images, images, pixels_per_image=256)
    assert swd_lab(_textures(4, 0), _textures(4, 1), pixels_per_image=256) < 0.2 * swd_lab(
        _textures(4, 0), _textures(4, 1, tint=(0.7, 0.4, 0.3)), pixels_per_image=256)


def test_many_sets_against_one_reference_equal_one_call_per_set():
    a, b, ref = _textures(3, 0, size=(40, 56)), _textures(3, 1, size=(40, 56), blur=3.0), _textures(4, 2, size=(40, 56))
    many = swd_many([a, b], ref, descriptors_per_image=32, seed=5)
    assert many == [swd(a, ref, descriptors_per_image=32, seed=5), swd(b, ref, descriptors_per_image=32, seed=5)]
    joint = swd_many([a, b], ref, descriptors_per_image=32, seed=5, normalise="joint")
    assert joint[1] == swd(b, ref, descriptors_per_image=32, seed=5, normalise="joint")
    assert swd_lab_many([a, b], ref, pixels_per_image=64) == [swd_lab(a, ref, pixels_per_image=64),
                                                             swd_lab(b, ref, pixels_per_image=64)]

import numpy as np

from epeflow.common.moments import combine, combine_all, frame_moments


def test_combined_moments_equal_numpy_over_all_pixels():
    rng = np.random.default_rng(0)
    # A large offset with small spread: a sum-of-squares formula would lose every digit here.
    frames = [(1e4 + rng.standard_normal((3, h, w)) * [[[0.01]], [[1.0]], [[100.0]]]) for h, w in
              [(5, 7), (3, 3), (8, 2), (1, 1), (6, 6)]]
    parts = [frame_moments(f) for f in frames]
    total = combine_all(np.array([p.count for p in parts]), np.stack([p.mean for p in parts]),
                        np.stack([p.m2 for p in parts]))
    flat = np.concatenate([f.reshape(3, -1) for f in frames], axis=1)
    assert total.count == flat.shape[1]
    np.testing.assert_allclose(total.mean, flat.mean(axis=1), rtol=1e-14)
    np.testing.assert_allclose(total.std, flat.std(axis=1), rtol=1e-9)


def test_combine_with_empty_is_identity_and_order_free():
    rng = np.random.default_rng(1)
    a, b = frame_moments(rng.random((2, 4, 4))), frame_moments(rng.random((2, 3, 5)))
    ab, ba = combine(a, b), combine(b, a)
    np.testing.assert_allclose(ab.mean, ba.mean)
    np.testing.assert_allclose(ab.m2, ba.m2)
    empty = type(a)(0, np.zeros(2), np.zeros(2))
    assert combine(empty, a) is a and combine(a, empty) is a


def test_float16_frames_are_measured_in_float64():
    data = np.full((1, 300, 300), 2048.0, dtype=np.float16)
    data[0, 0, 0] = 2050.0
    m = frame_moments(data)
    np.testing.assert_allclose(m.mean[0], 2048.0 + 2.0 / data[0].size, rtol=1e-15, atol=0)

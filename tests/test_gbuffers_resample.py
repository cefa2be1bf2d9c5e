import numpy as np
import pytest

from epeflow.common.resample import apply_window, bicubic_weights, upsample, window_for


@pytest.mark.parametrize(("stored", "size"), [((58, 122), (128, 256)), ((7, 9), (40, 33)), ((30, 20), (12, 17))])
def test_window_crop_equals_crop_of_full_upsampling(stored, size):
    data = np.random.default_rng(0).standard_normal((3, *stored)).astype(np.float32)
    full = upsample(data, size)
    assert full.shape == (3, *size)
    h, w = size
    for box in [(0, h, 0, w), (2, h // 2, 3, w - 1), (h - 4, h, w - 5, w)]:
        (a0, a1, b0, b1), row_w, col_w = window_for(stored, size, box)
        crop = apply_window(data[:, a0:a1, b0:b1], row_w, col_w)
        np.testing.assert_allclose(crop, full[:, box[0] : box[1], box[2] : box[3]], atol=1e-5)


def test_window_is_small_for_a_small_crop():
    first, matrix = bicubic_weights(520, 1052, 500, 520)
    assert matrix.shape[0] == 20 and matrix.shape[1] <= 14 and 240 <= first <= 250
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)  # weights of each output sum to one


def test_same_size_is_identity():
    first, matrix = bicubic_weights(10, 10, 0, 10)
    assert first == 0
    np.testing.assert_allclose(matrix, np.eye(10), atol=1e-12)

from __future__ import annotations

import numpy as np
import pytest

from epeflow.metrics.colour import as_image_list, lab_to_srgb, srgb_to_lab

# Reference values: CIE 1976 L*a*b* from sRGB (IEC 61966-2-1 matrix, D65 white), as skimage.color.rgb2lab gives.
KNOWN = [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.2408, 80.0925, 67.2032)),
    ((0.0, 1.0, 0.0), (87.7351, -86.1830, 83.1797)),
    ((0.0, 0.0, 1.0), (32.2957, 79.1875, -107.8602)),
    ((0.5, 0.5, 0.5), (53.3890, 0.0, 0.0)),  # Y = ((0.5 + 0.055) / 1.055)^2.4 = 0.2140; L = 116 Y^(1/3) - 16
]


@pytest.mark.parametrize(("rgb", "lab"), KNOWN)
def test_srgb_to_lab_known_values(rgb, lab):
    np.testing.assert_allclose(srgb_to_lab(np.array(rgb)), lab, atol=0.01)


def test_skimage_agrees_when_installed():
    color = pytest.importorskip("skimage.color")
    rgb = np.random.default_rng(0).random((8, 8, 3))
    np.testing.assert_allclose(srgb_to_lab(rgb), color.rgb2lab(rgb), atol=1e-3)


def test_lab_round_trip():
    rgb = np.random.default_rng(0).random((100, 3))
    np.testing.assert_allclose(lab_to_srgb(srgb_to_lab(rgb)), rgb, atol=1e-10)


def test_image_list_accepts_uint8_batches_and_lists():
    batch = np.full((2, 4, 5, 3), 255, dtype=np.uint8)
    assert [im.max() for im in as_image_list(batch)] == [1.0, 1.0]
    assert len(as_image_list([np.zeros((4, 5, 3)), np.zeros((6, 7, 3))])) == 2
    with pytest.raises(ValueError, match="RGB"):
        as_image_list([np.zeros((4, 5))])

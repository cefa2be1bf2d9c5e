"""sRGB <-> CIELab (D65, 2° observer) and the image-set input convention of the weight-free metrics.

CIELab rather than RGB because its distances roughly follow perceived colour differences, so a colour
distance in Lab units means the same thing for dark and bright pixels. The sRGB matrix and D65 white are
those of IEC 61966-2-1 (the values scikit-image uses), so results agree with skimage.color.rgb2lab.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Linear sRGB -> XYZ (IEC 61966-2-1) and the D65 reference white it maps (1, 1, 1) to.
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_EPS = (6 / 29) ** 3  # CIE: below this t^(1/3) is replaced by a line, to avoid an infinite slope at 0

Images = np.ndarray | Sequence[np.ndarray]  # (N, H, W, 3) or N arrays (H, W, 3); uint8 or float in [0, 1]


def as_float_image(image: np.ndarray) -> np.ndarray:
    """One image as float64 in [0, 1]: uint8 is divided by 255, floats are taken as already in [0, 1]."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    return image.astype(np.float64)


def as_image_list(images: Images) -> list[np.ndarray]:
    """An (N, H, W, 3) array or a sequence of (H, W, 3) arrays (sizes may differ) -> list of float images."""
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4:
            raise ValueError(f"expected (N, H, W, 3) images, got shape {images.shape}")
    out = [as_float_image(im) for im in images]
    if not out:
        raise ValueError("expected at least one image, got none")
    return out


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, None)
    return np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (..., 3) -> CIELab (..., 3): L in [0, 100], a and b roughly in [-128, 127]."""
    xyz = srgb_to_linear(np.asarray(rgb, dtype=np.float64)) @ _RGB_TO_XYZ.T / _WHITE_D65
    f = np.where(xyz > _EPS, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELab (..., 3) -> sRGB (..., 3), clipped to [0, 1] (Lab holds colours sRGB cannot show)."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f ** 3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _WHITE_D65
    return np.clip(linear_to_srgb(xyz @ _XYZ_TO_RGB.T), 0.0, 1.0)

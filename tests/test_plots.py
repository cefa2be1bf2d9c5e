from __future__ import annotations

import io

import numpy as np
from PIL import Image

from epeflow.report.plots import histogram, training_curves


def _size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG"
        return im.size


def test_training_curves_one_panel_per_loss():
    history = {"iteration": [0, 10, 20, 30], "gan": [1.0, 0.8, None, 0.5], "lpips": [0.5, 0.4, 0.3, 0.2],
               "reg": [0.1, 0.1], "empty": []}
    png = training_curves(history)
    assert png is not None
    width, height = _size(png)
    one = training_curves({"iteration": [0, 1], "gan": [1.0, 0.5]})
    assert width > _size(one)[0]  # three panels side by side are wider than one


def test_training_curves_without_losses_is_none():
    assert training_curves({}) is None
    assert training_curves({"iteration": [1, 2]}) is None


def test_histogram_png_with_and_without_values():
    _size(histogram(np.random.default_rng(0).random(100), "d", "distance"))
    _size(histogram(np.array([np.nan, np.inf]), "d", "distance"))
    _size(histogram(np.array([1.0, 2.0, 2.0]), "w", "weight", log_y=True))

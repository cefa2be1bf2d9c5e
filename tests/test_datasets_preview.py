"""Contact sheets."""

from __future__ import annotations

import numpy as np
import pytest

from epeflow.demo.preview import contact_sheet


def test_tiles_are_placed_row_by_row():
    tiles = [np.full((4, 6, 3), k, np.uint8) for k in range(5)]
    sheet = contact_sheet(tiles, columns=3, gap=1)
    assert sheet.shape == (2 * 4 + 1, 3 * 6 + 2, 3)
    assert (sheet[0:4, 0:6] == 0).all() and (sheet[0:4, 7:13] == 1).all() and (sheet[5:9, 7:13] == 4).all()
    assert (sheet[5:9, 14:20] == 255).all()  # the empty slot stays white


def test_bad_tiles_are_rejected():
    with pytest.raises(ValueError):
        contact_sheet([])
    with pytest.raises(ValueError):
        contact_sheet([np.zeros((4, 6, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)])

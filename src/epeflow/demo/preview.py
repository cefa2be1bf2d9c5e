"""Contact sheets: a grid of equally sized tiles, to look at generated or enhanced frames at a glance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def contact_sheet(tiles: Sequence[np.ndarray], columns: int = 4, gap: int = 2) -> np.ndarray:
    """Arrange (H, W, 3) uint8 tiles of one size row by row; returns (rows*H + gaps, cols*W + gaps, 3) uint8."""
    if not tiles:
        raise ValueError("contact_sheet needs at least one tile")
    h, w = tiles[0].shape[:2]
    if any(t.shape != tiles[0].shape for t in tiles):
        raise ValueError("contact_sheet tiles must all have the same shape")
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        sheet[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = tile
    return sheet

"""Where the tiles of a frame lie and how their outputs are blended back into one frame.

Each tile owns a *core*; the cores partition the frame. A tile reads `overlap` pixels of context beyond its
core on every side that has a neighbour, and its output fades out across a band of `blend` pixels centred
on each such core boundary (the neighbour fades in over the same band, so the weights sum to one).

Core boundaries and tile origins are multiples of `align` (2^(stages-1) for the IENet): the network halves
the resolution that many times, so a tile starting on such a multiple sees exactly the pixels of every
coarser level that the whole frame would put there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from epeflow.errors import EpeflowError

RAMPS = ("linear", "cosine")


@dataclass(frozen=True)
class Tile:
    box: tuple[int, int, int, int]  # (r0, r1, c0, c1): the pixels the tile reads, in frame coordinates
    core: tuple[int, int, int, int]  # the pixels it owns; the cores of a plan partition the frame

    @property
    def shape(self) -> tuple[int, int]:
        return self.box[1] - self.box[0], self.box[3] - self.box[2]

    @property
    def origin(self) -> tuple[int, int]:
        return self.box[0], self.box[2]


def _bounds(length: int, parts: int, align: int) -> list[int]:
    """`parts + 1` core boundaries from 0 to `length`, inner ones rounded to multiples of `align`."""
    inner = [int(round(k * length / parts / align)) * align for k in range(1, parts)]
    return [0, *inner, length]


def _spans(length: int, parts: int, align: int, overlap: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """((start, stop) read, (start, stop) owned) along one axis."""
    b = _bounds(length, parts, align)
    return [((max(0, lo - overlap), min(length, hi + overlap)), (lo, hi)) for lo, hi in zip(b, b[1:], strict=False)
            if hi > lo]


def _largest(length: int, parts: int, align: int, overlap: int) -> int:
    return max(stop - start for (start, stop), _ in _spans(length, parts, align, overlap))


def plan_tiles(height: int, width: int, max_pixels: int, overlap: int, align: int) -> list[Tile]:
    """The fewest tiles (squarest on a tie) of at most `max_pixels` each covering a height x width frame;
    one tile when the frame fits. `overlap` must be a multiple of `align`."""
    if overlap % align:
        raise ValueError(f"overlap {overlap} is not a multiple of {align}")
    heights = {ny: _largest(height, ny, align, overlap) for ny in range(1, max(1, height // align) + 1)}
    widths = {nx: _largest(width, nx, align, overlap) for nx in range(1, max(1, width // align) + 1)}
    best: tuple[int, float, int, int] | None = None
    for ny, th in heights.items():
        if best is not None and ny > best[0]:
            break  # more rows only adds tiles
        nx = next((nx for nx, tw in widths.items() if th * tw <= max_pixels), None)  # fewest columns that fit
        if nx is not None:
            key = (ny * nx, abs(math.log(th / widths[nx])), ny, nx)
            best = key if best is None or key < best else best
    if best is None:
        smallest = min(heights.values()) * min(widths.values())
        raise EpeflowError(
            f"a {height}x{width} frame cannot be tiled within the memory budget: even a tile of {smallest} pixels "
            f"(overlap {overlap}) exceeds it ({max_pixels} pixels); raise config key `enhance.memory_mb` or lower "
            "`enhance.tile_overlap`"
        )
    _, _, ny, nx = best
    return [
        Tile((r0, r1, c0, c1), (a0, a1, b0, b1))
        for (r0, r1), (a0, a1) in _spans(height, ny, align, overlap)
        for (c0, c1), (b0, b1) in _spans(width, nx, align, overlap)
    ]


def _ramp(u: np.ndarray, kind: str) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u if kind == "linear" else 0.5 - 0.5 * np.cos(np.pi * u)


def _axis_weights(start: int, stop: int, lo: int, hi: int, length: int, half: float, kind: str) -> np.ndarray:
    """Weights over [start, stop): fade in across lo +- half (unless lo is the frame edge), out across hi +- half."""
    t = np.arange(start, stop, dtype=np.float64) + 0.5
    w = np.ones_like(t)
    if half == 0:
        return ((t >= lo) & (t < hi)).astype(np.float64)
    if lo > 0:
        w *= _ramp((t - (lo - half)) / (2 * half), kind)
    if hi < length:
        w *= _ramp(((hi + half) - t) / (2 * half), kind)
    return w


def blend_half_width(tiles: list[Tile], blend: int, overlap: int) -> float:
    """Half the blend band: at most the context a tile has beyond its core and half its narrowest core, so a
    tile's fade-in and fade-out never meet and it is never asked for pixels it did not read."""
    cores = [min(t.core[1] - t.core[0], t.core[3] - t.core[2]) for t in tiles]
    return float(max(0.0, min(blend / 2, overlap, min(cores) / 2)))


def tile_weights(tile: Tile, frame: tuple[int, int], half: float, kind: str) -> np.ndarray:
    """(h, w) float32 blend weights of a tile's output; over all tiles of a plan they sum to one per pixel."""
    if kind not in RAMPS:
        raise ValueError(f"blend ramp {kind!r} is not one of {RAMPS}")
    (r0, r1, c0, c1), (a0, a1, b0, b1) = tile.box, tile.core
    wy = _axis_weights(r0, r1, a0, a1, frame[0], half, kind)
    wx = _axis_weights(c0, c1, b0, b1, frame[1], half, kind)
    return np.outer(wy, wx).astype(np.float32)

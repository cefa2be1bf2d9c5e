"""Run a fully convolutional network on tiles of a frame as if it ran on the whole frame.

Two things make a tile's output differ from the same pixels of a whole-frame run, besides the context a
tile lacks at its border (which the overlap in `tiles` takes care of):

- Normalisation layers (GroupNorm, InstanceNorm, BatchNorm without running statistics) normalise with
  statistics over the whole image, so a tile of sky gets other statistics than the frame. `TileMode` can
  replace them by frame-wide statistics and can accumulate those statistics over the tiles' cores.
  A layer's statistics depend on the normalisations before it, so they are right only once those use
  frame-wide statistics: one sweep over the tiles per step of the longest chain of normalisations
  (`norm_depths`). Fewer sweeps do not do: re-using the statistics of an earlier sweep for the later
  layers (a fixed-point iteration) made the error grow, not shrink, in our measurements, and every layer's
  statistics matter (tile-local statistics in the last normalisation alone gave errors of 3e-2).
- Bilinear upsampling between sizes that are not exactly 2:1 (a frame whose side is not a multiple of
  2^(stages-1)) samples at positions set by the whole frame's sizes; `TileMode` interpolates a tile at
  those positions.

Both work on the functional calls (`torch.nn.functional.group_norm`, ...) through a `TorchFunctionMode`,
so the network code stays as it is. Normalisation calls are told apart by their order in the forward
pass, which is the same for every call of a network.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils._pytree as pytree
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from epeflow.enhance.tiles import Tile

_SIGNATURES = {f: inspect.signature(f) for f in (F.group_norm, F.instance_norm, F.batch_norm, F.interpolate)}


def _arguments(func: Callable, args: tuple, kwargs: dict | None) -> dict[str, Any]:
    bound = _SIGNATURES[func].bind(*args, **(kwargs or {}))
    bound.apply_defaults()
    return dict(bound.arguments)


def _norm_groups(func: Callable, a: dict[str, Any]) -> int | None:
    """Groups a normalisation call computes statistics over its input for; None if it uses fixed ones."""
    if func is F.group_norm:
        return int(a["num_groups"])
    if (func is F.instance_norm and a["use_input_stats"]) or (func is F.batch_norm and a["training"]):
        return int(a["input"].shape[1])
    return None


Statistics = dict[int, tuple[torch.Tensor, torch.Tensor]]  # norm call -> ((G,) mean, (G,) biased variance)


class StatisticsAccumulator:
    """Sums of x and x^2 per group and normalisation call, over the pixels the tiles own."""

    def __init__(self) -> None:
        self.sums: dict[int, torch.Tensor] = {}  # call -> (2, G) float64: sum, sum of squares
        self.counts: dict[int, int] = {}

    def add(self, call: int, values: torch.Tensor) -> None:
        """values: (G, n) pixels of one tile's core at this call."""
        v = values.double()
        s = torch.stack((v.sum(1), (v * v).sum(1)))
        self.sums[call] = self.sums[call] + s if call in self.sums else s
        self.counts[call] = self.counts.get(call, 0) + values.shape[1]

    def result(self) -> Statistics:
        stats: Statistics = {}
        for call, s in self.sums.items():
            mean = s[0] / self.counts[call]
            var = (s[1] / self.counts[call] - mean * mean).clamp(min=0)
            stats[call] = (mean.float(), var.float())
        return stats


class _Dependencies(TorchFunctionMode):
    """Records which earlier normalisation calls each normalisation call's input depends on."""

    def __init__(self) -> None:
        super().__init__()
        self.masks = WeakIdKeyDictionary()  # tensor -> bit mask of the norm calls it depends on
        self.parents: list[int] = []  # per norm call: bit mask

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        leaves = pytree.tree_leaves((args, kwargs or {}))
        mask = 0
        for t in leaves:
            if isinstance(t, torch.Tensor):
                mask |= self.masks.get(t, 0)
        out = func(*args, **(kwargs or {}))
        if func in _SIGNATURES and _norm_groups(func, _arguments(func, args, kwargs)) is not None:
            self.parents.append(mask)
            mask |= 1 << (len(self.parents) - 1)
        for t in pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.masks[t] = mask
        return out


def norm_depths(run: Callable[[], Any]) -> list[int]:
    """For each normalisation call of `run()` (a forward pass, in call order): 1 + the longest chain of
    normalisation calls its input depends on. Calls of one depth can gather their statistics in one sweep."""
    mode = _Dependencies()
    with torch.no_grad(), mode:
        run()
    depths: list[int] = []
    for mask in mode.parents:
        parents = [depths[i] for i in range(len(depths)) if mask >> i & 1]
        depths.append(1 + max(parents, default=0))
    return depths


class StopForward(Exception):
    """Raised inside a forward pass once the statistics a sweep gathers are all in."""


def _level(shape: Sequence[int], tile_shape: tuple[int, int], levels: int) -> int:
    """How many times the network halved the tile to get a feature map of spatial `shape` (rounding up)."""
    for level in range(levels + 1):
        f = 2**level
        if (math.ceil(tile_shape[0] / f), math.ceil(tile_shape[1] / f)) == tuple(shape):
            return level
    raise ValueError(f"a {tuple(shape)} feature map is no level of a {tile_shape} tile")


def _source_positions(out_size: int, in_size: int, out_offset: int, in_offset: int, in_frame: int,
                      out_frame: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear (align_corners=False) taps of tile outputs along one axis, placed as the whole frame places
    them: (index0, index1, weight of index1), indices into the tile's input."""
    i = torch.arange(out_size, device=device, dtype=torch.float64) + out_offset
    src = ((i + 0.5) * (in_frame / out_frame) - 0.5).clamp(min=0)
    i0 = src.floor()
    lam = src - i0
    i1 = torch.minimum(i0 + 1, torch.tensor(in_frame - 1.0, dtype=torch.float64, device=device))
    last = in_size - 1
    i0 = (i0 - in_offset).clamp(0, last).long()
    i1 = (i1 - in_offset).clamp(0, last).long()
    return i0, i1, lam.float()


class TileMode(TorchFunctionMode):
    """Inside: the batch holds `tiles` (one per sample, all of one shape) of a `frame`-sized image.

    Normalisation call k uses `frozen[k]` when there is one (else the tile's own statistics); calls in
    `gather` add their input over the tiles' cores to `accumulator`, and with `stop` the forward pass ends
    (raising `StopForward`) after the last of them, since a sweep needs nothing further. `levels`: how often
    the network halves its input (num_stages - 1 for the IENet).
    """

    def __init__(self, frame: tuple[int, int], tiles: Sequence[Tile], levels: int, frozen: Statistics | None = None,
                 gather: set[int] | None = None, accumulator: StatisticsAccumulator | None = None,
                 stop: bool = False) -> None:
        super().__init__()
        shapes = {t.shape for t in tiles}
        if len(shapes) != 1:
            raise ValueError(f"tiles of one batch must have one shape, got {sorted(shapes)}")
        self.frame, self.tiles, self.levels = frame, list(tiles), levels
        self.tile_shape = shapes.pop()
        self.frozen = frozen or {}
        self.gather, self.accumulator = set(gather or ()), accumulator
        self.last_gathered = max(self.gather, default=-1) if stop else -1
        self.calls = 0  # normalisation calls so far in this forward pass

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func not in _SIGNATURES:
            return func(*args, **(kwargs or {}))
        a = _arguments(func, args, kwargs)
        if func is F.interpolate:
            return self._interpolate(func, a)
        groups = _norm_groups(func, a)
        return func(**a) if groups is None else self._normalise(func, a, groups)

    # --- normalisation -------------------------------------------------------------------------------------

    def _normalise(self, func: Callable, a: dict[str, Any], groups: int) -> torch.Tensor:
        x = a["input"]  # (B, C, h, w)
        call, self.calls = self.calls, self.calls + 1
        if call in self.gather:
            self._accumulate(call, x, groups)
            if call == self.last_gathered:
                raise StopForward
        if call not in self.frozen:
            return func(**a)
        mean, var = (t.to(x.device) for t in self.frozen[call])
        per = x.shape[1] // groups
        rstd = torch.rsqrt(var + a["eps"]).repeat_interleave(per)  # (C,)
        scale, shift = rstd, -mean.repeat_interleave(per) * rstd
        if a["weight"] is not None:
            scale, shift = scale * a["weight"].float(), shift * a["weight"].float()
        if a["bias"] is not None:
            shift = shift + a["bias"].float()
        return x.float() * scale[None, :, None, None] + shift[None, :, None, None]  # float32, as autocast does

    def _accumulate(self, call: int, x: torch.Tensor, groups: int) -> None:
        level = _level(x.shape[-2:], self.tile_shape, self.levels)
        f = 2**level
        for sample, tile in enumerate(self.tiles):
            (r0, _, c0, _), (a0, a1, b0, b1) = tile.box, tile.core
            rows = slice((a0 - r0) // f, math.ceil((a1 - r0) / f))
            cols = slice((b0 - c0) // f, math.ceil((b1 - c0) / f))
            core = x[sample, :, rows, cols]  # (C, h_core, w_core)
            self.accumulator.add(call, core.reshape(groups, -1))

    # --- upsampling ----------------------------------------------------------------------------------------

    def _interpolate(self, func: Callable, a: dict[str, Any]) -> torch.Tensor:
        x, size = a["input"], a["size"]
        if a["mode"] != "bilinear" or a["align_corners"] or size is None or a["antialias"]:
            return func(**a)
        size = (size, size) if isinstance(size, int) else tuple(size)
        level_in = _level(x.shape[-2:], self.tile_shape, self.levels)
        level_out = _level(size, self.tile_shape, self.levels)
        f_in, f_out = 2**level_in, 2**level_out
        frame_in = [math.ceil(n / f_in) for n in self.frame]
        frame_out = [math.ceil(n / f_out) for n in self.frame]
        rows = []
        for sample, tile in enumerate(self.tiles):
            y0, x0 = tile.origin
            r0, r1, rw = _source_positions(size[0], x.shape[-2], y0 // f_out, y0 // f_in, frame_in[0], frame_out[0],
                                           x.device)
            c0, c1, cw = _source_positions(size[1], x.shape[-1], x0 // f_out, x0 // f_in, frame_in[1], frame_out[1],
                                           x.device)
            s = x[sample]  # (C, h_in, w_in)
            rw, cw = rw.to(s.dtype), cw.to(s.dtype)
            s = s[:, r0] * (1 - rw)[None, :, None] + s[:, r1] * rw[None, :, None]  # (C, h_out, w_in)
            rows.append(s[:, :, c0] * (1 - cw) + s[:, :, c1] * cw)  # (C, h_out, w_out)
        return torch.stack(rows)

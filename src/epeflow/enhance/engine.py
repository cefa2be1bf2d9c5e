"""The generator applied to whole frames of any size: batched when frames fit the memory budget, in
overlapping tiles with blended seams when one does not.

Tiled output equals whole-frame output up to the context a tile lacks (6e-5 or less with the default
overlap in bench/bench_enhance.py, 4e-5 in tests/test_enhance_tiles.py) when `tile_statistics` is
`frame`: the IENet normalises over the whole image, so the frame's statistics are gathered over the tiles
first, one sweep per step of the longest chain of normalisations (43 for the reference generator), each
sweep running the tiles only as far as it needs.
That costs 20-60x an untiled frame on the CPU; `tile` normalises each tile by itself in one pass, about
as fast as untiled, with different tones from tile to tile (max errors 0.3-1.0, mean ~1e-2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from epeflow.common.runtime import Runtime
from epeflow.config import settings_from_spec
from epeflow.enhance.memory import forward_peak_bytes, meta_twin
from epeflow.enhance.tile_forward import (
    Statistics,
    StatisticsAccumulator,
    StopForward,
    TileMode,
    norm_depths,
)
from epeflow.enhance.tiles import Tile, blend_half_width, plan_tiles, tile_weights
from epeflow.errors import EpeflowError
from epeflow.log import progress
from epeflow.models.ienet import IENet

log = logging.getLogger(__name__)
T = TypeVar("T")

MIB = 2**20


@dataclass(frozen=True)
class EnhanceSettings:
    """The config's `enhance` section (defaults and descriptions in the schema)."""

    split: str
    max_frames: int | None
    device: str
    batch_size: int
    memory_mb: float
    tile_overlap: int
    tile_blend: int
    tile_ramp: str
    tile_statistics: str
    png_bits: int

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> EnhanceSettings:
        return settings_from_spec(cls, "enhance", spec, ("experiments", "<exp>", "enhance"))


@dataclass(frozen=True)
class FrameInputs:
    """What the generator reads for one frame."""

    image: np.ndarray  # (H, W, 3) uint8
    gbuffers: np.ndarray | None  # (C, H, W) float32, normalised as the model's `gbuffers` entry says
    materials: np.ndarray | None  # (K, H, W) float32 one-hot

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])


def _stack(frames: Sequence[FrameInputs]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(B, 3, H, W) float in [0, 1], (B, C, H, W), (B, K, H, W) on the CPU."""
    image = torch.from_numpy(np.stack([f.image for f in frames]).transpose(0, 3, 1, 2).copy()).float() / 255
    g = None if frames[0].gbuffers is None else torch.from_numpy(np.stack([f.gbuffers for f in frames]))
    m = None if frames[0].materials is None else torch.from_numpy(np.stack([f.materials for f in frames]))
    return image, g, m


def _crop(t: torch.Tensor | None, tiles: Sequence[Tile]) -> torch.Tensor | None:
    """(1, C, H, W) frame tensor -> (len(tiles), C, h, w) tile tensor."""
    if t is None:
        return None
    return torch.cat([t[:, :, r0:r1, c0:c1] for r0, r1, c0, c1 in (tile.box for tile in tiles)])


class Enhancer:
    """`enhancer(frames)` -> each frame enhanced, (H, W, 3) float32 in [0, 1]."""

    def __init__(self, generator: IENet, runtime: Runtime, settings: EnhanceSettings) -> None:
        self.generator, self.runtime, self.settings = generator.eval(), runtime, settings
        self.levels = generator.config.num_stages - 1  # times the generator halves the resolution
        self.align = 2**self.levels
        self.overlap = -(-settings.tile_overlap // self.align) * self.align  # tiles must start on the grid
        self.gbuffer_channels = generator.config.gbuffer_channels
        self.num_classes = generator.config.num_classes
        self.budget = settings.memory_mb * MIB
        self._twin = meta_twin(generator)
        self._bytes: dict[tuple[int, int, int], int] = {}
        self._linear: tuple[float, float] | None = None
        self._depths: tuple[int, ...] | None = None

    # --- memory ------------------------------------------------------------------------------------------

    def forward_bytes(self, batch: int, height: int, width: int) -> int:
        """Estimated peak memory of one forward pass (float32 activations and inputs)."""
        key = (batch, height, width)
        if key not in self._bytes:
            img = self.generator.config.gbuffer_mode == "img"
            shapes = [(batch, 3, height, width), None if img else (batch, self.gbuffer_channels, height, width),
                      None if img else (batch, self.num_classes, height, width)]
            self._bytes[key] = forward_peak_bytes(self._twin, *shapes)
        return self._bytes[key]

    def _linear_model(self) -> tuple[float, float]:
        """(fixed bytes, bytes per pixel) of a forward pass: two probes, memory is linear in the pixels."""
        if self._linear is None:
            s1, s2 = 16 * self.align, 32 * self.align
            p1, p2 = self.forward_bytes(1, s1, s1), self.forward_bytes(1, s2, s2)
            per_pixel = (p2 - p1) / (s2 * s2 - s1 * s1)
            self._linear = (max(0.0, p1 - per_pixel * s1 * s1), per_pixel)
        return self._linear

    def samples_that_fit(self, pixels: int) -> int:
        """How many images of `pixels` pixels one forward pass may take within the budget (0: not even one)."""
        fixed, per_pixel = self._linear_model()
        return int(max(0.0, self.budget - fixed) // (per_pixel * pixels))

    def plan(self, height: int, width: int) -> list[Tile]:
        """One tile when the frame fits the budget, else the fewest tiles that do."""
        if self.samples_that_fit(height * width) >= 1:
            return [Tile((0, height, 0, width), (0, height, 0, width))]
        fixed, per_pixel = self._linear_model()
        max_pixels = int(max(0.0, self.budget - fixed) // per_pixel)
        return plan_tiles(height, width, max_pixels, self.overlap, self.align)

    # --- running ------------------------------------------------------------------------------------------

    def __call__(self, frames: Sequence[FrameInputs]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        i = 0
        while i < len(frames):
            h, w = frames[i].size
            tiles = self.plan(h, w)
            if len(tiles) > 1:
                out.append(self._tiled(frames[i], tiles))
                i += 1
                continue
            n = max(1, min(self.settings.batch_size, self.samples_that_fit(h * w)))
            batch = [frames[i]]
            while len(batch) < n and i + len(batch) < len(frames) and frames[i + len(batch)].size == (h, w):
                batch.append(frames[i + len(batch)])
            y = self._forward(*_stack(batch))  # (B, 3, H, W)
            out += [a.permute(1, 2, 0).numpy() for a in y]
            i += len(batch)
        return out

    def _forward(self, image: torch.Tensor, gbuffers: torch.Tensor | None, materials: torch.Tensor | None,
                 mode: TileMode | None = None) -> torch.Tensor:
        """Generator output (B, 3, h, w) float32 on the CPU; inputs on the CPU, run on the runtime's device."""
        rt = self.runtime
        g = None if gbuffers is None else rt.tensor(gbuffers)
        m = None if materials is None else rt.tensor(materials)
        with torch.no_grad(), rt.autocast():
            if mode is None:
                y = self.generator(rt.tensor(image), g, m)
            else:
                with mode:
                    y = self.generator(rt.tensor(image), g, m)
        return y.float().clamp(0, 1).cpu()

    def norm_depths(self) -> tuple[int, ...]:
        """Per normalisation call of the generator: its step in the longest chain of normalisations."""
        if self._depths is not None:
            return self._depths
        s = 4 * self.align
        image, g, m = torch.rand(1, 3, s, s), None, None
        if self.generator.config.gbuffer_mode != "img":
            g = torch.zeros(1, self.gbuffer_channels, s, s)
            m = torch.zeros(1, self.num_classes, s, s)
            m[:, 0] = 1
        self._depths = tuple(norm_depths(lambda: self._forward(image, g, m)))
        return self._depths

    def _tile_batches(self, tiles: list[Tile]) -> list[list[Tile]]:
        """Tiles of one shape together, as many per forward pass as fit."""
        batches: list[list[Tile]] = []
        for shape in sorted({t.shape for t in tiles}):
            same = [t for t in tiles if t.shape == shape]
            n = max(1, self.samples_that_fit(shape[0] * shape[1]))
            batches += [same[k : k + n] for k in range(0, len(same), n)]
        return batches

    def _tiled(self, frame: FrameInputs, tiles: list[Tile]) -> np.ndarray:
        size = frame.size
        image, g, m = _stack([frame])
        batches = self._tile_batches(tiles)

        def run(batch: list[Tile], frozen: Statistics, gather: set[int] | None = None,
                accumulator: StatisticsAccumulator | None = None) -> torch.Tensor | None:
            mode = TileMode(size, batch, self.levels, frozen, gather, accumulator, stop=True)
            try:
                return self._forward(_crop(image, batch), _crop(g, batch), _crop(m, batch), mode)
            except StopForward:
                return None

        frozen: Statistics = {}
        sweeps = 0
        if self.settings.tile_statistics == "frame":
            depths = self.norm_depths()
            sweeps = max(depths, default=0)
            for depth in range(1, sweeps + 1):
                accumulator = StatisticsAccumulator()
                gather = {call for call, d in enumerate(depths) if d == depth}
                for batch in batches:
                    run(batch, frozen, gather, accumulator)
                frozen.update(accumulator.result())
        log.debug("%dx%d frame: %d tiles of up to %s px, %d statistics sweeps", *size, len(tiles),
                  max(t.shape for t in tiles), sweeps)

        half = blend_half_width(tiles, self.settings.tile_blend, self.overlap)
        out = torch.zeros(3, *size)
        total = torch.zeros(size)
        for batch in batches:
            y = run(batch, frozen)  # (b, 3, h, w)
            for tile, part in zip(batch, y, strict=True):
                r0, r1, c0, c1 = tile.box
                w = torch.from_numpy(tile_weights(tile, size, half, self.settings.tile_ramp))
                out[:, r0:r1, c0:c1] += part * w
                total[r0:r1, c0:c1] += w
        return (out / total).permute(1, 2, 0).numpy()


def enhance_each(enhancer: Enhancer, items: Sequence[T], read: Callable[[T], FrameInputs],
                 write: Callable[[T, np.ndarray], None], batch_size: int, desc: str = "enhance") -> None:
    """Read, enhance and write `items` in batches with a progress bar. When reading one fails with an
    EpeflowError, the frames read before it are still enhanced and written (a rerun keeps them)."""
    pending: list[T] = []

    def flush() -> None:
        ready: list[FrameInputs] = []
        failure: EpeflowError | None = None
        for item in pending:
            try:
                ready.append(read(item))
            except EpeflowError as e:
                failure = e
                break
        for item, enhanced in zip(pending, enhancer(ready), strict=False):
            write(item, enhanced)
        pending.clear()
        if failure is not None:
            raise failure

    for item in progress(items, desc, unit="frame"):
        pending.append(item)
        if len(pending) == batch_size:
            flush()
    flush()


def to_png_array(enhanced: np.ndarray, bits: int) -> np.ndarray:
    """(H, W, 3) float in [0, 1] -> uint8 or uint16 pixels."""
    top = 255 if bits == 8 else 65535
    return (np.clip(enhanced, 0, 1) * top).round().astype(np.uint8 if bits == 8 else np.uint16)

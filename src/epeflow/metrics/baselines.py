"""The baselines every metric is also computed for, so an enhancement's numbers have something to beat.

`identity` is the rendered frames as they are (what "no enhancement" scores); `colour_transfer` is
Reinhard et al.'s colour transfer of the rendered frames towards the real set's CIELab mean and std, the
cheapest enhancement there is. Colour-transferred frames are written as 8-bit PNGs to a scratch folder,
like an enhancer's output, so every metric reads them through the same code as the enhanced frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from epeflow.io import read_image, write_png
from epeflow.log import progress
from epeflow.metrics.colour_transfer import LabStats, apply_reinhard, fit_reinhard
from epeflow.metrics.frames import prefetch

SIDES = ("enhanced", "identity", "colour_transfer")  # every metric compares each of these with the real frames
SIDE_TITLES = {"enhanced": "enhanced", "identity": "identity (rendered, untouched)",
               "colour_transfer": "colour transfer (Reinhard)"}
ColourTransferStats = Literal["per_set", "per_frame"]


def colour_transfer_frame(image: np.ndarray, source: LabStats | None, target: LabStats) -> np.ndarray:
    """(H, W, 3) uint8 -> uint8 with the target's Lab statistics; `source` None: the frame's own (Reinhard's)."""
    out = apply_reinhard(image, fit_reinhard(image) if source is None else source, target)
    return np.round(out * 255.0).astype(np.uint8)


def write_colour_transfer(
    sources: Sequence[Path],
    ids: Sequence[str],
    out_dir: Path,
    source_stats: LabStats | None,
    target_stats: LabStats,
    threads: int = 1,
) -> list[Path]:
    """Colour-transfer every source frame at its own size into `out_dir/<id>.png`; returns the paths in order."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{frame_id}.png" for frame_id in ids]

    def one(item: tuple[Path, Path]) -> None:
        write_png(item[1], colour_transfer_frame(read_image(item[0]), source_stats, target_stats))

    for _ in prefetch(one, progress(list(zip(sources, paths, strict=True)), "colour transfer", unit="frame"), threads):
        pass
    return paths

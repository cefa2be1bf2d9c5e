"""Watching a run: what the loop reports to TensorBoard beside its log lines.

At each log line the loss means of the window, both learning rates and iterations per second; every
`image_every` iterations a grid of the batch's source crops, their enhancement and the matched real crops.
Without a board (no `--tensorboard`, or not rank 0) every call is a no-op.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import torch

from epeflow.artifacts.tensorboard import TrainingBoard

GRID_ROWS = 4  # crops of the batch shown in an image grid


def crop_grid(columns: list[torch.Tensor], rows: int = GRID_ROWS) -> torch.Tensor:
    """Columns of (B, 3, h, w) crops side by side, one sample a row -> (3, min(B, rows) * h, len(columns) * w)."""
    return torch.cat([torch.cat(list(c[:rows].detach().float().cpu()), dim=1) for c in columns], dim=2)


class Watch:
    def __init__(self, board: TrainingBoard | None, image_every: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.board, self.image_every, self.clock = board, image_every, clock
        self._since: tuple[int, float] | None = None  # (iteration, time) of the previous report

    def start(self, iteration: int) -> None:
        """The loop begins (or resumes) at `iteration`: speed counts from here."""
        self._since = (iteration, self.clock())

    def losses(self, iteration: int, means: Mapping[str, float], lrs: Mapping[str, float]) -> None:
        if self.board is None:
            return
        now = self.clock()
        values = {f"loss/{k}": v for k, v in means.items()} | {f"lr/{k}": v for k, v in lrs.items()}
        if self._since is not None and now > self._since[1]:
            values["speed/it_per_s"] = (iteration - self._since[0]) / (now - self._since[1])
        self._since = (iteration, now)
        self.board.scalars(iteration, values)

    def images(self, iteration: int, source: torch.Tensor, enhanced: torch.Tensor, real: torch.Tensor) -> None:
        """Source | enhanced | matched real crops, every `image_every` iterations (0: never)."""
        if self.board is None or not self.image_every or iteration % self.image_every:
            return
        self.board.image(iteration, "crops/source_enhanced_real", crop_grid([source, enhanced, real]))

    def close(self) -> None:
        if self.board is not None:
            self.board.close()

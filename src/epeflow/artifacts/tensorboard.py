"""results/<exp>/tb/: TensorBoard event files of a training run (`tensorboard --logdir results/<exp>/tb`).

For people watching a run, not for other stages: nothing reads them back but TensorBoard. Event files are
appended to as the run goes (TensorBoard reads them live), so they are not written atomically; a run resumed
from a checkpoint at iteration k (or from the start) purges what an earlier attempt logged after k, so
curves do not fold back or mix with an older run's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch


class TrainingBoard:
    """Scalars and images of one run, in one folder."""

    def __init__(self, folder: Path, start_iteration: int) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only where a board is written

        Path(folder).mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(folder), purge_step=start_iteration + 1)

    def scalars(self, iteration: int, values: Mapping[str, float]) -> None:
        """`values`: tag -> value; tags with a `/` group into TensorBoard sections (`loss/g_gan`)."""
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, iteration)
        self.writer.flush()

    def image(self, iteration: int, tag: str, image: torch.Tensor) -> None:
        """`image`: (3, H, W) float in [0, 1]."""
        self.writer.add_image(tag, image.detach().float().clamp(0, 1).cpu(), iteration)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

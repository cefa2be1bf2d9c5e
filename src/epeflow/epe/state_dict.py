"""Reading the reference's training files: torch.save of a network's, optimizer's or scheduler's state dict
(`<name>_{gen,disc}-{network,optimizer,scheduler}.pth.tar`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from epeflow.errors import EpeflowError
from epeflow.io import PathLike, load_torch_file


def read_reference_file(path: PathLike, what: str, example: str) -> Any:
    """What torch.save wrote to `path`, on the CPU (weights_only: the reference saves state dicts only).

    `what` names the file in errors ("generator checkpoint"), `example` the reference's file name pattern.
    """
    path = Path(path)
    if not path.is_file():
        raise EpeflowError(f"{path}: no such {what} (file not found); give the reference's `{example}`")
    return load_torch_file(path, what, f"give the reference's `{example}`",
                           f"give an intact copy of the reference's `{example}`")


def read_reference_state_dict(path: PathLike, what: str, example: str) -> dict[str, torch.Tensor]:
    """Tensors of the network state dict in `path`, on the CPU, in the file's key order."""
    data = read_reference_file(path, what, example)
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise EpeflowError(
            f"{what} {path} is not a state dict (expected a state dict of names -> tensors, as in a reference "
            f"`{example}`)"
        )
    return dict(data)

"""Reading a reference network file: a bare state dict saved with torch.save (`<name>_{gen,disc}-network.pth.tar`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from epeflow.errors import EpeflowError
from epeflow.io import PathLike


def read_reference_state_dict(path: PathLike, what: str, example: str) -> dict[str, torch.Tensor]:
    """Tensors of the state dict in `path`, on the CPU (weights_only: a reference file holds tensors only).

    `what` names the file in errors ("generator checkpoint"), `example` the reference's file name pattern.
    """
    path = Path(path)
    if not path.is_file():
        raise EpeflowError(f"{path}: no such {what} (file not found); give the reference's `{example}`")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for foreign or damaged files
        raise EpeflowError(
            f"{what} {path} cannot be read: not a readable torch checkpoint ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise EpeflowError(
            f"{what} {path} is not a state dict (expected a state dict of names -> tensors, as in a reference "
            f"`{example}`)"
        )
    return dict(data)

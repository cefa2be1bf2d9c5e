"""model.pt: the trained generator with everything needed to use it, as a plain dict (weights_only loadable).

Keys: format, generator (state dict), generator_config, gbuffers (channel names, mean, std), train
(settings), provenance, history (losses). Building the network from it is `epeflow.models.load_generator`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from epeflow.errors import EpeflowError
from epeflow.io import PathLike, atomic_path, load_torch_file

MODEL_FORMAT = "epeflow-model/1"


def write_model(
    path: PathLike,
    generator_state: Mapping[str, torch.Tensor],
    generator_config: Mapping[str, Any],
    gbuffers: Mapping[str, Any],
    train: Mapping[str, Any],
    provenance: Mapping[str, Any],
    history: Mapping[str, list],
) -> None:
    """Write model.pt atomically; tensors are saved contiguous on the CPU so any machine can load them."""
    model = {
        "format": MODEL_FORMAT,
        "generator": {k: v.detach().cpu().contiguous() for k, v in generator_state.items()},
        "generator_config": dict(generator_config),
        "gbuffers": dict(gbuffers),
        "train": dict(train),
        "provenance": dict(provenance),
        "history": {k: list(v) for k, v in history.items()},
    }
    with atomic_path(path) as tmp:
        torch.save(model, tmp)


def read_model(path: PathLike) -> dict[str, Any]:
    """The model dict, checked to be an epeflow model."""
    model = load_torch_file(path, "model", "run `epeflow train` first",
                            "delete it and rerun the train rule (`epeflow train`)")
    if not isinstance(model, dict) or model.get("format") != MODEL_FORMAT:
        found = model.get("format") if isinstance(model, dict) else type(model).__name__
        raise EpeflowError(f"{path} is not an epeflow model (format {found!r}, expected {MODEL_FORMAT!r})")
    return model

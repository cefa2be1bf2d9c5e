"""model.pt: the trained generator with everything needed to use it, as a plain dict (weights_only loadable)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from epeflow.errors import EpeflowError
from epeflow.io import atomic_path
from epeflow.models.generator import Generator

MODEL_FORMAT = "epeflow-model/1"


def save_model(
    path: Path,
    generator: Generator,
    gbuffers: Mapping[str, Any],
    train: Mapping[str, Any],
    provenance: Mapping[str, Any],
    history: Mapping[str, list],
) -> None:
    """Write model.pt atomically; tensors are saved contiguous on the CPU so any machine can load them."""
    state = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    model = {
        "format": MODEL_FORMAT,
        "generator": state,
        "generator_config": generator.config_dict(),
        "gbuffers": dict(gbuffers),
        "train": dict(train),
        "provenance": dict(provenance),
        "history": {k: list(v) for k, v in history.items()},
    }
    with atomic_path(path) as tmp:
        torch.save(model, tmp)


def load_generator(path: str | Path) -> tuple[Generator, dict[str, Any]]:
    """The generator of model.pt in eval mode on the CPU, and the whole model dict."""
    path = Path(path)
    if not path.is_file():
        raise EpeflowError(f"model {path} does not exist; run `epeflow train` first")
    try:
        model = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for foreign or truncated files
        raise EpeflowError(f"model {path} cannot be read ({e}); delete it and rerun `epeflow train`") from e
    if not isinstance(model, dict) or model.get("format") != MODEL_FORMAT:
        found = model.get("format") if isinstance(model, dict) else type(model).__name__
        raise EpeflowError(f"{path} is not an epeflow model (format {found!r}, expected {MODEL_FORMAT!r})")
    generator = Generator.from_config(model["generator_config"])
    try:
        generator.load_state_dict(model["generator"])
    except RuntimeError as e:
        raise EpeflowError(f"model {path}: generator weights do not fit its config ({e})") from e
    return generator.eval(), model

"""The generator of a model.pt, ready to use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from epeflow.artifacts.model import read_model
from epeflow.errors import EpeflowError
from epeflow.models.generator import Generator


def load_generator(path: str | Path) -> tuple[Generator, dict[str, Any]]:
    """The generator of model.pt in eval mode on the CPU, and the whole model dict."""
    model = read_model(path)
    generator = Generator.from_config(model["generator_config"])
    try:
        generator.load_state_dict(model["generator"])
    except RuntimeError as e:
        raise EpeflowError(f"model {path}: generator weights do not fit its config ({e})") from e
    return generator.eval(), model

"""The generator of a model.pt, ready to use: `load_model(path)(image, gbuffers, materials)`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from epeflow.artifacts.model import read_model
from epeflow.errors import EpeflowError
from epeflow.models.ienet import IENet


def load_generator(path: str | Path) -> tuple[IENet, dict[str, Any]]:
    """The generator of model.pt in eval mode on the CPU, and the whole model dict."""
    model = read_model(path)
    generator = IENet.from_config(model["generator_config"])
    try:
        generator.load_state_dict(model["generator"])
    except RuntimeError as e:
        raise EpeflowError(f"model {path}: generator weights do not fit its config ({e})") from e
    return generator.eval(), model


def load_model(path: str | Path) -> IENet:
    """The trained generator of model.pt (eval mode, CPU): `model(image, gbuffers, materials)` with image
    (B, 3, H, W) in [0, 1], G-buffers normalised as in `model.pt`'s `gbuffers` entry, materials one-hot."""
    return load_generator(path)[0]

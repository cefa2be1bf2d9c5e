"""One place that decides where tensors live: a GPU when present, the CPU otherwise."""

from __future__ import annotations

import torch

from epeflow.errors import EpeflowError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def select_device(name: str = "auto") -> torch.device:
    """`auto` → cuda when torch sees a GPU, else cpu; asking for cuda without one is an error saying so."""
    if name not in DEVICE_CHOICES:
        raise EpeflowError(f"config key `device`: {name!r} is not one of: {', '.join(DEVICE_CHOICES)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise EpeflowError(
            "config key `device` asks for `cuda`, but torch sees no CUDA GPU here; "
            "use `device: auto` (GPU when present) or `cpu`"
        )
    return torch.device(name)

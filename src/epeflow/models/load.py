"""The generator of a model.pt, ready to use: `load_model(path)(image, gbuffers, materials)`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from epeflow.artifacts.model import read_model
from epeflow.errors import EpeflowError
from epeflow.models.ienet import IENet


def check_gbuffer_metadata(model: Mapping[str, Any], generator: IENet, path: str | Path) -> None:
    """A generator that reads G-buffers is usable only with the channel names and the statistics that
    normalised them in training; a model file without them is refused."""
    channels = generator.config.gbuffer_channels
    if generator.config.gbuffer_mode == "img":
        return
    entry = model.get("gbuffers") or {}
    lengths = {key: len(entry.get(key) or []) for key in ("names", "mean", "std")}
    if int(entry.get("channels") or 0) != channels or set(lengths.values()) != {channels}:
        raise EpeflowError(
            f"model {path} has no usable G-buffer metadata (its generator reads {channels} G-buffer channels, the "
            f"file's `gbuffers` entry gives channels={entry.get('channels')!r} and {lengths}); without the channel "
            "names and the mean / std that normalised them the model cannot be used: write it with `epeflow train`, or "
            "import a reference generator with `epeflow epe import generator FILE --gbuffers <gbuffers.zarr> --out ..`"
        )


def load_generator(path: str | Path) -> tuple[IENet, dict[str, Any]]:
    """The generator of model.pt in eval mode on the CPU, and the whole model dict."""
    model = read_model(path)
    generator = IENet.from_config(model["generator_config"])
    try:
        generator.load_state_dict(model["generator"])
    except RuntimeError as e:
        raise EpeflowError(f"model {path}: generator weights do not fit its config ({e})") from e
    check_gbuffer_metadata(model, generator, path)
    return generator.eval(), model


def load_model(path: str | Path) -> IENet:
    """The trained generator of model.pt (eval mode, CPU): `model(image, gbuffers, materials)` with image
    (B, 3, H, W) in [0, 1], G-buffers (B, C, H, W) normalised with the mean / std of model.pt's `gbuffers`
    entry (`load_generator` returns it), materials one-hot (B, 12, H, W) (`common.taxonomy.MATERIAL_NAMES`).
    A model file without that G-buffer metadata is refused (EpeflowError naming it)."""
    return load_generator(path)[0]

"""Trained networks between the reference's files and epeflow's: model.pt <-> `<name>_gen-network.pth.tar`,
training checkpoint -> `<name>_disc-network.pth.tar`.

A reference generator file holds weights only; a model.pt also says which G-buffers (channel names and the
statistics that normalise them) the generator expects, so importing one takes the G-buffer store of the
dataset it will enhance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from epeflow.artifacts.checkpoints import read_checkpoint
from epeflow.artifacts.gbuffers import GBufferStore
from epeflow.artifacts.model import write_model
from epeflow.epe.discriminator_checkpoint import export_discriminator
from epeflow.epe.generator_checkpoint import export_generator, import_generator
from epeflow.errors import EpeflowError
from epeflow.io import PathLike
from epeflow.models.load import load_generator
from epeflow.models.ppde import PPDE
from epeflow.provenance import stamp


def import_generator_model(
    reference_file: PathLike, out: PathLike, gbuffers: PathLike | None, gbuffer_mode: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """model.pt from a reference generator file; `gbuffers` (a gbuffers.zarr) is required unless the generator
    takes none (img mode). Returns the generator config written."""
    generator, config = import_generator(reference_file, gbuffer_mode, **overrides)
    if config.gbuffer_mode == "img":
        described: dict[str, Any] = {"channels": 0, "names": [], "mean": [], "std": [], "mode": "img"}
    elif gbuffers is None:
        raise EpeflowError(
            f"{reference_file} is a {config.gbuffer_mode} generator with {config.gbuffer_channels} G-buffer channels: "
            "pass --gbuffers results/datasets/<ds>/gbuffers.zarr of the dataset to enhance (its channel names and "
            "statistics go into model.pt)"
        )
    else:
        store = GBufferStore(gbuffers)
        if store.channels != config.gbuffer_channels:
            raise EpeflowError(
                f"{gbuffers} has {store.channels} G-buffer channels but {reference_file} was trained on "
                f"{config.gbuffer_channels}; give the store of the G-buffers the reference run used"
            )
        described = store.describe()
    provenance = stamp(False, imported_from=str(reference_file), gbuffers=str(gbuffers) if gbuffers else None)
    write_model(out, generator.state_dict(), config.to_dict(), described, {}, provenance, {})
    return config.to_dict()


def export_generator_model(model: PathLike, out: PathLike, allow_nonreference: bool = False) -> None:
    """The generator of an epeflow model.pt as the reference's `<name>_gen-network.pth.tar`."""
    generator, _ = load_generator(model)
    export_generator(generator, out, allow_nonreference=allow_nonreference)


def export_discriminator_checkpoint(checkpoint: PathLike, out: PathLike, reference_shapes: bool = True) -> None:
    """The PPDE of an epeflow training checkpoint (ckpt-*.pt) as the reference's `<name>_disc-network.pth.tar`."""
    state = read_checkpoint(Path(checkpoint))
    config = dict(state.get("discriminator_config") or {})
    if "max_dim" not in config:  # PatchGAN has no reference counterpart
        raise EpeflowError(f"{checkpoint} holds a {config or 'non-PPDE'} discriminator; only PPDE has a reference form")
    disc = PPDE.from_config(config)
    disc.load_state_dict(state["discriminator"])
    export_discriminator(disc, out, reference_shapes=reference_shapes)

"""Reference discriminator checkpoints (`<name>_disc-network.pth.tar`) to and from epeflow's PPDE.

The reference saves `network.discriminator.state_dict()` as a plain dict of tensors and loads it strictly;
the frozen VGG16 is not in it. The file does not record the config, so `import_discriminator` reads it off the
keys and shapes: the layers per head from the convs, max_dim from the widest conv, num_labels from the
embedding, and the width (ours; 1.0 for reference files) from the first conv. Group, instance and batch norm
have the same keys, so the norm cannot be read off and is an argument (the reference's configs use group).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import torch

from epeflow.epe.state_dict import read_reference_state_dict
from epeflow.errors import EpeflowError
from epeflow.io import atomic_path
from epeflow.models.ppde import NUM_LABELS, PPDE, PPDE_LAYERS, PPDEConfig

_CONV = re.compile(r"discs\.(\d+)\.model\.(\d+)\.weight")
_SHOW = 10  # keys listed per kind in an error


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a reference discriminator file, on the CPU; errors name the file."""
    return read_reference_state_dict(path, "discriminator checkpoint", "<name>_disc-network.pth.tar")


def infer_config(state: dict[str, torch.Tensor], norm: str = "group") -> PPDEConfig:
    """PPDEConfig whose PPDE has the keys and shapes of `state` (checked by the caller)."""
    convs = sorted((int(m[1]), int(m[2]), v) for k, v in state.items() if (m := _CONV.fullmatch(k)) and v.dim() == 4)
    first = [v for d, _, v in convs if d == 0]
    emb = state.get("discs.0.embedding.weight")
    if not first or emb is None or emb.dim() != 2:
        raise EpeflowError(
            "discriminator checkpoint: no `discs.0.model.*.weight` convs or `discs.0.embedding.weight`; "
            "expected the reference's `<name>_disc-network.pth.tar` of a `ppde` discriminator"
        )
    has_norm = "discs.0.model.2.weight" in state
    max_dim = max(v.shape[0] for *_, v in convs)
    width = first[0].shape[0] / 64  # a head over relu1_1 starts at min(max_dim, 64) * width
    if width != 1.0:
        max_dim = round(max_dim / width)
    try:
        return PPDEConfig(max_dim=max_dim, num_layers=len(first), norm=norm if has_norm else "none",
                          num_labels=emb.shape[0], width=width)
    except EpeflowError as e:
        raise EpeflowError(f"discriminator checkpoint: the inferred config is invalid ({e})") from e


def check_state(state: dict[str, torch.Tensor], module: PPDE, source: str) -> None:
    """EpeflowError listing missing, unexpected and mis-shaped keys of `state` against `module`."""
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = [k for k in want if k not in got]
    unexpected = [k for k in got if k not in want]
    misshaped = [f"{k} {got[k]} (expected {want[k]})" for k in want if k in got and got[k] != want[k]]
    if missing or unexpected or misshaped:
        parts = [
            f"{what} ({len(keys)}): {', '.join(keys[:_SHOW])}{', ...' if len(keys) > _SHOW else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
            if keys
        ]
        raise EpeflowError(
            f"discriminator checkpoint {source} does not match a {len(PPDE_LAYERS)}-head ppde discriminator "
            f"{module.config.to_dict()}: {'; '.join(parts)}"
        )


def discriminator_from_state(
    state: dict[str, torch.Tensor], source: str, norm: str = "group"
) -> tuple[PPDE, PPDEConfig]:
    """The PPDE (eval mode) a reference discriminator state dict fits, loaded strictly, and its config.

    The label count is the embedding's rows: 194 (MSeg's universal taxonomy) for the reference's files.
    """
    config = infer_config(state, norm)
    module = PPDE(config)
    check_state(state, module, source)
    module.load_state_dict(state, strict=True)
    return module.eval(), config


def import_discriminator(path: Path | str, norm: str = "group") -> tuple[PPDE, PPDEConfig]:
    """PPDE (eval mode) with the weights of a reference `*_disc-network.pth.tar`, and its inferred config."""
    return discriminator_from_state(read_state(Path(path)), str(path), norm)


def export_discriminator(module: PPDE, path: Path | str, reference_shapes: bool = True) -> None:
    """Write `module`'s weights as the reference's `*_disc-network.pth.tar` (a plain state dict, on the CPU).

    With `reference_shapes` (default) refuse what the reference cannot build: widths other than 1.0 and label
    counts other than 194. The reference's resume also reads `_disc-optimizer` and `_disc-scheduler` files,
    which are not written here.
    """
    config = module.config
    if reference_shapes and (config.width != 1.0 or config.num_labels != NUM_LABELS):
        raise EpeflowError(
            f"discriminator with width {config.width} and {config.num_labels} labels cannot be loaded by the "
            f"reference (it needs width 1.0 and {NUM_LABELS} labels); pass reference_shapes=False to write it anyway"
        )
    state = OrderedDict((k, v.detach().cpu().clone()) for k, v in module.state_dict().items())
    with atomic_path(path) as tmp:
        torch.save(state, tmp)

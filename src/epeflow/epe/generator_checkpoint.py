"""Reference generator checkpoints (`<name>_gen-network.pth.tar`) to and from epeflow's `IENet`.

The reference's GANExperiment._save_model writes `torch.save(self.network.generator.state_dict(), ...)`:
the state dict of its ResidualGenerator, whose only child is the HRNet `network`, so every key starts with
`network.` (spectral-norm convs as `weight_orig`/`weight_u`/`weight_v`). Optimizer and scheduler go to
separate `_gen-optimizer` / `_gen-scheduler` files, which are not read here. `IENet` has the same keys, so
import is: infer the architecture from key names and shapes, build, check, load strictly.

What the keys cannot tell (the plain norms' kind: group, batch and inst have the same parameters; which
channels a sliced class sees) comes from the reference's pfd2cs defaults or from `overrides`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch

from epeflow.epe.state_dict import read_reference_state_dict
from epeflow.errors import EpeflowError
from epeflow.io import PathLike, atomic_path
from epeflow.models.ienet import BASE_CHANNELS, GBUFFER_MODES, IENet, IENetConfig

PREFIX = "network."
SHOWN = 10  # keys listed per kind of mismatch
# The G-buffer mode the reference's channel count implies (img has no G-buffer encoder).
MODE_OF_CHANNELS = {c: m for m, c in GBUFFER_MODES.items() if c}


def read_state_dict(path: PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a reference generator file, on the CPU; errors name the file."""
    return read_reference_state_dict(path, "generator checkpoint", "<name>_gen-network.pth.tar")


def _indices(state_dict: Mapping[str, Any], pattern: str) -> list[int]:
    found = {int(m.group(1)) for k in state_dict if (m := re.match(pattern, k))}
    return sorted(found)


def infer_config(
    state_dict: Mapping[str, torch.Tensor],
    gbuffer_mode: str | None = None,
    source: str = "generator state dict",
    **overrides: Any,
) -> IENetConfig:
    """The IENetConfig a reference generator state dict was built with; `overrides` win over what keys say.

    From the keys: num_stages, num_classes, gbuffer_channels (widest class stream), num_gbuffer_layers, width
    and the mode (no G-buffer encoder: img; else by channel count 32/26/17/8, or `gbuffer_mode` if given).
    Channel counts other than the mode's reference count get no class slices, as epeflow's training builds them.
    """
    if not any(k.startswith(PREFIX) for k in state_dict):
        first = ", ".join(list(state_dict)[:3]) or "none"
        raise EpeflowError(
            f"{source}: no key starts with {PREFIX!r} (first keys: {first}); expected the generator state dict "
            "the reference saves as <name>_gen-network.pth.tar"
        )
    inferred: dict[str, Any] = {"num_stages": len(_indices(state_dict, r"network\.stages\.(\d+)\.")) + 1}
    n = inferred["num_stages"]
    coarsest = state_dict.get(f"network.transitions.{n - 2}.{n - 1}.0.0.weight")
    if coarsest is not None:
        inferred["width"] = coarsest.shape[0] / (BASE_CHANNELS * 2 ** (n - 1))

    classes = _indices(state_dict, r"network\.gbuffer_encoder\.class_encoders\.(\d+)\.")
    if not classes:
        mode = gbuffer_mode or "img"
    else:
        stream_inputs = [
            w.shape[1]
            for c in classes
            if (w := state_dict.get(f"network.gbuffer_encoder.class_encoders.{c}.0.conv.1.weight_orig")) is not None
        ]
        channels = max(stream_inputs, default=0)
        mode = gbuffer_mode or MODE_OF_CHANNELS.get(channels)
        if mode is None:
            raise EpeflowError(
                f"{source}: {channels} G-buffer channels match none of the reference's modes "
                f"({', '.join(f'{m} {c}' for m, c in GBUFFER_MODES.items())}); pass the G-buffer mode"
            )
        inferred["num_classes"] = classes[-1] + 1
        inferred["num_gbuffer_layers"] = len(_indices(state_dict, r"network\.layer1\.0\.bn1\._conv\.(\d+)\."))
        if mode != "img":
            inferred["gbuffer_channels"] = channels
            if GBUFFER_MODES[mode] != channels:  # not the reference's layout: no class sees a slice (as in training)
                inferred["class_slices"] = ()
    return IENetConfig.from_dict({**inferred, "gbuffer_mode": mode, **overrides})


INFERRED_WRONGLY = "If the architecture was inferred wrongly, pass the G-buffer mode or config overrides"


def check_state_dict(
    ienet: IENet, state_dict: Mapping[str, torch.Tensor], source: str, hint: str = INFERRED_WRONGLY
) -> None:
    """Raise an EpeflowError listing missing, unexpected and mis-shaped keys (first few of each), then `hint`."""
    expected = ienet.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [
        f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if not (missing or unexpected or misshaped):
        return
    parts = []
    for what, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped (file != network)", misshaped)):
        if items:
            more = f", ... ({len(items) - SHOWN} more)" if len(items) > SHOWN else ""
            parts.append(f"{len(items)} {what}: {', '.join(items[:SHOWN])}{more}")
    raise EpeflowError(
        f"{source}: does not fit a generator with config {ienet.config.to_dict()}; " + "; ".join(parts) + ". " + hint
    )


def generator_from_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    gbuffer_mode: str | None = None,
    source: str = "generator state dict",
    **overrides: Any,
) -> tuple[IENet, IENetConfig]:
    """Build the IENet a reference generator state dict fits and load it (strict)."""
    config = infer_config(state_dict, gbuffer_mode, source=source, **overrides)
    ienet = IENet(config)
    check_state_dict(ienet, state_dict, source)
    ienet.load_state_dict(state_dict, strict=True)
    return ienet, config


def import_generator(path: PathLike, gbuffer_mode: str | None = None, **overrides: Any) -> tuple[IENet, IENetConfig]:
    """Read a reference `<name>_gen-network.pth.tar` into an IENet (on the CPU); see `infer_config`."""
    return generator_from_state_dict(read_state_dict(path), gbuffer_mode, source=str(path), **overrides)


def reference_incompatibilities(config: IENetConfig) -> list[str]:
    """Why the reference code could not build this architecture (empty when it can)."""
    problems = []
    if config.width != 1.0:
        problems.append(f"width {config.width} (the reference has only width 1.0)")
    if config.num_stages < 3:
        problems.append(f"num_stages {config.num_stages} (the reference's forward needs >= 3)")
    return problems


def export_generator(ienet: IENet, path: PathLike, allow_nonreference: bool = False) -> None:
    """Write the state dict as the reference's `<name>_gen-network.pth.tar` (CPU tensors, same keys).

    The reference's experiment loads it for its `generator` when its config (train_pfd2cs.yaml: num_stages,
    num_gbuffer_layers, norms) and dataset (G-buffer channels, classes) match `ienet.config`. Note that its
    PfDDataset reports 0 classes for no_light and geometry, which its G-buffer encoder cannot run with.
    """
    problems = reference_incompatibilities(ienet.config)
    if problems and not allow_nonreference:
        raise EpeflowError(f"{path}: the reference code cannot load this generator: {'; '.join(problems)}")
    state = ienet.state_dict()
    out = OrderedDict((k, v.detach().cpu().clone()) for k, v in state.items())
    if hasattr(state, "_metadata"):
        out._metadata = state._metadata  # spectral-norm version records, as torch writes them
    with atomic_path(path) as tmp:
        torch.save(out, tmp)

"""init.pt: the state a training run starts from instead of seeded random weights (`train.init_from`).

Written by `epeflow epe import run` from a reference training run. A plain dict (loads with
`weights_only=True`): format, iteration (generator updates already done), generator and discriminator
state dicts with their configs, each network's Adam moments keyed by parameter name (None when the source
saved none: the run then starts fresh optimizers), what the source's optimizers and schedules were (for the
log), and provenance. Parameters are named, not numbered, so the file does not depend on the order in which
a network registers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from epeflow.errors import EpeflowError
from epeflow.io import PathLike, atomic_path, load_torch_file

INIT_FORMAT = "epeflow-init/1"
ADAM_MOMENTS = ("exp_avg", "exp_avg_sq")


def _cpu(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def write_init_state(
    path: PathLike,
    *,
    iteration: int,
    generator: Mapping[str, torch.Tensor],
    generator_config: Mapping[str, Any],
    discriminator: Mapping[str, torch.Tensor],
    discriminator_config: Mapping[str, Any],
    adam_g: Mapping[str, Any] | None,
    adam_d: Mapping[str, Any] | None,
    source: Mapping[str, Any],
    provenance: Mapping[str, Any],
) -> None:
    """Write init.pt atomically. `adam_*`: {"state": {param name: {step, exp_avg, exp_avg_sq}}, "hyper":
    {lr, betas, eps, weight_decay, amsgrad}} or None; `source`: plain values describing where it came from."""
    if iteration < 0:
        raise EpeflowError(f"{path}: iteration {iteration} must be >= 0")
    init = {
        "format": INIT_FORMAT,
        "iteration": int(iteration),
        "generator": _cpu(generator),
        "generator_config": dict(generator_config),
        "discriminator": _cpu(discriminator),
        "discriminator_config": dict(discriminator_config),
        "adam_g": None if adam_g is None else _plain_adam(adam_g),
        "adam_d": None if adam_d is None else _plain_adam(adam_d),
        "source": dict(source),
        "provenance": dict(provenance),
    }
    with atomic_path(path) as tmp:
        torch.save(init, tmp)


def _plain_adam(adam: Mapping[str, Any]) -> dict[str, Any]:
    state = {name: {k: v.detach().cpu().contiguous() for k, v in s.items()} for name, s in adam["state"].items()}
    return {"state": state, "hyper": dict(adam["hyper"])}


def read_init_state(path: PathLike) -> dict[str, Any]:
    """init.pt, checked to be one; errors name the file and the config key that points at it."""
    init = load_torch_file(path, "init state (config key `train.init_from`)",
                           "write it with `epeflow epe import run` or fix `train.init_from`",
                           "write it again with `epeflow epe import run`")
    if not isinstance(init, dict) or init.get("format") != INIT_FORMAT:
        found = init.get("format") if isinstance(init, dict) else type(init).__name__
        raise EpeflowError(
            f"{path} (config key `train.init_from`) is not an epeflow init state (format {found!r}, expected "
            f"{INIT_FORMAT!r}); write one with `epeflow epe import run`"
        )
    return init

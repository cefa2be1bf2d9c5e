"""A reference training run's files as the state an epeflow training run starts from (init.pt, `train.init_from`).

The reference's GANExperiment._save_model writes per network three torch.save'd state dicts,
`<name>_{gen,disc}-{network,optimizer,scheduler}.pth.tar`: the network, its optimizer (Adam by default,
weight decay 1e-4) and its scheduler (StepLR). The iteration counter is only in the name (`<name>-<i>`,
counting generator plus discriminator updates, which alternate on separate batches); the reference's own
resume does not restore it. An epeflow iteration is one discriminator and one generator update, so the
iteration imported is the number of generator updates: `iteration` if given, else the generator
scheduler's last_epoch, else the generator's Adam step count, else i // 2 from the file name.

Adam state is indexed by a parameter's position in `network.parameters()`; that is the order of the
parameter keys in the network file (both follow module registration), so the index maps to a name here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from epeflow.artifacts.init_state import ADAM_MOMENTS, write_init_state
from epeflow.epe.discriminator_checkpoint import discriminator_from_state
from epeflow.epe.discriminator_checkpoint import read_state as read_discriminator_state
from epeflow.epe.generator_checkpoint import generator_from_state_dict, read_state_dict
from epeflow.epe.state_dict import read_reference_file
from epeflow.errors import EpeflowError
from epeflow.io import PathLike
from epeflow.provenance import stamp

log = logging.getLogger(__name__)

NETWORK_SUFFIX = "-network.pth.tar"
_ITERATION_IN_NAME = re.compile(r"-(\d+)(?:-[A-Za-z]\w*)?_gen-network\.pth\.tar$")  # <name>-<i>[-break]_gen-...
_SCHEDULE_KEYS = ("last_epoch", "step_size", "gamma", "base_lrs", "T_max", "eta_min")
_SHOWN = 10


def sibling(network_file: Path, kind: str) -> Path | None:
    """The `-optimizer` / `-scheduler` file saved with a `*-network.pth.tar`, when it exists."""
    name = network_file.name
    if not name.endswith(NETWORK_SUFFIX):
        return None
    path = network_file.with_name(name[: -len(NETWORK_SUFFIX)] + f"-{kind}.pth.tar")
    return path if path.is_file() else None


@dataclass(frozen=True)
class ReferenceRun:
    """The files of one save of a reference run; optimizer / scheduler files are None when absent."""

    generator: Path
    discriminator: Path
    gen_optimizer: Path | None = None
    gen_scheduler: Path | None = None
    disc_optimizer: Path | None = None
    disc_scheduler: Path | None = None

    @classmethod
    def beside(cls, generator: PathLike, discriminator: PathLike, optimizers: bool = True) -> ReferenceRun:
        """The network files and the optimizer / scheduler files saved next to them (unless `optimizers` is False)."""
        gen, disc = Path(generator), Path(discriminator)
        if not optimizers:
            return cls(gen, disc, gen_scheduler=sibling(gen, "scheduler"), disc_scheduler=sibling(disc, "scheduler"))
        return cls(gen, disc, sibling(gen, "optimizer"), sibling(gen, "scheduler"), sibling(disc, "optimizer"),
                   sibling(disc, "scheduler"))


def adam_state_by_name(
    saved: Any, params: Sequence[tuple[str, torch.Size]], source: str, network_file: PathLike
) -> dict[str, Any]:
    """{"state": {name: {step, exp_avg, exp_avg_sq}}, "hyper": {...}} of a reference Adam state dict.

    `params`: (name, shape) of the network's parameters in the order its optimizer received them.
    """
    groups = saved.get("param_groups") if isinstance(saved, Mapping) else None
    state = saved.get("state") if isinstance(saved, Mapping) else None
    if not isinstance(groups, list) or not isinstance(state, Mapping) or not all(
        isinstance(g, Mapping) and isinstance(g.get("params"), list) for g in groups
    ):
        raise EpeflowError(f"optimizer file {source} is not an optimizer state dict (no `state` / `param_groups`)")
    ids = [i for g in groups for i in g["params"]]
    if len(ids) != len(params):
        raise EpeflowError(
            f"optimizer file {source} holds {len(ids)} parameters but {network_file} has {len(params)}; give the "
            "optimizer file saved with that network (same <name>-<i>), or leave optimizers out (--fresh-optimizers)"
        )
    name_of = {i: name for i, (name, _) in zip(ids, params, strict=True)}
    shape_of = dict(params)
    by_name: dict[str, dict[str, torch.Tensor]] = {}
    misfits: list[str] = []
    for i, s in state.items():
        name = name_of.get(i)
        if name is None or not isinstance(s, Mapping) or not all(k in s for k in ("step", *ADAM_MOMENTS)):
            what = "unknown parameter index" if name is None else f"keys {sorted(s) if isinstance(s, Mapping) else s}"
            raise EpeflowError(
                f"optimizer file {source}: state {i!r} is not Adam state of {network_file} ({what}); the reference's "
                "optimizer must be `type: adam` or `adamw`, else leave optimizers out (--fresh-optimizers)"
            )
        shapes = {k: tuple(s[k].shape) for k in ADAM_MOMENTS}
        if any(shape != tuple(shape_of[name]) for shape in shapes.values()):
            misfits.append(f"{name} {shapes['exp_avg']} (parameter {tuple(shape_of[name])})")
            continue
        entry = {k: s[k].detach().float().clone() for k in ADAM_MOMENTS}
        entry["step"] = torch.tensor(float(s["step"]))
        by_name[name] = entry
    if misfits:
        more = f", ... ({len(misfits) - _SHOWN} more)" if len(misfits) > _SHOWN else ""
        raise EpeflowError(f"optimizer file {source}: {len(misfits)} mis-shaped moment(s) for {network_file}: "
                           f"{', '.join(misfits[:_SHOWN])}{more}")
    g = groups[0]
    hyper = {"lr": float(g.get("lr", 0.0)), "betas": [float(b) for b in g.get("betas", (0.9, 0.999))],
             "eps": float(g.get("eps", 1e-8)), "weight_decay": float(g.get("weight_decay", 0.0)),
             "amsgrad": bool(g.get("amsgrad", False))}
    return {"state": by_name, "hyper": hyper}


def _schedule(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    saved = read_reference_file(path, "scheduler file", "<name>_gen-scheduler.pth.tar")
    if not isinstance(saved, Mapping) or not isinstance(saved.get("last_epoch"), int):
        raise EpeflowError(f"scheduler file {path} is not a learning-rate scheduler state dict (no `last_epoch`)")
    return {k: (list(v) if isinstance(v, list | tuple) else v) for k, v in saved.items() if k in _SCHEDULE_KEYS}


def _parameters_in_file_order(state: Mapping[str, torch.Tensor], module: nn.Module) -> list[tuple[str, torch.Size]]:
    shapes = {name: p.shape for name, p in module.named_parameters()}
    return [(k, shapes[k]) for k in state if k in shapes]


def iteration_of(run: ReferenceRun, given: int | None, gen_schedule: dict[str, Any] | None,
                 adam_g: dict[str, Any] | None) -> tuple[int, str]:
    """The generator updates done, and where that number came from (see the module docstring)."""
    found: list[tuple[int, str]] = []
    if gen_schedule is not None:
        found.append((int(gen_schedule["last_epoch"]), f"last_epoch of {run.gen_scheduler}"))
    if adam_g is not None and adam_g["state"]:
        found.append((max(int(s["step"]) for s in adam_g["state"].values()), f"Adam step of {run.gen_optimizer}"))
    if m := _ITERATION_IN_NAME.search(run.generator.name):
        found.append((int(m.group(1)) // 2, f"{run.generator.name}: {m.group(1)} updates of both networks // 2"))
    if given is not None:
        for value, where in found:
            if value != given:
                log.warning("--iteration %d differs from %d (%s); using %d", given, value, where, given)
        return given, "--iteration"
    if not found:
        raise EpeflowError(
            f"{run.generator}: no scheduler or optimizer file beside it and no iteration in its name "
            "(<name>-<i>_gen-network.pth.tar); pass --iteration N (generator updates done)"
        )
    for value, where in found[1:]:
        if value != found[0][0]:
            log.warning("iteration %d (%s) differs from %d (%s)", found[0][0], found[0][1], value, where)
    return found[0]


def import_run(
    run: ReferenceRun, out: PathLike, iteration: int | None = None, gbuffer_mode: str | None = None,
    **generator_overrides: Any,
) -> dict[str, Any]:
    """Write init.pt from a reference run's files; returns what was imported (iteration, configs, optimizers)."""
    gen_state = read_state_dict(run.generator)
    generator, gen_config = generator_from_state_dict(gen_state, gbuffer_mode, source=str(run.generator),
                                                      **generator_overrides)
    disc_state = read_discriminator_state(run.discriminator)
    discriminator, disc_config = discriminator_from_state(disc_state, str(run.discriminator))

    adam: dict[str, dict[str, Any] | None] = {}
    for key, file, network_file, state, module in (
        ("g", run.gen_optimizer, run.generator, gen_state, generator),
        ("d", run.disc_optimizer, run.discriminator, disc_state, discriminator),
    ):
        if file is None:
            adam[key] = None
            continue
        saved = read_reference_file(file, "optimizer file", "<name>_gen-optimizer.pth.tar")
        adam[key] = adam_state_by_name(saved, _parameters_in_file_order(state, module), str(file), network_file)
    schedules = {"generator": _schedule(run.gen_scheduler), "discriminator": _schedule(run.disc_scheduler)}
    iteration, where = iteration_of(run, iteration, schedules["generator"], adam["g"])

    files = {k: None if v is None else str(v) for k, v in vars(run).items()}
    source = {"kind": "reference run", "files": files, "iteration_from": where, "schedules": schedules,
              "optimizers": {k: None if v is None else v["hyper"] for k, v in adam.items()}}
    write_init_state(
        out, iteration=iteration, generator=generator.state_dict(), generator_config=gen_config.to_dict(),
        discriminator=discriminator.state_dict(), discriminator_config=disc_config.to_dict(),
        adam_g=adam["g"], adam_d=adam["d"], source=source, provenance=stamp(False, imported_from=files),
    )
    for name, key in (("generator", "g"), ("discriminator", "d")):
        if adam[key] is None:
            log.warning("no %s optimizer file: the continued run starts a fresh Adam for the %s", name, name)
    log.info("wrote %s: iteration %d (%s), generator %s, discriminator %s", out, iteration, where,
             gen_config.to_dict(), disc_config.to_dict())
    return {"iteration": iteration, "iteration_from": where, "generator_config": gen_config.to_dict(),
            "discriminator_config": disc_config.to_dict(),
            "optimizers": {k: v is not None for k, v in adam.items()}}

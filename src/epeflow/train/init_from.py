"""Starting a run from an init state (`train.init_from`, e.g. an imported reference run) instead of seeded weights.

The run's own settings and data decide the networks; the init state must fit them (keys and shapes, the
discriminator's label count). Its iteration, the Adam moments and the learning-rate schedules carry over;
the optimizers' hyperparameters are the run's settings (differences from the source are logged).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from epeflow.epe.discriminator_checkpoint import check_state as check_discriminator_state
from epeflow.epe.generator_checkpoint import check_state_dict as check_generator_state
from epeflow.errors import EpeflowError
from epeflow.train.loop import TrainState
from epeflow.train.settings import TrainSettings

log = logging.getLogger(__name__)

# Generator config fields and the settings that size them.
GENERATOR_KEYS = {"width": "train.generator_width", "num_stages": "train.generator_stages",
                  "num_gbuffer_layers": "train.gbuffer_layers", "gbuffer_mode": "train.image_only / the G-buffers",
                  "gbuffer_channels": "the G-buffer store", "num_classes": "the material classes"}
DISCRIMINATOR_KEYS = {"width": "train.discriminator_width", "max_dim": "train.discriminator_max_dim",
                      "num_layers": "train.discriminator_num_layers"}


def check_settings(init: Mapping[str, Any], settings: TrainSettings, source: str) -> None:
    """What can be told before building anything: the discriminator kind and the iterations left."""
    if settings.discriminator != "ppde":
        raise EpeflowError(f"{source} (`train.init_from`) holds a ppde discriminator; set `train.discriminator: ppde`")
    if settings.iterations < init["iteration"]:
        raise EpeflowError(
            f"config key `train.iterations`: {settings.iterations} is below the {init['iteration']} iterations "
            f"{source} (`train.init_from`) has already done; set it higher"
        )


def _differences(ours: Mapping[str, Any], theirs: Mapping[str, Any], names: Mapping[str, str]) -> list[str]:
    return [f"{k} {theirs.get(k)!r} in the init state, {ours.get(k)!r} here ({names.get(k, k)})"
            for k in ours if k in theirs and ours[k] != theirs[k]]


def check_networks(init: Mapping[str, Any], state: TrainState, src_labels: str, source: str) -> None:
    """EpeflowError naming what does not fit: config fields (with the settings behind them), then keys/shapes."""
    disc, theirs = state.discriminator, init["discriminator_config"]
    ours = disc.config_dict()
    if theirs.get("num_labels") != ours["num_labels"]:
        raise EpeflowError(
            f"{source} (`train.init_from`): its discriminator embeds {theirs.get('num_labels')} label classes "
            f"(the reference's MSeg universal taxonomy has 194) but the label stage ({src_labels}/labels.json) "
            f"has {ours['num_labels']}; label both datasets with the taxonomy the imported run used"
        )
    problems = _differences(ours, theirs, DISCRIMINATOR_KEYS)
    if problems:
        raise EpeflowError(f"{source} (`train.init_from`): the discriminator does not fit this run: "
                           + "; ".join(problems))
    check_discriminator_state(init["discriminator"], disc, f"{source} (`train.init_from`)")

    gen_ours, gen_theirs = state.generator.config.to_dict(), init["generator_config"]
    problems = _differences(gen_ours, gen_theirs, GENERATOR_KEYS)
    hint = f"Config differences: {'; '.join(problems)}" if problems else "Its networks are not this run's"
    check_generator_state(state.generator, init["generator"], f"{source} (`train.init_from`)", hint)
    unseen = _differences(gen_ours, gen_theirs, {})
    if unseen:  # same keys and shapes: what the file cannot tell (the mode's name, norms) is this run's
        log.warning("%s: generator config differs where its weights cannot tell (%s); using this run's",
                    source, "; ".join(unseen))


def load_adam(optimizer: torch.optim.Optimizer, module: nn.Module, adam: Mapping[str, Any], source: str) -> int:
    """Put named Adam moments into `optimizer` (built on `module.parameters()`); returns how many parameters."""
    index = {name: i for i, (name, _) in enumerate(module.named_parameters())}
    unknown = [name for name in adam["state"] if name not in index]
    if unknown:
        raise EpeflowError(f"{source} (`train.init_from`): Adam state of unknown parameter(s) {', '.join(unknown[:10])}"
                           "; write it again with `epeflow epe import run`")
    saved = optimizer.state_dict()
    saved["state"] = {index[name]: {k: v.clone() for k, v in s.items() if k in ("step", "exp_avg", "exp_avg_sq")}
                      for name, s in adam["state"].items()}
    optimizer.load_state_dict(saved)  # keeps this run's param_groups (lr, betas, no weight decay)
    return len(saved["state"])


def fast_forward(scheduler: torch.optim.lr_scheduler.StepLR, iteration: int) -> None:
    """Put a fresh StepLR (and its optimizer's learning rates) where `iteration` steps would have left it."""
    lrs = [base * scheduler.gamma ** (iteration // scheduler.step_size) for base in scheduler.base_lrs]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
    scheduler.last_epoch = iteration
    scheduler._step_count = iteration + 1  # as if stepped: no "step before optimizer.step" warning
    scheduler._last_lr = lrs


def _hyper_differences(hyper: Mapping[str, Any], optimizer: torch.optim.Optimizer) -> str:
    group = optimizer.param_groups[0]
    ours = {"lr": group["lr"], "betas": list(group["betas"]), "eps": group["eps"],
            "weight_decay": group["weight_decay"], "amsgrad": group["amsgrad"]}
    return ", ".join(f"{k} {hyper[k]} -> {v}" for k, v in ours.items() if k in hyper and hyper[k] != v)


def start_from(init: Mapping[str, Any], state: TrainState, src_labels: str, source: str) -> None:
    """Load the init state into a freshly built `state` (networks, Adam moments, schedules, iteration)."""
    check_networks(init, state, src_labels, source)
    state.generator.load_state_dict(init["generator"], strict=True)
    state.discriminator.load_state_dict(init["discriminator"], strict=True)
    iteration = int(init["iteration"])
    for name, optimizer, scheduler, module, adam in (
        ("generator", state.opt_g, state.sched_g, state.generator, init["adam_g"]),
        ("discriminator", state.opt_d, state.sched_d, state.discriminator, init["adam_d"]),
    ):
        fast_forward(scheduler, iteration)
        if adam is None:
            log.warning("%s has no %s optimizer state: its Adam starts fresh at iteration %d", source, name, iteration)
            continue
        n = load_adam(optimizer, module, adam, source)
        changed = _hyper_differences(adam["hyper"], optimizer)
        log.info("%s Adam moments of %d parameters from %s%s", name, n, source,
                 f"; this run's settings change {changed}" if changed else "")
    state.iteration = iteration
    log.info("starting from %s at iteration %d (%s)", source, iteration,
             init.get("source", {}).get("kind", "init state"))

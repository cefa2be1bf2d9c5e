"""The training loop: per iteration one discriminator update, then one generator update, on one batch.

What varies is passed in: the networks and optimizers (`TrainState`), the losses (`Objectives`), where it
runs (`Runtime`), and what to do at a checkpoint (a callback). The loop itself fits on one screen.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from epeflow.common.runtime import Runtime, frozen
from epeflow.common.vgg16 import VGG16
from epeflow.log import progress
from epeflow.models.disc_inputs import discriminator_inputs
from epeflow.models.gan_losses import HingeLoss, LSLoss, NSLoss
from epeflow.models.ienet import GBUFFER_MODES, IENet, IENetConfig
from epeflow.models.losses import r1_penalty
from epeflow.models.patchgan import PatchGAN, PatchGANConfig
from epeflow.models.ppde import PPDE, PPDEConfig
from epeflow.train.settings import TrainSettings
from epeflow.train.watch import Watch

log = logging.getLogger(__name__)


class LossLog:
    """Loss sums since the last log line, and the history of their means at each log line."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor | float] = {}
        self.count = 0
        self.history: dict[str, list] = {"iteration": []}

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for name, value in losses.items():  # summed on the device: no synchronisation per step
            self.sums[name] = self.sums.get(name, 0.0) + value.detach().double()
        self.count += 1

    def means(self) -> dict[str, float]:
        return {name: float(total) / self.count for name, total in self.sums.items()}

    def flush(self, iteration: int) -> dict[str, float]:
        """Close the window: its means join the history at `iteration`."""
        means = self.means()
        self.history["iteration"].append(iteration)
        for name, value in means.items():
            self.history.setdefault(name, []).append(value)
        self.sums, self.count = {}, 0
        return means

    def final_history(self, iteration: int) -> dict[str, list]:
        """The history plus the open window (a run that stops between log lines), leaving the log as is,
        so an extended run logs the same windows as one that never stopped."""
        history = {k: list(v) for k, v in self.history.items()}
        if self.count:
            history["iteration"].append(iteration)
            for name, value in self.means().items():
                history.setdefault(name, []).append(value)
        return history

    def state_dict(self) -> dict[str, Any]:
        return {"sums": {k: float(v) for k, v in self.sums.items()}, "count": self.count, "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums, self.count = dict(state["sums"]), int(state["count"])
        self.history = {k: list(v) for k, v in state["history"].items()}


Discriminator = PPDE | PatchGAN
DISCRIMINATORS: dict[str, type[PPDE] | type[PatchGAN]] = {"ppde": PPDE, "patchgan": PatchGAN}


@dataclass
class TrainState:
    """Everything a checkpoint restores (besides data sampling and RNG states)."""

    generator: IENet
    discriminator: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sched_g: torch.optim.lr_scheduler.LRScheduler
    sched_d: torch.optim.lr_scheduler.LRScheduler
    iteration: int = 0
    losses: LossLog = field(default_factory=LossLog)
    generator_ema: IENet | None = None  # moving average of the generator's weights (`ema_decay` > 0)

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.state_dict(),
            "generator_config": self.generator.config.to_dict(),
            "discriminator": self.discriminator.state_dict(),
            "discriminator_config": self.discriminator.config_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(),
            "sched_d": self.sched_d.state_dict(),
            "iteration": self.iteration,
            "losses": self.losses.state_dict(),
            **({"generator_ema": self.generator_ema.state_dict()} if self.generator_ema is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.sched_g.load_state_dict(state["sched_g"])
        self.sched_d.load_state_dict(state["sched_d"])
        self.iteration = int(state["iteration"])
        self.losses.load_state_dict(state["losses"])
        if self.generator_ema is not None:
            self.generator_ema.load_state_dict(state["generator_ema"])

    def generator_to_keep(self) -> IENet:
        """The generator a finished run delivers: the weight average when one is kept."""
        return self.generator if self.generator_ema is None else self.generator_ema


def generator_config(
    settings: TrainSettings, gbuffer_mode: str, gbuffer_channels: int, num_classes: int
) -> IENetConfig:
    """The reference generator sized by the settings, with G-buffer channels and classes from the data.

    The reference's class-specific channel rule (mode `all`: the sky stream sees channels 15-21) applies only
    to G-buffers laid out as the reference's; others give every class stream all channels.
    """
    if settings.image_only:
        return IENetConfig(gbuffer_mode="img", gbuffer_channels=0, num_classes=num_classes,
                           num_stages=settings.generator_stages, num_gbuffer_layers=settings.gbuffer_layers,
                           width=settings.generator_width)
    reference_layout = GBUFFER_MODES.get(gbuffer_mode) == gbuffer_channels
    return IENetConfig(
        gbuffer_mode=gbuffer_mode, gbuffer_channels=gbuffer_channels, num_classes=num_classes,
        class_slices=None if reference_layout else (), num_stages=settings.generator_stages,
        num_gbuffer_layers=settings.gbuffer_layers, width=settings.generator_width,
    )


def discriminator_config(settings: TrainSettings, num_labels: int) -> PPDEConfig | PatchGANConfig:
    if settings.discriminator == "patchgan":
        return PatchGANConfig(num_labels=num_labels, width=settings.discriminator_width)
    return PPDEConfig(max_dim=settings.discriminator_max_dim, num_layers=settings.discriminator_num_layers,
                      num_labels=num_labels, width=settings.discriminator_width)


def build_state(settings: TrainSettings, gen_config: IENetConfig, disc_config: PPDEConfig | PatchGANConfig,
                runtime: Runtime) -> TrainState:
    """Networks initialised from `settings.seed`, on the device, with Adam (fused on CUDA) and step-LR schedules."""
    torch.manual_seed(settings.seed)
    generator = runtime.prepare(IENet(gen_config))
    discriminator = runtime.prepare(DISCRIMINATORS[settings.discriminator](disc_config))
    generator_ema = None
    if settings.ema_decay > 0:
        generator_ema = copy.deepcopy(generator).requires_grad_(False)
    fused = runtime.is_cuda  # one kernel for all parameters; CPU keeps the loop-over-tensors Adam
    opt_g = torch.optim.Adam(generator.parameters(), lr=settings.lr_generator, betas=settings.betas, fused=fused)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=settings.lr_discriminator, betas=settings.betas,
                             fused=fused)
    return TrainState(
        generator, discriminator, opt_g, opt_d,
        torch.optim.lr_scheduler.StepLR(opt_g, settings.lr_step, settings.lr_gamma),
        torch.optim.lr_scheduler.StepLR(opt_d, settings.lr_step_discriminator, settings.lr_gamma),
        generator_ema=generator_ema,
    )


@torch.no_grad()
def update_ema(average: nn.Module, live: nn.Module, decay: float, step: int) -> None:
    """average <- d * average + (1 - d) * live, with d = min(decay, (1 + step) / (10 + step)).

    The warm-up (as TensorFlow's ExponentialMovingAverage with num_updates) keeps the first steps from being
    dominated by the random initialisation, which matters for short runs. Buffers (spectral-norm power
    iteration vectors) are copied from the live network.
    """
    d = min(decay, (1 + step) / (10 + step))
    for a, p in zip(average.parameters(), live.parameters(), strict=True):
        a.lerp_(p.detach(), 1 - d)
    for a, b in zip(average.buffers(), live.buffers(), strict=True):
        a.copy_(b)


@dataclass(frozen=True)
class Objectives:
    """The losses and their weights; `perceptual(x, y) -> (B,)` for images in [0, 1] (LPIPS)."""

    perceptual: nn.Module
    gan: LSLoss | HingeLoss | NSLoss = field(default_factory=LSLoss)
    perceptual_weight: float = 5.0
    gan_weight: float = 1.0
    reg_weight: float = 0.03


def compiled(module: nn.Module) -> nn.Module:
    """`torch.compile` without inductor's own choice of channels_last layouts: with it the backward of the
    generator's replicate padding fails a stride check (torch 2.13, CPU); on CUDA the runtime already lays
    tensors out channels_last."""
    return torch.compile(module, options={"layout_optimization": False})


def optimizer_step(loss: torch.Tensor, module: nn.Module, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LRScheduler, clip: float) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(module.parameters(), clip)
    optimizer.step()
    scheduler.step()


def train_loop(
    state: TrainState, batches: Iterator[dict[str, torch.Tensor]], vgg: VGG16 | None, objectives: Objectives,
    settings: TrainSettings, runtime: Runtime, on_checkpoint: Callable[[TrainState], None],
    should_stop: Callable[[], bool] = lambda: False, watch: Watch | None = None,
) -> TrainState:
    """Train from `state.iteration` to `settings.iterations`, one batch of `batches` per iteration.

    When `should_stop()` turns true (a stop signal), the loop checkpoints the last finished step and returns
    early (`state.iteration < settings.iterations` tells the caller). `watch` gets losses and image grids.
    """
    watch = watch or Watch(None, 0)
    watch.start(state.iteration)
    # Several ranks: each trains on its equal share of the global batch, every loss a mean over that share, and
    # DistributedDataParallel averages the gradients: the global batch's gradient. Modules that need no
    # gradient synchronisation (the generator under no_grad, the frozen discriminator) run unwrapped.
    gen, disc = runtime.wrap(state.generator), runtime.wrap(state.discriminator)
    fake_gen = state.generator  # under no_grad: nothing to synchronise
    if settings.compile:  # not the discriminator: R1 differentiates it twice, which compiled graphs cannot
        gen, fake_gen = compiled(gen), compiled(fake_gen)
    names, obj = state.discriminator.input_names, objectives
    saved = state.iteration  # the newest iteration a checkpoint holds (or the start: nothing new to save)

    def realness(d: nn.Module, image: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor | None]:
        return d(discriminator_inputs(vgg, image, names), labels)  # maps at 1/16 (ppde) or per scale
    for _ in progress(range(state.iteration, settings.iterations), "train", unit="it", enabled=runtime.is_main):
        if runtime.any_rank(should_stop()):  # every rank stops at the same step
            if state.iteration > saved and runtime.is_main:
                on_checkpoint(state)
            runtime.barrier()  # no rank leaves (and makes torchrun end the others) before the checkpoint is written
            break
        b = {k: runtime.tensor(v) for k, v in next(batches).items()}

        # Discriminator: fakes of the current generator towards 0, real crops towards 1, R1 on real crops.
        with torch.no_grad(), runtime.autocast():
            fake = fake_gen(b["image"], b["gbuffers"], b["materials"])  # (B, 3, h, w)
        real = b["real"].requires_grad_(obj.reg_weight > 0)
        with runtime.autocast():
            d_fake = obj.gan.fake(realness(disc, fake, b["labels"]))
            d_real = obj.gan.real(realness(disc, real, b["real_labels"]))
        # R1 of the global batch's real loss: a rank's mean over its share has world_size times its gradient
        r1 = torch.zeros((), device=real.device)
        if obj.reg_weight > 0:
            r1 = r1_penalty(d_real / runtime.world_size, real)
        optimizer_step(d_fake + d_real + obj.reg_weight * r1, disc, state.opt_d, state.sched_d, settings.clip_grad_norm)

        # Generator: look real to the discriminator (given the source's labels), stay close to the source.
        with frozen(state.discriminator), runtime.autocast():
            enhanced = gen(b["image"], b["gbuffers"], b["materials"])
            g_gan = obj.gan.generator(realness(state.discriminator, enhanced, b["labels"]))
            g_perceptual = obj.perceptual(b["image"], enhanced).float().mean()
        g_loss = obj.gan_weight * g_gan + obj.perceptual_weight * g_perceptual
        optimizer_step(g_loss, gen, state.opt_g, state.sched_g, settings.clip_grad_norm)
        if state.generator_ema is not None:
            update_ema(state.generator_ema, state.generator, settings.ema_decay, state.iteration)

        state.iteration += 1
        state.losses.add(runtime.average(
            {"g_gan": g_gan, "g_perceptual": g_perceptual, "d_real": d_real, "d_fake": d_fake, "d_r1": r1}))
        watch.images(state.iteration, b["image"], enhanced, b["real"])
        if state.iteration % settings.log_every == 0:
            means = state.losses.flush(state.iteration)
            _log_losses(state.iteration, means)
            watch.losses(state.iteration, means, {"generator": state.opt_g.param_groups[0]["lr"],
                                                  "discriminator": state.opt_d.param_groups[0]["lr"]})
        at_end = state.iteration == settings.iterations
        if state.iteration % settings.checkpoint_every == 0 or at_end:
            if runtime.is_main:
                on_checkpoint(state)
            saved = state.iteration
    if state.losses.count:
        _log_losses(state.iteration, state.losses.means())
    return state


def _log_losses(iteration: int, means: dict[str, float]) -> None:
    log.info("iteration %d: %s", iteration, " ".join(f"{k}={v:.4g}" for k, v in means.items()))

from __future__ import annotations

import math

import pytest
import torch
from train_fixtures import TINY_TRAIN, one_torch_thread, random_batches

from epeflow.common.lpips import LPIPS, uniform_lin_weights
from epeflow.common.runtime import Runtime
from epeflow.common.vgg16 import VGG16
from epeflow.train.loop import (
    LossLog,
    Objectives,
    build_state,
    discriminator_config,
    generator_config,
    train_loop,
    update_ema,
)
from epeflow.train.settings import TrainSettings


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def vgg_and_lpips():
    torch.manual_seed(0)
    vgg = VGG16().eval().requires_grad_(False)
    return vgg, LPIPS(VGG16(), uniform_lin_weights())


def test_training_steps_update_both_networks_with_finite_losses(vgg_and_lpips):
    vgg, lpips = vgg_and_lpips
    settings = TrainSettings.from_spec({**TINY_TRAIN, "iterations": 3, "checkpoint_every": 2})
    runtime = Runtime.detect(amp=False, device="cpu")
    gen_config = generator_config(settings, gbuffer_mode="all", gbuffer_channels=3, num_classes=12)
    state = build_state(settings, gen_config, discriminator_config(settings, num_labels=194), runtime)
    g0 = {k: v.clone() for k, v in state.generator.state_dict().items()}
    d0 = {k: v.clone() for k, v in state.discriminator.state_dict().items()}
    saved = []
    objectives = Objectives(perceptual=lpips, perceptual_weight=5.0, reg_weight=0.03)
    train_loop(state, random_batches(), vgg, objectives, settings, runtime, lambda s: saved.append(s.iteration))

    assert state.iteration == 3 and saved == [2, 3]  # every checkpoint_every, and at the end
    history = state.losses.history
    assert history["iteration"] == [1, 2, 3]
    for name in ("g_gan", "g_perceptual", "d_real", "d_fake", "d_r1"):
        assert len(history[name]) == 3 and all(math.isfinite(v) and v >= 0 for v in history[name]), name
    assert any(not torch.equal(v, state.generator.state_dict()[k]) for k, v in g0.items())
    assert any(not torch.equal(v, state.discriminator.state_dict()[k]) for k, v in d0.items())
    assert all(p.grad is None for p in vgg.parameters())  # the VGG16 stays frozen
    assert state.sched_g.last_epoch == 3 and state.sched_d.last_epoch == 3


def test_losses_are_logged_as_means_over_the_window():
    log = LossLog()
    for value in (1.0, 2.0, 6.0):
        log.add({"g": torch.tensor(value)})
    restored = LossLog()
    restored.load_state_dict(log.state_dict())  # a checkpoint in the middle of a window
    assert restored.flush(3) == {"g": 3.0} == log.flush(3)
    log.add({"g": torch.tensor(4.0)})
    assert log.final_history(4) == {"iteration": [3, 4], "g": [3.0, 4.0]}  # a run ending between log lines
    assert log.history == {"iteration": [3], "g": [3.0]} and log.count == 1  # ... leaves the window open
    assert log.flush(5) == {"g": 4.0}


def test_weight_average_follows_the_live_weights_with_warm_up():
    live, average = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    torch.nn.init.constant_(live.weight, 1.0)
    torch.nn.init.constant_(average.weight, 0.0)
    update_ema(average, live, decay=0.99, step=0)  # warm-up: d = 1/10, not 0.99
    assert torch.allclose(average.weight, torch.full_like(average.weight, 0.9))
    update_ema(average, live, decay=0.5, step=1000)  # long after warm-up: d = decay
    assert torch.allclose(average.weight, torch.full_like(average.weight, 0.95))

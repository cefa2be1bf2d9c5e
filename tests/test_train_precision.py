"""Mixed precision: bf16 autocast keeps the losses and the R1 penalty in fp32, and a bf16 training step agrees
with an fp32 one. CPU bf16 autocast runs the same code path everywhere; the CUDA cases (channels_last, fused
Adam, torch.compile) need a GPU."""

from __future__ import annotations

import pytest
import torch
from train_fixtures import TINY_TRAIN, one_torch_thread, random_batches

from epeflow.common.lpips import LPIPS, uniform_lin_weights
from epeflow.common.runtime import Runtime
from epeflow.common.vgg16 import VGG16
from epeflow.models.disc_inputs import discriminator_inputs
from epeflow.models.gan_losses import LSLoss
from epeflow.models.losses import r1_penalty
from epeflow.models.ppde import PPDE
from epeflow.train.loop import Objectives, build_state, discriminator_config, generator_config, train_loop
from epeflow.train.settings import TrainSettings

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, CUDA])]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


def _perceptual(runtime: Runtime) -> tuple[VGG16, LPIPS]:
    torch.manual_seed(0)
    return runtime.prepare(VGG16().eval().requires_grad_(False)), runtime.prepare(LPIPS(VGG16(), uniform_lin_weights()))


@pytest.mark.parametrize("device", DEVICES)
def test_losses_and_r1_stay_fp32_under_bf16_autocast(device):
    runtime = Runtime(torch.device(device), amp=True)
    vgg, lpips = _perceptual(runtime)
    disc = runtime.prepare(PPDE(discriminator_config(TrainSettings.from_spec(TINY_TRAIN), num_labels=194)))
    real = runtime.tensor(torch.rand(2, 3, 32, 32)).requires_grad_()
    labels = runtime.tensor(torch.randint(0, 194, (2, 32, 32)))
    with runtime.autocast():
        maps = disc(discriminator_inputs(vgg, real, disc.input_names), labels)
        loss = LSLoss().real(maps)
        distance = lpips(real, runtime.tensor(torch.rand(2, 3, 32, 32)))
    assert {m.dtype for m in maps if m is not None} == {torch.bfloat16}  # the networks did run in bf16
    assert loss.dtype == distance.dtype == torch.float32
    assert r1_penalty(loss, real).dtype == torch.float32


def _one_step(device: str, amp: bool, **spec) -> tuple[dict, dict]:
    runtime = Runtime(torch.device(device), amp=amp)
    vgg, lpips = _perceptual(runtime)
    settings = TrainSettings.from_spec({**TINY_TRAIN, "iterations": 1, **spec})
    state = build_state(settings, generator_config(settings, "all", 3, 12), discriminator_config(settings, 194),
                        runtime)
    train_loop(state, random_batches(size=32), vgg, Objectives(perceptual=lpips), settings, runtime, lambda s: None)
    assert state.opt_g.defaults["fused"] is runtime.is_cuda
    return state.losses.history, {k: v.float().cpu() for k, v in state.generator.state_dict().items()}


def _assert_close_steps(a: tuple[dict, dict], b: tuple[dict, dict], rel: float, lr: float) -> None:
    """Losses within `rel` (g_perceptual, ~1e-7 with random LPIPS weights, within `rel` of the largest loss), the
    R1 penalty within 2 `rel`: it is the squared norm of an input gradient, which carries the bf16 rounding of the
    backward pass as the losses carry the forward's, and squaring doubles a relative error (3.5 % measured on an
    AVX512-BF16 CPU, whose native bf16 kernels round differently from the emulated path); weights within 2 lr (and
    the rounding of weights near 1): Adam's first step moves each weight by about lr whatever its
    gradient's size, so a gradient within rounding of zero may move it either way."""
    (losses_a, weights_a), (losses_b, weights_b) = a, b
    scale = max(abs(v[0]) for k, v in losses_a.items() if k != "iteration")
    for name in losses_a:
        tolerance = 2 * rel if name == "d_r1" else rel
        assert losses_a[name] == pytest.approx(losses_b[name], rel=tolerance, abs=rel * scale * 1e-3), name
    assert max(float((weights_a[k] - weights_b[k]).abs().max()) for k in weights_a) <= 2.01 * lr


@pytest.mark.parametrize("device", DEVICES)
def test_a_bf16_step_agrees_with_an_fp32_step(device):
    """bf16 keeps 8 bits of mantissa (relative rounding 2^-9): losses agree within 3 %."""
    lr = TrainSettings.from_spec(TINY_TRAIN).lr_generator
    _assert_close_steps(_one_step(device, amp=True), _one_step(device, amp=False), rel=0.03, lr=lr)


@pytest.mark.gpu
@CUDA
def test_a_compiled_generator_trains_like_the_eager_one():
    """Same fp32 arithmetic, fused differently by the compiler: losses agree within 1e-3."""
    lr = TrainSettings.from_spec(TINY_TRAIN).lr_generator
    _assert_close_steps(_one_step("cuda", amp=False, compile=True), _one_step("cuda", amp=False), rel=1e-3, lr=lr)

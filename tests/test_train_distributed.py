"""Several processes (torchrun, gloo on CPU) train the model one process trains on the same global batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_fixtures import TINY_TRAIN, make_experiment, one_torch_thread, wait_for_line

import epeflow
from epeflow.artifacts import checkpoints as ckpt
from epeflow.common.runtime import Runtime
from epeflow.errors import EpeflowError
from epeflow.models import load_generator
from epeflow.train import TrainSettings, run_train
from epeflow.train.run import check_world

SRC = Path(epeflow.__file__).resolve().parents[1]  # this checkout's package, for the subprocesses
EPEFLOW = Path(sys.executable).with_name("epeflow")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


def test_the_number_of_processes_must_be_the_configured_one_with_equal_shares():
    two = Runtime(torch.device("cpu"), amp=False, rank=1, world_size=2)
    check_world(TrainSettings.from_spec({"gpus": 2, "batch_size": 4}), two)
    with pytest.raises(EpeflowError, match=r"`train.gpus` is 1 .* one of 2 process.*torchrun"):
        check_world(TrainSettings.from_spec({"batch_size": 4}), two)
    with pytest.raises(EpeflowError, match=r"`train.batch_size` \(3\) is not a multiple of `train.gpus` \(2\)"):
        check_world(TrainSettings.from_spec({"gpus": 2, "batch_size": 3}), two)


def _torchrun_command(exp, root: Path, spec: dict, processes: int) -> list[str]:
    """What the `train` rule runs for `gpus: 2`."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
        "--no-python", str(EPEFLOW), "train", "--src-manifest", str(exp.src_manifest),
        "--dst-manifest", str(exp.dst_manifest), "--src-labels", str(exp.src_labels),
        "--dst-labels", str(exp.dst_labels), "--gbuffers", str(exp.gbuffers), "--matches", str(exp.matches),
        "--src-crops", str(exp.src_crops), "--dst-crops", str(exp.dst_crops),
        "--pair-weights", str(exp.pair_weights), "--checkpoints", str(root / "checkpoints"),
        "--out", str(root / "model.pt"), "--spec", json.dumps(spec), "--weights", "{}",
        "--allow-random-weights", "--threads", "1",
    ]


ENV = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}


def _differences(a: dict, b: dict) -> torch.Tensor:
    """|a - b| of every floating-point weight, flattened."""
    assert a.keys() == b.keys()
    return torch.cat([(a[k].double() - b[k].double()).abs().flatten() for k in a if a[k].is_floating_point()])


def _adam_reach(settings: TrainSettings, steps: int) -> float:
    """The most `steps` Adam steps can move one weight, whatever its gradients: step t moves it by at most
    lr * sqrt(sum_i a_i^2 / b_i), with a_i, b_i the bias-corrected weights of gradient i in the first and second
    moment (Cauchy-Schwarz; eps only shrinks it): lr at t = 1, 1.007 lr at t = 4 for betas (0.9, 0.999)."""
    (b1, b2), reach = settings.betas, 0.0
    for t in range(1, steps + 1):
        a = [(1 - b1) * b1 ** (t - i) / (1 - b1**t) for i in range(1, t + 1)]
        b = [(1 - b2) * b2 ** (t - i) / (1 - b2**t) for i in range(1, t + 1)]
        reach += settings.lr_generator * sum(x * x / y for x, y in zip(a, b, strict=True)) ** 0.5
    return reach


def _assert_same_training(a: dict, b: dict, settings: TrainSettings, steps: int) -> None:
    """Same training up to float32 rounding. The runs add the same numbers in another order (a mean over each
    rank's share, then the all-reduce average, against one mean over the batch), so losses agree to ~1e-6
    relative and most gradients to ~1e-7. Adam divides each gradient by its own size, so a weight whose gradient
    is within rounding of zero still moves by up to lr a step, in a direction the rounding picks: measured (2
    steps), a gradient of +2.7e-8 in one run and -3.0e-8 in the other (its tensor's RMS gradient 1.4e-3) moved
    one weight by +7.3e-5 and -7.5e-5. So the largest difference is a lottery over which kernels the CPU runs
    (1.5e-4 with AVX-512 kernels, 7.8e-5 with AVX2 ones, same code) bounded only by twice Adam's reach, and
    proves little: training on other crops (no flips, or half the batch) also stays within that bound.
    What tells rounding from a real difference is how many weights differ: rounding leaves the median below
    9e-8 and at most 0.07% of the weights more than lr / 10 apart (after 4 steps, spectral-norm vectors
    included); another batch or flip moves the median by 5e-5 to 1.4e-4 and 75-92% of the weights by more
    than lr / 10. The bounds below sit 10x above the first and 50x below the second."""
    d = _differences(a["generator"], b["generator"])
    lr = settings.lr_generator
    # weights: by construction; spectral-norm vectors follow their weights (measured <= 8e-5). NaN fails too
    assert float(d.max()) <= 2 * _adam_reach(settings, steps)
    assert float(d.median()) < lr / 100, float(d.median())
    assert float((d > lr / 10).double().mean()) < 0.01, float((d > lr / 10).double().mean())
    assert a["history"].keys() == b["history"].keys() and a["history"]["iteration"] == b["history"]["iteration"]
    for name in a["history"]:
        assert a["history"][name] == pytest.approx(b["history"][name], rel=1e-4), name


def test_two_processes_train_what_one_does_and_a_one_process_rerun_continues(tmp_path, hub_dir):
    exp = make_experiment(tmp_path)
    spec = {**TINY_TRAIN, "iterations": 2, "checkpoint_every": 2, "log_every": 1, "crop_size": 16, "flip": True,
            "batch_size": 4}
    two = tmp_path / "two"
    result = subprocess.run(_torchrun_command(exp, two, {**spec, "gpus": 2}, processes=2), capture_output=True,
                            text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[:8000]
    assert result.stderr.count("iteration 2:") == 1  # rank 1 logs no progress
    _, two_model = load_generator(two / "model.pt")

    one = tmp_path / "one"  # one process, the same global batch of 4, 4 iterations straight
    run_train(**exp.train_args(one / "model.pt", one / "checkpoints"), spec={**spec, "iterations": 4},
              weights={}, allow_random=True)
    one_ckpt = torch.load(ckpt.checkpoint_path(one / "checkpoints", 2), weights_only=True)
    settings = TrainSettings.from_spec(spec)
    _assert_same_training(two_model, {"generator": one_ckpt["generator"], "history": one_ckpt["losses"]["history"]},
                          settings, steps=2)

    # continued with one process from the two processes' checkpoint (same sampler state and global batches)
    run_train(**exp.train_args(two / "model.pt", two / "checkpoints"), spec={**spec, "iterations": 4},
              weights={}, allow_random=True)
    _assert_same_training(load_generator(two / "model.pt")[1], load_generator(one / "model.pt")[1], settings, steps=4)


def test_a_stop_signal_stops_every_rank_at_the_same_step_after_rank_0_checkpointed(tmp_path, hub_dir):
    exp = make_experiment(tmp_path)
    spec = {**TINY_TRAIN, "iterations": 10_000, "checkpoint_every": 1000, "log_every": 1, "batch_size": 4,
            "crop_size": 16, "gpus": 2}
    # torchrun and both ranks get SIGTERM, as SLURM signals every process of a job step
    proc = subprocess.Popen(_torchrun_command(exp, tmp_path, spec, processes=2), stderr=subprocess.PIPE, text=True,
                            env=ENV, start_new_session=True)
    seen = wait_for_line(proc, "iteration 2:", timeout=180)
    os.killpg(proc.pid, signal.SIGTERM)
    rest = "".join(seen) + proc.communicate(timeout=180)[1]
    assert proc.returncode == 1  # torchrun's: it re-raises the signal it forwarded (the ranks exited 75)
    [(iteration, _)] = ckpt.list_checkpoints(tmp_path / "checkpoints")
    assert rest.count(f"stopped on SIGTERM at iteration {iteration} of 10000") == 2, rest[-6000:]  # both ranks

"""Pre-emption: a stop signal ends training after the current step with a checkpoint and exit status 75, and
the rerun continues to exactly the model of a run that was never stopped."""

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
from epeflow.errors import EXIT_STOPPED
from epeflow.models import load_generator
from epeflow.train import run_train
from epeflow.train.stop import stop_on_signals

SRC = Path(epeflow.__file__).resolve().parents[1]  # this checkout's package, for the subprocess
CLI = "import sys; from epeflow.cli import main; sys.exit(main())"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


def test_stop_signals_set_the_request_and_the_old_handlers_come_back():
    before = signal.getsignal(signal.SIGUSR1)
    with stop_on_signals() as stop:
        assert not stop()
        os.kill(os.getpid(), signal.SIGUSR1)  # delivered to the main thread before the next bytecode
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop() and stop.name == "SIGUSR1"  # the first signal is the one being served
    assert signal.getsignal(signal.SIGUSR1) is before


def _train_command(exp, root: Path, spec: dict) -> list[str]:
    return [
        sys.executable, "-c", CLI, "train", "--src-manifest", str(exp.src_manifest),
        "--dst-manifest", str(exp.dst_manifest), "--src-labels", str(exp.src_labels),
        "--dst-labels", str(exp.dst_labels), "--gbuffers", str(exp.gbuffers), "--matches", str(exp.matches),
        "--pair-weights", str(exp.pair_weights), "--src-crops", str(exp.src_crops), "--dst-crops", str(exp.dst_crops),
        "--checkpoints", str(root / "checkpoints"),
        "--out", str(root / "model.pt"), "--spec", json.dumps(spec), "--weights", "{}",
        "--allow-random-weights", "--threads", "1",
    ]


def test_sigterm_checkpoints_the_current_step_and_the_rerun_matches_an_uninterrupted_run(tmp_path, hub_dir):
    exp = make_experiment(tmp_path)
    spec = {**TINY_TRAIN, "iterations": 10_000, "checkpoint_every": 1000, "log_every": 1, "crop_size": 16,
            "flip": True, "num_workers": 1}
    stopped = tmp_path / "stopped"
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    # its own process group, signalled as a whole, as SLURM signals every process of a job step (DataLoader
    # workers included)
    proc = subprocess.Popen(_train_command(exp, stopped, spec), stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    wait_for_line(proc, "iteration 2:", timeout=120)
    os.killpg(proc.pid, signal.SIGTERM)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == EXIT_STOPPED, rest
    [(iteration, path)] = ckpt.list_checkpoints(stopped / "checkpoints")
    assert iteration >= 2 and f"stopped on SIGTERM at iteration {iteration} of 10000" in rest, rest
    assert not (stopped / "model.pt").exists()

    # the rerun (here with a shorter total) continues from that step; compared with a run never stopped
    final = {**spec, "iterations": iteration + 2, "num_workers": 0}
    run_train(**exp.train_args(stopped / "model.pt", stopped / "checkpoints"), spec=final, weights={},
              allow_random=True)
    straight = tmp_path / "straight"
    run_train(**exp.train_args(straight / "model.pt", straight / "checkpoints"), spec=final, weights={},
              allow_random=True)
    _, a = load_generator(stopped / "model.pt")
    _, b = load_generator(straight / "model.pt")
    assert a["generator"].keys() == b["generator"].keys()
    assert all(torch.equal(a["generator"][k], b["generator"][k]) for k in a["generator"])
    assert a["history"] == b["history"] and a["history"]["iteration"][-1] == iteration + 2

from __future__ import annotations

import json
import logging
import os
import random
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from epeflow.artifacts import checkpoints as ckpt
from epeflow.errors import EpeflowError
from epeflow.io import read_json


def _state(iteration: int, fp: str = "fp") -> dict:
    return {"format": ckpt.CHECKPOINT_FORMAT, "fingerprint": fp, "iteration": iteration,
            "weights": torch.full((2,), float(iteration))}


def test_fingerprint_depends_on_settings_and_inputs_only():
    a = ckpt.fingerprint({"lr": 1e-4, "seed": 1}, {"pairs": "abc"})
    assert a == ckpt.fingerprint({"seed": 1, "lr": 1e-4}, {"pairs": "abc"})  # key order does not matter
    assert a != ckpt.fingerprint({"lr": 2e-4, "seed": 1}, {"pairs": "abc"})
    assert a != ckpt.fingerprint({"lr": 1e-4, "seed": 1}, {"pairs": "abd"})


def test_array_digest_sees_values_dtype_and_shape():
    x = np.arange(6, dtype=np.int64)
    assert ckpt.array_digest(x) == ckpt.array_digest(x.copy())
    assert ckpt.array_digest(x) != ckpt.array_digest(x.astype(np.int32))
    assert ckpt.array_digest(x) != ckpt.array_digest(x.reshape(2, 3))
    assert ckpt.array_digest(np.array(["a", None], dtype=object)) != ckpt.array_digest(np.array(["a", "b"], object))


def test_save_keeps_the_newest_and_leaves_no_temporary_files(tmp_path):
    for it in (2, 4, 6, 8):
        ckpt.save_checkpoint(tmp_path, _state(it), keep=2)
    assert [it for it, _ in ckpt.list_checkpoints(tmp_path)] == [6, 8]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000000006.pt", "ckpt-000000008.pt"]
    loaded = torch.load(ckpt.checkpoint_path(tmp_path, 8), weights_only=True)
    assert loaded["iteration"] == 8 and torch.equal(loaded["weights"], torch.full((2,), 8.0))


def test_claim_keeps_own_run_and_moves_another_runs_checkpoints_aside(tmp_path, caplog):
    ckpt.claim(tmp_path, "fp1", {"settings": {"lr": 1}})
    ckpt.save_checkpoint(tmp_path, _state(2, "fp1"), keep=3)
    ckpt.claim(tmp_path, "fp1", {"settings": {"lr": 1}})
    assert [it for it, _ in ckpt.list_checkpoints(tmp_path)] == [2]

    with caplog.at_level(logging.WARNING):
        ckpt.claim(tmp_path, "fp2", {"settings": {"lr": 2}})
    assert ckpt.list_checkpoints(tmp_path) == []
    assert read_json(tmp_path / ckpt.RUN_FILE)["fingerprint"] == "fp2"
    stale = [p for p in tmp_path.iterdir() if p.name.startswith("stale-")]
    assert len(stale) == 1 and (stale[0] / "ckpt-000000002.pt").exists() and (stale[0] / ckpt.RUN_FILE).exists()
    assert "settings.lr" in caplog.text and "starting fresh" in caplog.text


def test_checkpoints_without_run_file_are_not_trusted(tmp_path):
    ckpt.save_checkpoint(tmp_path, _state(2), keep=3)
    ckpt.claim(tmp_path, "fp", {})
    assert ckpt.list_checkpoints(tmp_path) == []


def test_load_latest_picks_the_newest_readable_one_up_to_the_limit(tmp_path):
    for it in (2, 4, 6):
        ckpt.save_checkpoint(tmp_path, _state(it), keep=5)
    assert ckpt.load_latest(tmp_path, "fp", 100)["iteration"] == 6
    ckpt.checkpoint_path(tmp_path, 6).write_bytes(b"truncated")
    assert ckpt.load_latest(tmp_path, "fp", 100)["iteration"] == 4
    # a shorter run than before: later checkpoints are moved aside, not overwritten or pruned by mistake
    assert ckpt.load_latest(tmp_path, "fp", 3)["iteration"] == 2
    assert [it for it, _ in ckpt.list_checkpoints(tmp_path)] == [2]
    assert ckpt.load_latest(tmp_path, "fp", 1) is None


def test_a_checkpoint_of_another_run_is_an_error(tmp_path):
    ckpt.save_checkpoint(tmp_path, _state(2, "other"), keep=5)
    with pytest.raises(EpeflowError, match="does not belong"):
        ckpt.load_latest(tmp_path, "fp", 10)


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    torch.save(ckpt.rng_state(), tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random(), np.random.standard_normal())
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    ckpt.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (torch.rand(3), np.random.rand(3), random.random(), np.random.standard_normal())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2] and got[3] == expected[3]


@pytest.fixture
def other_process():
    """A running process that is not this one (its pid holds a lock in the tests)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _lock_of(folder, pid: int, host: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ckpt.LOCK_FILE).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                                     "since": "2026-01-01 00:00:00"}))


def test_a_second_training_on_one_folder_is_refused_naming_the_first(tmp_path, other_process):
    _lock_of(tmp_path, other_process.pid)
    ckpt.save_checkpoint(tmp_path, _state(2), keep=3)
    with pytest.raises(EpeflowError, match=rf"another training \(pid {other_process.pid}.*kill {other_process.pid}"):
        ckpt.lock(tmp_path)
    assert ckpt.list_checkpoints(tmp_path)  # nothing touched
    _lock_of(tmp_path, 1, host="elsewhere")
    with pytest.raises(EpeflowError, match=r"host elsewhere .*delete .*train.lock"):
        ckpt.lock(tmp_path)


def test_a_lock_of_a_dead_training_is_taken_over_and_its_temporaries_removed(tmp_path, caplog):
    dead = _gone_pid()
    _lock_of(tmp_path, dead)
    left = tmp_path / f".ckpt-000000004.pt.tmp-{dead}-0123abcd"  # a checkpoint write that was killed
    left.write_bytes(b"half")
    with caplog.at_level(logging.WARNING):
        ckpt.lock(tmp_path)
    assert f"pid {dead}" in caplog.text and not left.exists()
    assert json.loads((tmp_path / ckpt.LOCK_FILE).read_text())["pid"] == os.getpid()
    ckpt.lock(tmp_path)  # held by this process already: fine
    ckpt.unlock(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_unlock_leaves_another_holders_lock(tmp_path, other_process):
    _lock_of(tmp_path, other_process.pid)
    ckpt.unlock(tmp_path)
    assert (tmp_path / ckpt.LOCK_FILE).exists()

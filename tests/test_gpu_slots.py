"""Local GPU pinning (`epeflow on-gpus`): concurrent jobs get different devices, hold them until they end,
wait when none is free; CPU jobs see no GPU; under SLURM the allocation is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from epeflow.errors import EpeflowError
from epeflow.gpu_slots import acquire_slots, pinned_env

EPEFLOW = str(Path(sys.executable).parent / "epeflow")


def start(tmp_path: Path, gpus: int, name: str, hold_s: float, devices: str = "4,7") -> subprocess.Popen:
    """`epeflow on-gpus` running a job that records its CUDA_VISIBLE_DEVICES, then holds it `hold_s`."""
    env = {**os.environ, "EPEFLOW_GPU_DEVICES": devices, "EPEFLOW_GPU_LOCK_DIR": str(tmp_path / "locks")}
    env.pop("SLURM_JOB_ID", None)
    job = f"import os, time; open({str(tmp_path / name)!r}, 'w').write(os.environ['CUDA_VISIBLE_DEVICES']); " \
          f"time.sleep({hold_s})"
    return subprocess.Popen([EPEFLOW, "on-gpus", str(gpus), "--", sys.executable, "-c", job], env=env)


def wait_for(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text() != ""):
        assert time.monotonic() < deadline, f"{path.name} never started"
        time.sleep(0.05)
    return path.read_text()


def test_two_concurrent_jobs_get_different_devices_and_a_third_waits(tmp_path):
    a, b = start(tmp_path, 1, "a", 3.0), start(tmp_path, 1, "b", 3.0)
    got = {wait_for(tmp_path / "a"), wait_for(tmp_path / "b")}
    assert got == {"4", "7"}
    c = start(tmp_path, 1, "c", 0.0)
    time.sleep(1.0)
    assert not (tmp_path / "c").exists()  # both devices held: it waits
    assert a.wait(10) == 0 and b.wait(10) == 0
    assert c.wait(20) == 0 and (tmp_path / "c").read_text() in {"4", "7"}


def test_multi_gpu_job_gets_its_own_set(tmp_path):
    two = start(tmp_path, 2, "two", 0.0, devices="0,1,2")
    assert two.wait(20) == 0 and (tmp_path / "two").read_text() == "0,1"


def test_cpu_jobs_see_no_gpu_and_slurm_jobs_keep_their_allocation(tmp_path):
    env, fds = pinned_env({"EPEFLOW_GPU_DEVICES": "0,1"}, 0, tmp_path)
    assert env["CUDA_VISIBLE_DEVICES"] == "" and fds == []
    env, fds = pinned_env({"SLURM_JOB_ID": "5", "CUDA_VISIBLE_DEVICES": "3"}, 1, tmp_path)
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and fds == []
    env, fds = pinned_env({"CUDA_VISIBLE_DEVICES": "5,6"}, 1, tmp_path)  # the user's choice of devices
    assert env["CUDA_VISIBLE_DEVICES"] == "5" and len(fds) == 1
    for fd in fds:
        os.close(fd)


def test_asking_for_more_gpus_than_the_machine_has_says_what_to_change(tmp_path):
    with pytest.raises(EpeflowError, match="train.gpus"):
        acquire_slots(tmp_path, 3, 2)
    held = acquire_slots(tmp_path, 2, 2)
    with pytest.raises(EpeflowError, match="no 1 free GPU slot"):
        acquire_slots(tmp_path, 1, 2, poll_s=0.05, timeout_s=0.2)
    for _, fd in held:
        os.close(fd)
    assert [s for s, _ in acquire_slots(tmp_path, 1, 2)] == [0]

"""Pinning local GPU jobs to their own devices: `epeflow on-gpus N -- command ...`.

Snakemake counts GPUs (`--resources gpu=<n>` with each rule's `gpu` resource) but does not say which device
a job gets, so every job would see all GPUs and start on the first. Each GPU rule's command therefore starts
through this wrapper: it takes the N lowest free slots, a slot being an exclusive `flock` on a file
`slot-<i>.lock` in a folder shared by all jobs of the machine, sets CUDA_VISIBLE_DEVICES to those slots'
devices and `exec`s the command, which inherits the locked descriptors: the slots are held until the
command ends (however it ends: the kernel drops the locks of a dead process) and signals reach the command
itself. When all slots are taken (more jobs than devices, e.g. no `--resources gpu=` limit) it waits.

Nothing is pinned under SLURM (the job's allocation already sets CUDA_VISIBLE_DEVICES) or where the machine
has no GPU; a job asking for 0 GPUs sees none (CUDA_VISIBLE_DEVICES=""), so CPU rules alongside never touch
a device another job holds.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from epeflow.errors import EpeflowError

LOCK_DIR_ENV = "EPEFLOW_GPU_LOCK_DIR"
DEVICES_ENV = "EPEFLOW_GPU_DEVICES"  # comma-separated device ids, overrides detection (and tests use it)


def default_lock_dir() -> Path:
    """One folder per user and machine, so two workflows on one workstation share the slots."""
    return Path(tempfile.gettempdir()) / f"epeflow-gpu-slots-{os.getuid()}"


def visible_devices(env: Mapping[str, str]) -> list[str]:
    """Device ids jobs may be given: EPEFLOW_GPU_DEVICES, else CUDA_VISIBLE_DEVICES as the user set it,
    else one per GPU `nvidia-smi -L` lists (none without the program)."""
    for key in (DEVICES_ENV, "CUDA_VISIBLE_DEVICES"):
        if key in env:
            return [d.strip() for d in env[key].split(",") if d.strip()]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    out = subprocess.run([smi, "-L"], capture_output=True, text=True, check=False).stdout
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def acquire_slots(lock_dir: Path, wanted: int, total: int, poll_s: float = 0.5,
                  timeout_s: float | None = None) -> list[tuple[int, int]]:
    """Lock the `wanted` lowest free slots of `total`; (slot, descriptor) pairs, descriptors left open and
    inheritable. Waits while fewer are free; all or none are held when it returns."""
    if wanted > total:
        raise EpeflowError(f"a job asks for {wanted} GPUs but this machine has {total}; lower `resources.<stage>"
                           ".gpus` (or `train.gpus`) or set EPEFLOW_GPU_DEVICES")
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        held: list[tuple[int, int]] = []
        for slot in range(total):
            fd = os.open(lock_dir / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            held.append((slot, fd))
            if len(held) == wanted:
                for _, d in held:
                    os.set_inheritable(d, True)
                return held
        for _, d in held:  # not enough free: give back the partial set (no two jobs wait on each other)
            os.close(d)
        if deadline is not None and time.monotonic() > deadline:
            raise EpeflowError(f"no {wanted} free GPU slot(s) in {lock_dir} within {timeout_s} s")
        time.sleep(poll_s)


def pinned_env(env: Mapping[str, str], gpus: int, lock_dir: Path | None = None) -> tuple[dict[str, str], list[int]]:
    """The environment a job of `gpus` GPUs runs in, and the descriptors holding its slots (keep them open
    for as long as the job runs)."""
    out = dict(env)
    if "SLURM_JOB_ID" in env:
        return out, []
    if gpus <= 0:
        out["CUDA_VISIBLE_DEVICES"] = ""
        return out, []
    devices = visible_devices(env)
    if not devices:
        return out, []
    held = acquire_slots(lock_dir or Path(env.get(LOCK_DIR_ENV) or default_lock_dir()), gpus, len(devices))
    out["CUDA_VISIBLE_DEVICES"] = ",".join(devices[slot] for slot, _ in held)
    out["EPEFLOW_GPU_SLOTS"] = ",".join(str(slot) for slot, _ in held)
    return out, [fd for _, fd in held]


def exec_on_gpus(gpus: int, command: Sequence[str]) -> None:
    """Replace this process by `command`, pinned to `gpus` free devices (see the module docstring)."""
    if not command:
        raise EpeflowError("on-gpus: give the command after `--`, e.g. `epeflow on-gpus 1 -- epeflow labels ...`")
    env, _fds = pinned_env(os.environ, gpus)
    os.execvpe(command[0], list(command), env)

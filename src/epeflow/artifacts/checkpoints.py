"""Resumable training state: atomic checkpoint files, the fingerprint that says which run they belong to.

A checkpoint is a plain dict of state dicts and plain values (loads with `weights_only=True`): networks,
optimizers, schedulers, RNG states, the pair sampler, the iteration and the loss history. Next to the
files, `run.json` holds the fingerprint of the settings and inputs that determine the run (not the number
of iterations, so a finished run can be extended). A rerun with another fingerprint moves the old files
aside with a log line and starts fresh; it never continues somebody else's run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import socket
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from epeflow.errors import EpeflowError
from epeflow.io import (
    atomic_path,
    load_torch_file,
    process_alive,
    read_json,
    remove_stale_temporaries,
    write_json,
)

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "epeflow-checkpoint/1"
RUN_FILE = "run.json"
LOCK_FILE = "train.lock"
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")


def fingerprint(settings: Mapping[str, Any], inputs: Mapping[str, Any]) -> str:
    """sha256 of what determines the trained weights (settings that do not, such as `iterations`, are
    left out by the caller) and of digests of the inputs."""
    text = json.dumps({"settings": settings, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def array_digest(*arrays: np.ndarray) -> str:
    """Content digest of arrays (dtype, shape and bytes), for fingerprinting tables read into memory."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes() if a.dtype != object else json.dumps(a.tolist(), default=str).encode())
    return h.hexdigest()


def checkpoint_path(directory: Path, iteration: int) -> Path:
    return Path(directory) / f"ckpt-{iteration:09d}.pt"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(iteration, path) of the checkpoints in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def move_aside(directory: Path, reason: str, newer_than: int = -1) -> Path | None:
    """Move checkpoints (those after iteration `newer_than`, or all) and run.json into `stale-<time>/`."""
    directory = Path(directory)
    victims = [p for it, p in list_checkpoints(directory) if it > newer_than]
    if newer_than < 0 and (directory / RUN_FILE).exists():
        victims.append(directory / RUN_FILE)
    if not victims:
        return None
    stale = directory / f"stale-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    stale.mkdir(parents=True)
    for p in victims:
        os.replace(p, stale / p.name)
    log.warning("moved %d old checkpoint file(s) from %s to %s: %s", len(victims), directory, stale, reason)
    return stale


def lock(directory: Path) -> None:
    """Make this process the one training that uses `directory`, or raise naming the one that does.

    The lock file holds the holder's pid, host and start time. A lock whose process is gone (killed, or the
    machine restarted) is taken over with a warning; so is one of this process (a second run in it). The
    temporaries killed checkpoint writers left are removed once the lock is held. `unlock` ends it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    mine = directory / f".{LOCK_FILE}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # swept if we are killed here
    mine.write_text(json.dumps(me))
    try:
        for _ in range(3):
            try:
                os.link(mine, path)  # atomic: fails when a lock exists, never leaves a half-written one
                break
            except FileExistsError:
                _take_over_if_stale(path, me)
        else:
            raise EpeflowError(f"cannot lock {path}: another training keeps taking it; run one training at a time")
    finally:
        mine.unlink()
    remove_stale_temporaries(directory)


def _take_over_if_stale(path: Path, me: Mapping[str, Any]) -> None:
    """Remove the lock at `path` if its holder is gone or is this process; else raise naming the holder."""
    try:
        holder = json.loads(path.read_text())
        pid, host = int(holder["pid"]), str(holder["host"])
    except FileNotFoundError:
        return  # released meanwhile: try again
    except (ValueError, KeyError, TypeError, OSError):
        holder, pid, host = {}, -1, ""
    if pid != -1 and host == me["host"] and process_alive(pid) and pid != me["pid"]:
        raise EpeflowError(
            f"another training (pid {pid}, since {holder.get('since', '?')}) is using {path.parent}; wait for it "
            f"to finish or stop it (`kill {pid}`); two trainings on one checkpoint folder would overwrite each "
            "other's checkpoints"
        )
    if pid != -1 and host != me["host"]:
        raise EpeflowError(
            f"a training on host {host} (pid {pid}, since {holder.get('since', '?')}) holds {path}; if it is no "
            f"longer running, delete {path} and rerun"
        )
    if pid != me["pid"]:
        log.warning("taking over %s from a training that is gone (pid %s, since %s)", path,
                    pid if pid != -1 else "?", holder.get("since", "?"))
    path.unlink(missing_ok=True)


def unlock(directory: Path) -> None:
    """Release the lock `lock` took (only if this process holds it)."""
    path = Path(directory) / LOCK_FILE
    try:
        holder = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


def claim(directory: Path, fp: str, describe: Mapping[str, Any]) -> None:
    """Make `directory` hold only checkpoints of the run with fingerprint `fp` (moving others aside)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    run_file = directory / RUN_FILE
    if run_file.exists():
        old = read_json(run_file)
        if old.get("fingerprint") == fp:
            return
        changed = _changed_keys(old.get("describe", {}), describe)
        move_aside(directory, f"they belong to another run (changed: {', '.join(changed) or 'unknown'}); "
                              "starting fresh")
    elif list_checkpoints(directory):
        move_aside(directory, f"{run_file} is missing, so they cannot be matched to this run; starting fresh")
    write_json(run_file, {"fingerprint": fp, "describe": dict(describe)})


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            keys += _changed_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.append(prefix + k)
    return keys


def save_checkpoint(directory: Path, state: Mapping[str, Any], keep: int) -> Path:
    """Write `state` atomically as ckpt-<iteration>.pt, then delete all but the `keep` newest."""
    path = checkpoint_path(directory, int(state["iteration"]))
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)
    for _, old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    """One checkpoint file, checked to be an epeflow training checkpoint."""
    state = load_torch_file(path, "checkpoint", "list results/<exp>/checkpoints/ for ckpt-*.pt",
                            "use another ckpt-*.pt")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise EpeflowError(f"{path} is not an epeflow training checkpoint (format {CHECKPOINT_FORMAT!r})")
    return state


def load_latest(directory: Path, fp: str, max_iteration: int) -> dict[str, Any] | None:
    """The newest readable checkpoint of run `fp` at or before `max_iteration`, or None to start fresh.

    Checkpoints past `max_iteration` (the run was longer before) are moved aside, since the continued
    run would write over their iterations.
    """
    candidates = list_checkpoints(directory)
    if any(it > max_iteration for it, _ in candidates):
        move_aside(directory, f"they are past the requested {max_iteration} iterations", newer_than=max_iteration)
    for iteration, path in reversed([c for c in candidates if c[0] <= max_iteration]):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a truncated or foreign file: fall back to the one before
            log.warning("cannot read checkpoint %s (%s); trying an older one", path, e)
            continue
        if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != fp:
            raise EpeflowError(
                f"checkpoint {path} does not belong to this run although {Path(directory) / RUN_FILE} says so; "
                "delete the checkpoint directory to start fresh"
            )
        log.info("resuming from %s (iteration %d)", path, iteration)
        return state
    return None


# --- random number generator states as plain values --------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and python RNG states, in types `weights_only` loading accepts."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "torch": torch.random.get_rng_state(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.random.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value

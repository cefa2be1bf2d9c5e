"""Chunked outputs that survive a kill: a `.partial` folder beside the output, and a record of what is done.

Crops and k-NN stores are written front to back in whole row chunks. While a stage writes `<out>`, the
store grows in `<out>.partial/<out name>` and `<out>.partial/progress.json` records the stage's
fingerprint (a JSON description of its settings and the inputs' contents) and how many chunks are
written. A rerun with the same fingerprint continues at the first chunk not recorded; a rerun with
another one starts fresh and logs which keys changed. `finish` renames the store into place, so `<out>`
only ever holds a complete store. Snakemake does not know the `.partial` folder and leaves it alone.

Test hook: with `EPEFLOW_STOP_AFTER_CHUNKS=N` in the environment a stage stops with an error after it
recorded N chunks in this run, as if killed there (the tests use it to check that a rerun resumes to the
same bytes). Never set it in a real run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from epeflow.errors import EpeflowError
from epeflow.io import PathLike, read_json, write_json

log = logging.getLogger(__name__)

FORMAT = "epeflow-chunk-progress/1"
STOP_AFTER_ENV = "EPEFLOW_STOP_AFTER_CHUNKS"
RECORD = "progress.json"


class StoppedForTest(EpeflowError):
    """Raised by the `EPEFLOW_STOP_AFTER_CHUNKS` test hook."""


def digest(value: Any) -> str:
    """sha256 of a JSON-able value (for fingerprint entries too long to keep in the record)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def store_digest(path: PathLike) -> str:
    """Digest of a finished store's files (relative path, size, modification time; nothing is read): a store
    rewritten by its stage (renamed into place, so every file is new) gets another digest."""
    root = Path(path)
    facts = [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
             for p in sorted(root.rglob("*")) if p.is_file()]
    return digest(facts)


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested descriptions."""
    keys: list[str] = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            keys += changed_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.append(prefix + k)
    return keys


def stop_after() -> int | None:
    """N of the `EPEFLOW_STOP_AFTER_CHUNKS` test hook, None when it is not set."""
    value = os.environ.get(STOP_AFTER_ENV)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise EpeflowError(f"environment variable {STOP_AFTER_ENV}={value!r} is not a number (a test hook; "
                           "unset it)") from None


class ChunkProgress:
    """The resumable build of one chunked output `out` (a zarr store), identified by `fingerprint`."""

    def __init__(self, out: PathLike, fingerprint: Mapping[str, Any], what: str) -> None:
        self.out = Path(out)
        self.partial = self.out.with_name(self.out.name + ".partial")
        self.store = self.partial / self.out.name  # the store being built (keeps its name and suffix)
        self.record = self.partial / RECORD
        self.fingerprint = json.loads(json.dumps(dict(fingerprint), sort_keys=True, default=str))
        self.what = what
        self.done = 0
        self._stop_after = stop_after()
        self._done_here = 0

    def start(self) -> int:
        """Chunks an earlier run with this fingerprint recorded (0 when starting fresh, the folder cleared)."""
        old = self._read_record()
        if old is not None and old.get("fingerprint") == self.fingerprint and self.store.exists():
            self.done = int(old.get("done", 0))
            if self.done:
                log.info("resuming %s %s at chunk %d (the chunks before were written by a killed run with the "
                         "same inputs and settings)", self.what, self.out, self.done)
            return self.done
        if old is not None:
            changed = changed_keys(old.get("fingerprint", {}), self.fingerprint)
            log.warning("partial %s %s was built from other inputs or settings (changed: %s); starting fresh",
                        self.what, self.partial, ", ".join(changed) or "unknown")
        elif self.partial.exists() and any(self.partial.iterdir()):
            log.warning("partial %s %s has no readable %s; starting fresh", self.what, self.partial, RECORD)
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        self.done = 0
        self._write()
        return 0

    def _read_record(self) -> dict[str, Any] | None:
        if not self.record.exists():
            return None
        try:
            old = read_json(self.record)
        except EpeflowError:
            return None
        return old if isinstance(old, dict) and old.get("format") == FORMAT else None

    def _write(self) -> None:
        write_json(self.record, {"format": FORMAT, "fingerprint": self.fingerprint, "done": self.done})

    def mark_done(self, chunks: int) -> None:
        """Record that the first `chunks` chunks are in the store (call after their bytes are written)."""
        if chunks <= self.done:
            return
        self._done_here += chunks - self.done
        self.done = chunks
        self._write()
        if self._stop_after is not None and self._done_here >= self._stop_after:
            raise StoppedForTest(f"{self.what} {self.out}: stopped after {self._done_here} chunk(s) because "
                                 f"{STOP_AFTER_ENV} is set (a test hook; unset it for real runs)")

    def finish(self) -> None:
        """Move the finished store to `out` (replacing an old one) and remove the `.partial` folder."""
        if self.out.exists():
            shutil.rmtree(self.out) if self.out.is_dir() else self.out.unlink()
        os.replace(self.store, self.out)
        shutil.rmtree(self.partial, ignore_errors=True)

"""Frame features of one evaluate run kept per frame set, so a killed evaluate redoes only the sets it had
not finished.

The cache is a folder (`<metrics.json>.partial/` beside the output; Snakemake does not know it and leaves it
across a kill): per set `<name>.npy` (the features) and `<name>.json` (the key it was computed for: a JSON
description of the set's files and the settings and weights that shape the features). A key that differs
is a miss and the entry is recomputed; the evaluate CLI removes the folder once metrics.json is written.
The `EPEFLOW_STOP_AFTER_CHUNKS=N` test hook (see `chunk_progress`) stops after N sets were stored.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from epeflow.artifacts.chunk_progress import STOP_AFTER_ENV, StoppedForTest, stop_after
from epeflow.errors import EpeflowError
from epeflow.io import PathLike, atomic_path, read_json, write_json

log = logging.getLogger(__name__)

FORMAT = "epeflow-feature-cache/1"


class FeatureCache:
    """Arrays by name in `folder`, each valid for one key."""

    def __init__(self, folder: PathLike) -> None:
        self.folder = Path(folder)
        self._stop_after = stop_after()
        self._stored = 0

    def _plain(self, key: Mapping[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps({"format": FORMAT, **key}, sort_keys=True, default=str))

    def get(self, name: str, key: Mapping[str, Any]) -> np.ndarray | None:
        """The array stored under `name` for this `key`, or None (absent, another key, unreadable)."""
        meta, data = self.folder / f"{name}.json", self.folder / f"{name}.npy"
        if not meta.exists() or not data.exists():
            return None
        try:
            stored = read_json(meta)
            if stored != self._plain(key):
                log.info("cached %s features in %s were computed from other frames or settings; recomputing",
                         name, self.folder)
                return None
            array = np.load(data, allow_pickle=False)
        except (EpeflowError, OSError, ValueError) as e:
            log.warning("cached %s features in %s are unreadable (%s); recomputing", name, self.folder, e)
            return None
        log.info("reusing the %s features a killed run computed (%s)", name, data)
        return array

    def put(self, name: str, key: Mapping[str, Any], array: np.ndarray) -> None:
        """Store `array` under `name` (the array first, then its key: a kill in between leaves a miss)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{name}.json").unlink(missing_ok=True)
        with atomic_path(self.folder / f"{name}.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, np.asarray(array), allow_pickle=False)
        write_json(self.folder / f"{name}.json", self._plain(key))
        self._stored += 1
        if self._stop_after is not None and self._stored >= self._stop_after:
            raise StoppedForTest(f"feature cache {self.folder}: stopped after {self._stored} set(s) because "
                                 f"{STOP_AFTER_ENV} is set (a test hook; unset it for real runs)")

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

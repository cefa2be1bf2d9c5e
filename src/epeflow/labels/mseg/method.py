"""MSeg as a labelling method of the labels stage (see epeflow.artifacts.labels).

The writer hands over the frames still to label and writes each map as it arrives, so a killed job
resumes; here frames are decoded ahead on a thread pool while the network labels the current one
(its windows batched on the GPU).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from epeflow import io
from epeflow.labels.mseg.inference import MsegLabeler

log = logging.getLogger(__name__)


def mseg_method(
    spec: Mapping[str, Any], weights: Mapping[str, Any], allow_random: bool, threads: int = 1
):
    """(method, random_weights, settings) for `labels: mseg`; method(frames) yields one (H, W) uint8 map per row.

    `settings` (the labeler's `describe()`) is what the writer resumes by and records in labels.json.
    """
    labeler = MsegLabeler.from_config(spec, weights, allow_random)
    log.info("MSeg on %s: %s", labeler.device, labeler.describe())

    def method(frames: pd.DataFrame) -> Iterator[np.ndarray]:
        paths = frames["path"].astype(str).tolist()
        ahead = max(1, threads) * 2  # decoded frames waiting for the network, bounded
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for start in range(0, len(paths), ahead):
                for rgb in pool.map(io.read_image, paths[start : start + ahead]):
                    yield labeler(rgb)

    return method, labeler.random_weights, labeler.describe()

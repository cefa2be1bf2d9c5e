"""Per-dataset RGB mean/std that normalise VGG16's input for crop features (as the reference).

The reference averages, over up to 1000 shuffled frames, each frame's per-channel mean and per-channel
(unbiased) standard deviation of the image in [0, 1]. We draw the frames with a seeded permutation so
the statistics, and therefore every crop feature, are reproducible.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from epeflow.artifacts.crop_stats import write_crop_stats
from epeflow.artifacts.manifest import read_frames, read_manifest_meta
from epeflow.config import validate_section
from epeflow.errors import EpeflowError
from epeflow.io import PathLike, read_image
from epeflow.log import progress

log = logging.getLogger(__name__)


def check_frames_fit(frames: pd.DataFrame, size: int, dataset: str | None = None) -> None:
    """Every frame at least `size` on both sides (a crop must fit), else an error naming the frames."""
    small = frames[(frames["height"] < size) | (frames["width"] < size)]
    if len(small):
        listed = "; ".join(f"{r.id} ({r.path}, {r.height}x{r.width})" for r in small.head(5).itertuples())
        which = "" if dataset is None else f"dataset {dataset!r}: "
        raise EpeflowError(
            f"{which}{len(small)} frame(s) are smaller than the crop size {size}: {listed}. "
            f"Lower config key `datasets.{dataset or '<dataset>'}.crops.size` or remove these frames"
        )


def image_mean_std(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and unbiased std of a uint8 (H, W, 3) image scaled to [0, 1]; float64 (3,) each."""
    pixels = image.reshape(-1, image.shape[-1])[:, :3].astype(np.float64) / 255.0  # (H*W, 3)
    ddof = 1 if len(pixels) > 1 else 0
    return pixels.mean(axis=0), pixels.std(axis=0, ddof=ddof)


def choose_stats_frames(num_frames: int, count: int, seed: int) -> np.ndarray:
    """Up to `count` frame ids drawn without replacement by a seeded shuffle, sorted for sequential reads."""
    order = np.random.default_rng(seed).permutation(num_frames)
    return np.sort(order[: min(count, num_frames)])


def combine_stats(means: Sequence[np.ndarray], stds: Sequence[np.ndarray]) -> dict[str, Any]:
    """Mean over frames of the per-frame means and stds (the reference's estimator)."""
    return {
        "mean": np.mean(np.stack(means), axis=0).tolist(),
        "std": np.mean(np.stack(stds), axis=0).tolist(),
        "frames": len(means),
    }


def frames_mean_std(
    paths: Sequence[PathLike], frames: Sequence[int], threads: int = 1, desc: str = "RGB mean/std"
) -> dict[str, Any]:
    """The reference's RGB statistics over the chosen `frames` of `paths`, decoded in a thread pool."""

    def one(frame: int) -> tuple[np.ndarray, np.ndarray]:
        return image_mean_std(read_image(paths[frame]))

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # PIL decodes without the GIL
        results = list(progress(pool.map(one, [int(f) for f in frames]), desc, total=len(frames), unit="frame"))
    return combine_stats([m for m, _ in results], [s for _, s in results])


def compute_crop_stats(paths: Sequence[PathLike], stats_frames: int, seed: int, threads: int = 1) -> dict[str, Any]:
    """crop_stats.json content for a dataset whose frames are `paths` (in frame order)."""
    if len(paths) == 0:
        raise ValueError("no frames to compute crop statistics from")
    chosen = choose_stats_frames(len(paths), stats_frames, seed)
    log.info("RGB mean/std from %d of %d frames (seed %d)", len(chosen), len(paths), seed)
    stats = frames_mean_std(paths, chosen, threads, "crop stats")
    log.info("mean %s std %s", np.round(stats["mean"], 4).tolist(), np.round(stats["std"], 4).tolist())
    return stats


def run_crop_stats(manifest: PathLike, out: PathLike, spec: Mapping[str, Any], threads: int = 1) -> dict[str, Any]:
    """`epeflow crop-stats`: crop_stats.json of the dataset in `manifest` (crops section in `spec`)."""
    checked = validate_section("crops", spec, ("datasets", "<dataset>", "crops"))  # a wrong type names its key
    frames = read_frames(manifest)
    if len(frames) == 0:
        raise EpeflowError(f"manifest {manifest} has no frames; check the dataset's folder / file list")
    if "size" in spec:  # before any stage that reads pixels for crops, which would fail hours later
        check_frames_fit(frames, checked["size"], read_manifest_meta(manifest).get("dataset", str(manifest)))
    stats = compute_crop_stats(frames["path"].tolist(), checked["stats_frames"], checked["seed"], threads)
    write_crop_stats(out, stats)
    return stats

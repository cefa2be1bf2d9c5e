"""What each job asks the scheduler for (the config's `resources:` section), sized to the job's work.

The rules take their `threads` and `resources` from here, so a cluster user sets partitions, accounts and
sizes in the config instead of the profile, and nothing is hard-coded in a rule:
- `gpu` (the SLURM plugin's `--gpus`, and what `--resources gpu=<n>` counts locally): the stage's need,
  0 where the stage runs on the CPU (`device: cpu`, `labels: gt`, `gbuffers: real`), `train.gpus` for
  training;
- `mem_mb` and `runtime`: a base plus a part per 1000 frames of the job; a null base leaves the key to the
  profile's `default-resources`;
- `slurm_partition`, `slurm_account`, `slurm_extra`: the stage's, else `resources.default`'s, else unset
  (the profile's `default-resources` or the plugin's guess).
Training asks for one node (`nodes: 1`, its GPUs share one torchrun) and for SIGTERM `TRAIN_SIGNAL_LEAD_S`
before its time limit, so it checkpoints and the profile's retry resumes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from epeflow.config import load_schema

TRAIN_SIGNAL_LEAD_S = 300
SLURM_KEYS = ("slurm_partition", "slurm_account", "slurm_extra")
# Stages with their own `resources.<stage>` entry; every other rule uses `resources.default`.
STAGES = ("default", "labels", "gbuffers", "crops", "knn", "train", "enhance", "evaluate")


def stage_defaults(stage: str) -> dict[str, Any]:
    """The schema's default entry of `resources.<stage>` (the values a partial user entry is merged onto)."""
    return dict(load_schema()["definitions"]["resources"]["properties"][stage]["default"])


def stage_settings(config: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """`resources.<stage>` of a validated config over the stage's defaults (keys the user left out or set
    to null keep the default, except the nullable base sizes, where null means "the profile's")."""
    given = dict(config.get("resources", {}).get(stage, {}))
    return {**stage_defaults(stage), **given}


def scaled(base: float | None, per_1000: float, frames: int) -> int | None:
    """`base + per_1000 * frames / 1000` rounded up; None (the profile's default) when `base` is None."""
    if base is None:
        return None
    return int(math.ceil(base + per_1000 * frames / 1000))


def job_gpus(settings: Mapping[str, Any], need: int) -> int:
    """GPUs a job asks for: `gpus` when set, else the stage's `need` (0 when it runs on the CPU)."""
    return need if settings.get("gpus") is None else int(settings["gpus"])


def job_resources(config: Mapping[str, Any], stage: str, *, frames: int, need_gpus: int) -> dict[str, Any]:
    """Snakemake resources of one job of `stage` that handles `frames` frames and needs `need_gpus` GPUs
    (its device and method decide; 0 on the CPU). Keys with no value are left out, so the profile's
    `default-resources` apply to them."""
    own = stage_settings(config, stage)
    fallback = stage_settings(config, "default")
    gpus = job_gpus(own, need_gpus)
    per_gpu = max(1, gpus) if stage == "train" else 1  # training sizes are per GPU (one process each)
    res: dict[str, Any] = {
        "gpu": gpus,
        "mem_mb": scaled(own["mem_mb"], own["mem_mb_per_1000_frames"], frames),
        "runtime": scaled(own["runtime"], own["runtime_per_1000_frames"], frames),
    }
    if res["mem_mb"] is not None:
        res["mem_mb"] *= per_gpu
    for key in SLURM_KEYS:
        res[key] = own.get(key) or fallback.get(key)
    if stage == "train":
        res["nodes"] = 1
        res["slurm_extra"] = " ".join(filter(None, [f"--signal=TERM@{TRAIN_SIGNAL_LEAD_S}", res["slurm_extra"]]))
    return {k: v for k, v in res.items() if v is not None}


def job_threads(config: Mapping[str, Any], stage: str, gpus: int = 1) -> int:
    """CPU cores of a job (`cpus`; per GPU for training)."""
    cpus = int(stage_settings(config, stage)["cpus"])
    return cpus * max(1, gpus) if stage == "train" else cpus


def _split_fraction(split: Mapping[str, Any], which: str) -> float:
    if which == "all":
        return 1.0
    if which == "train":
        return max(0.0, 1.0 - split["val"] - split["test"])
    return float(split[which])


def split_frames(frames: int, dataset: Mapping[str, Any], which: str, max_frames: int | None = None) -> int:
    """Expected frames of a dataset's split (`train` / `val` / `test` / `all`), capped by `max_frames`:
    the split is drawn by hash, so this is its expected size, close enough for sizing a job."""
    n = int(math.ceil(frames * _split_fraction(dataset["split"], which)))
    return min(n, max_frames) if max_frames else n


def dataset_frames(dataset: Mapping[str, Any], listing: str = "") -> int:
    """Frames of a (validated) dataset entry at plan time: a demo's `frames`, else the count that starts its
    listing fingerprint (`"<n> frames <digest>"`, epeflow.datasets.fingerprint), capped by `max_frames`;
    1000 when neither says (a dataset that cannot be listed fails in its manifest job anyway)."""
    if "demo" in dataset:
        n = int(dataset["demo"]["frames"])
    else:
        head = listing.split(" ", 2)
        n = int(head[0]) if len(head) > 1 and head[0].isdigit() and head[1] == "frames" else 1000
    return min(n, dataset["max_frames"]) if dataset.get("max_frames") else n

"""Evaluation of two image folders outside the workflow: `epeflow evaluate --real DIR --fake DIR`.

For frames made by any method (another enhancer, a paper's released outputs): the same metric functions
as the evaluate stage, comparing the one `fake` set with the real set, with the same provenance. Metrics that
need what only the workflow has are recorded as skipped with the reason: LPIPS needs each fake frame's
rendered source, and the baselines need the rendered frames. sKVD / cKVD need label maps of both folders
(`--labels FAKE_LABELS REAL_LABELS`: `<image stem>.png` maps with a labels.json, as `epeflow labels` writes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from epeflow.common.device import select_device
from epeflow.errors import EpeflowError
from epeflow.metrics import records
from epeflow.metrics.context import EvalContext
from epeflow.metrics.evaluate import check_kid_subset_size, run_metrics
from epeflow.metrics.frames import EvalFrames
from epeflow.provenance import RANDOM_WEIGHTS_WARNING, stamp

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
NEEDS_SOURCES = {
    "lpips": "needs each fake frame's rendered source (the workflow's evaluate stage has it)",
    "tof": "needs each fake frame's rendered source and the frames' sequences (the workflow's manifests)",
    "tlp": "needs each fake frame's rendered source and the frames' sequences (the workflow's manifests)",
    "semantic_consistency": "needs the label maps of the rendered sources and of the fake frames (the workflow's "
                            "labels stage)",
}


def image_files(folder: Path, what: str) -> list[Path]:
    """Image files directly in `folder`, sorted by name; an error naming the option when there are none."""
    if not folder.is_dir():
        raise EpeflowError(f"{what} folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise EpeflowError(f"{what} folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    stems = [p.stem for p in files]
    if len(set(stems)) != len(stems):
        raise EpeflowError(f"{what} folder {folder} has two images with one name stem; label maps are found by stem")
    return files


def run_evaluate_folders(
    real: Path,
    fake: Path,
    settings: Mapping[str, Any],
    weights: Mapping[str, Any] | None,
    allow_random: bool,
    threads: int = 1,
    device: torch.device | None = None,
    labels: tuple[Path, Path] | None = None,
) -> dict[str, Any]:
    """The metrics.json document comparing the images of `fake` with those of `real` (settings: a validated
    `evaluate` section; `labels`: label folders of fake and real, for sKVD / cKVD)."""
    settings = dict(settings)
    fake_files, real_files = image_files(Path(fake), "--fake"), image_files(Path(real), "--real")
    frames = EvalFrames([p.stem for p in fake_files], fake_files, fake_files, [p.stem for p in real_files],
                        real_files, enhanced_random=False)
    log.info("evaluating %d fake images against %d real images", len(fake_files), len(real_files))
    device = device or select_device(settings["device"])
    check_kid_subset_size(settings, len(fake_files), len(real_files))
    ctx = EvalContext(frames, settings, dict(weights or {}), allow_random, device, threads, labels, None,
                      sides=("enhanced",))
    computed = run_metrics(ctx, [name for name in settings["metrics"] if name not in NEEDS_SOURCES])
    metrics = {name: computed.get(name) or {"skipped": NEEDS_SOURCES[name]} for name in settings["metrics"]}
    random = bool(ctx.random_models)
    doc: dict[str, Any] = {
        "metrics": metrics,
        "frames": {"enhanced": len(fake_files), "real": len(real_files)},
        "compared": {"enhanced": f"fake images ({fake})"},
        "settings": settings,
        "random_weights": random,
    }
    if random:
        doc["warning"] = RANDOM_WEIGHTS_WARNING
    doc["provenance"] = stamp(random, random_models=ctx.random_models, real=str(real), fake=str(fake),
                              labels=[str(p) for p in labels] if labels else None, device=str(device),
                              libraries=records.libraries())
    return doc


"""Semantic consistency: does enhancement keep what is where? mIoU between robust labels before and after.

MSeg labels each rendered frame and its enhanced version (and the colour-transfer baseline); the mIoU of
the enhanced frame's labels against the rendered frame's labels, accumulated over all frames, says how much
of the scene's layout a segmenter still finds (1 = the same labels). The rendered frame's labels are taken
from the source dataset's labels folder when that was made by MSeg with real weights (the same settings are
then used for the enhanced frames), else MSeg labels the rendered frames here too.

With random MSeg weights the labels are noise and the number would mean nothing, so the metric is skipped
with that reason, whether or not random weights are allowed for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from epeflow.artifacts.labels import read_label_map, read_labels_info
from epeflow.common.taxonomy import NUM_UNIVERSAL_CLASSES, UNLABELED, universal_names
from epeflow.errors import EpeflowError
from epeflow.io import read_image, read_json
from epeflow.log import progress
from epeflow.metrics import records
from epeflow.metrics.baselines import SIDES
from epeflow.metrics.context import EvalContext, MetricUnavailable
from epeflow.weights import resolve_weights, sha256_of

log = logging.getLogger(__name__)

Labeler = Callable[[np.ndarray], np.ndarray]  # (H, W, 3) uint8 RGB -> (H, W) uint8 universal ids


def confusion(reference: np.ndarray, labels: np.ndarray, num_classes: int = NUM_UNIVERSAL_CLASSES,
              ignore: int = UNLABELED) -> np.ndarray:
    """(C, C + 1) int64 pixel counts: row = reference class, column = class in `labels` (column C: `ignore`
    or out of range). Pixels whose reference is `ignore` are left out."""
    if reference.shape != labels.shape:
        raise ValueError(f"label maps differ in size: {reference.shape} vs {labels.shape}")
    ref, lab = reference.ravel().astype(np.int64), labels.ravel().astype(np.int64)
    keep = (ref != ignore) & (ref < num_classes)
    ref, lab = ref[keep], lab[keep]
    lab = np.where((lab == ignore) | (lab >= num_classes), num_classes, lab)
    counts = np.bincount(ref * (num_classes + 1) + lab, minlength=num_classes * (num_classes + 1))
    return counts.reshape(num_classes, num_classes + 1)


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    """(C,) IoU of each class from a `confusion` matrix; NaN for classes in neither map."""
    c = conf.shape[0]
    intersection = np.diag(conf[:, :c]).astype(np.float64)
    union = conf.sum(axis=1) + conf[:, :c].sum(axis=0) - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, intersection / np.maximum(union, 1), np.nan)


def mean_iou(conf: np.ndarray) -> float:
    """Mean IoU over the classes present in either map (NaN when none is)."""
    iou = iou_per_class(conf)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def consistency(reference: Sequence[np.ndarray], frames: Sequence[Path], labeler: Labeler,
                desc: str = "labels") -> dict[str, Any]:
    """mIoU of `labeler` on each frame against its reference map: accumulated over frames, and per frame."""
    total = np.zeros((NUM_UNIVERSAL_CLASSES, NUM_UNIVERSAL_CLASSES + 1), dtype=np.int64)
    per_frame = []
    for ref, path in progress(list(zip(reference, frames, strict=True)), desc, unit="frame"):
        labels = labeler(read_image(path))
        if labels.shape != ref.shape:
            raise EpeflowError(f"frame {path} is {labels.shape[1]}x{labels.shape[0]} but its rendered frame's labels "
                               f"are {ref.shape[1]}x{ref.shape[0]}; enhanced frames must keep the size")
        c = confusion(ref, labels)
        total += c
        per_frame.append(mean_iou(c))
    iou = iou_per_class(total)
    names = universal_names()
    return {"miou": mean_iou(total), "per_frame_mean": float(np.nanmean(per_frame)) if per_frame else None,
            "n": len(per_frame),
            "per_class_iou": {names[k]: round(float(v), 6) for k, v in enumerate(iou) if np.isfinite(v)}}


def _mseg_labeler(ctx: EvalContext) -> tuple[Any, dict[str, Any], Path | None]:
    """(labeler, its settings, the source labels folder to reuse or None); MetricUnavailable without weights."""
    try:
        path = resolve_weights("mseg", ctx.weights.get("mseg"), allow_random=False)
    except EpeflowError as e:
        raise MetricUnavailable(f"needs real MSeg weights to label rendered and enhanced frames ({e}); random "
                                "weights would label noise, so it is not computed") from None
    from epeflow.labels.mseg.inference import MsegLabeler, MsegSettings

    reuse, spec = None, None
    if ctx.labels is not None:
        folder = ctx.labels[0]
        try:
            info = read_labels_info(folder)
        except EpeflowError:
            info = {"method": None}
        if info["method"] == "mseg" and not info.get("random_weights"):
            settings = read_json(Path(folder) / "labels.json").get("settings") or {}
            spec = {k: settings[k] for k in ("base_size", "scales", "crop", "flip") if k in settings}
            reuse = Path(folder)
    labeler = MsegLabeler(MsegSettings.from_spec(spec, "mseg"), ctx.weights.get("mseg"), False,
                          ctx.settings["device"])
    record = {**labeler.describe(), "weights": {"file": str(path), "sha256": sha256_of(path)}}
    return labeler, record, reuse


def semantic_consistency_metric(ctx: EvalContext) -> dict[str, Any]:
    """mIoU of MSeg labels of each compared set against those of the rendered frames (higher keeps more)."""
    labeler, mseg, reuse = _mseg_labeler(ctx)
    frames = ctx.frames
    if reuse is not None:
        reference = [read_label_map(reuse, i) for i in frames.ids]
    else:
        reference = [labeler(read_image(p)) for p in progress(frames.source, "MSeg (rendered)", unit="frame")]
    result: dict[str, Any] = {
        "description": "semantic consistency: mIoU of MSeg labels of each frame against those of its rendered "
                       "frame (1 = layout kept)",
        "lower_is_better": False,
    }
    for side in SIDES:
        if side == "identity":
            result[side] = {"value": 1.0, "n": len(frames.ids), "computed": False}
            continue
        r = consistency(reference, ctx.paths(side), labeler, f"MSeg ({side})")
        result[side] = {"value": r.pop("miou"), **r}
    result["provenance"] = {
        "labeler": mseg, "rendered_labels": f"the source labels folder {reuse} (MSeg, real weights)" if reuse
        else "MSeg run here on the rendered frames",
        "estimator": "IoU per class from pixel counts accumulated over all frames (intersection / union), mean "
                     "over classes present in either labelling; pixels unlabeled in the rendered frame's labels "
                     "left out, unlabeled pixels of the compared frame count as wrong",
        "input": "frames at their own size, uint8 RGB (Pillow), MSeg's own resize and windows",
        "samples": {k: v for k, v in records.samples(ctx).items() if k != "real"},
        "classes": f"MSeg universal taxonomy ({NUM_UNIVERSAL_CLASSES} classes, {UNLABELED} = unlabeled)",
    }
    return result

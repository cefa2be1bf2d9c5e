"""The evaluate stage: how real enhanced frames look, next to two baselines computed with the same code.

Every metric is computed for the enhanced frames and for the baselines of `epeflow.metrics.baselines`:
the rendered frames as they are (`identity`) and their Reinhard colour transfer towards the real set.

Each metric is a small function of an `EvalContext`, which computes once what metrics share (models,
VGG16 frame features, sKVD's crops); FID-Inception or temporal metrics are one more entry in `METRICS`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from epeflow.artifacts.feature_cache import FeatureCache
from epeflow.common.device import select_device
from epeflow.common.lpips import LPIPS
from epeflow.log import progress
from epeflow.metrics import records
from epeflow.metrics.baselines import SIDE_TITLES, SIDES
from epeflow.metrics.consistency import semantic_consistency_metric
from epeflow.metrics.context import EvalContext, MetricUnavailable
from epeflow.metrics.frame_features import EMBEDDING_LAYER, autocast, to_model_input
from epeflow.metrics.frames import collect_frames, load_rgb, prefetch, resize_short_side, same_size_batches
from epeflow.metrics.kid import FrechetDistanceError, fid, kid, resolve_subset_size
from epeflow.metrics.semantic import ckvd_metric, skvd_metric
from epeflow.metrics.swd import swd_lab_many, swd_many
from epeflow.metrics.temporal import tlp_metric, tof_metric
from epeflow.provenance import RANDOM_WEIGHTS_WARNING, stamp

log = logging.getLogger(__name__)

FEATURES = f"vgg16_{EMBEDDING_LAYER}_mean"


KID_SUBSET_SIZE_KEY = "evaluate.kid_subset_size"


def kid_vgg(ctx: EvalContext) -> dict[str, Any]:
    """KID of enhanced vs real frames and of each baseline vs real frames (lower is more realistic)."""
    ctx.require_frames()
    real = ctx.vgg_features("real")
    s = ctx.settings
    result: dict[str, Any] = {"description": "KID on VGG16 frame features vs real frames", "lower_is_better": True}
    for side in SIDES:
        result[side] = kid(ctx.vgg_features(side), real, s["kid_subsets"], s["kid_subset_size"], s["kid_seed"],
                           key=KID_SUBSET_SIZE_KEY).as_dict()
    result["features"] = FEATURES
    result["provenance"] = records.kid_record(ctx)
    return result


def fid_vgg(ctx: EvalContext) -> dict[str, Any]:
    """Fréchet distance on the same features (biased for few frames; an extra next to KID).

    A side whose covariances give no real square root (pytorch-fid's error) records that error instead.
    """
    ctx.require_frames()
    real = ctx.vgg_features("real")
    result: dict[str, Any] = {"description": "Fréchet distance on VGG16 frame features vs real frames",
                              "lower_is_better": True}
    for side in SIDES:
        try:
            result[side] = fid(ctx.vgg_features(side), real).as_dict()
        except FrechetDistanceError as e:
            log.warning("fid_vgg (%s): %s", side, e)
            result[side] = {"skipped": str(e)}
    result["features"] = FEATURES
    result["provenance"] = records.fid_record(ctx)
    return result


@torch.no_grad()
def lpips_per_frame(
    model: LPIPS, source: list[Path], enhanced: list[Path], short_side: int, threads: int = 1, batch_size: int = 8
) -> np.ndarray:
    """LPIPS between each source frame and its enhanced version, (N,) float64.

    A source frame of another size than its enhanced frame is resized to it first.
    """
    device = next(model.parameters()).device

    def load(pair: tuple[Path, Path]) -> tuple[torch.Tensor, torch.Tensor]:
        src, enh = load_rgb(pair[0]), load_rgb(pair[1])  # (3, H, W) each
        if src.shape != enh.shape:
            src = torch.nn.functional.interpolate(
                src[None], size=enh.shape[-2:], mode="bilinear", antialias=True, align_corners=False
            )[0]
        return resize_short_side(src, short_side), resize_short_side(enh, short_side)

    pairs = progress(list(zip(source, enhanced, strict=True)), desc="LPIPS source vs enhanced", unit="frame")
    values: list[np.ndarray] = []
    for src, enh in same_size_batches(prefetch(load, pairs, threads), batch_size):
        src, enh = to_model_input(src, device), to_model_input(enh, device)
        with autocast(device):
            values.append(model(src, enh).double().cpu().numpy())
    return np.concatenate(values)


def lpips_source_enhanced(ctx: EvalContext) -> dict[str, Any]:
    """How much each compared set changed the rendered frames (LPIPS; identity is 0); content should survive."""
    result: dict[str, Any] = {
        "description": "LPIPS between each rendered frame and its enhanced (or baseline) version: how much changed",
        "lower_is_better": None,
    }
    for side in SIDES:
        if side == "identity":  # the rendered frames against themselves: 0 by definition, not worth a pass
            n = len(ctx.frames.source)
            result[side] = {"mean": 0.0, "std": 0.0, "n": n, "computed": False}
            continue
        d = lpips_per_frame(ctx.lpips(), ctx.frames.source, ctx.paths(side), ctx.settings["short_side"], ctx.threads,
                            ctx.settings["batch_size"])
        result[side] = {"mean": float(d.mean()), "std": float(d.std()), "n": len(d)}
    result["provenance"] = records.lpips_record(ctx)
    return result


def swd_patches(ctx: EvalContext) -> dict[str, Any]:
    """Multi-scale patch SWD (Karras et al. 2018) of each compared set vs real frames: needs no weights."""
    ctx.require_frames()
    real, seed = ctx.frames_rgb("real"), ctx.settings["seed"]
    result: dict[str, Any] = {
        "description": "sliced Wasserstein distance of 7x7 Laplacian-pyramid neighbourhoods vs real frames "
                       "(Karras et al. 2018; x1000 in their tables); per level, finest first",
        "lower_is_better": True, "needs_weights": False,
    }
    sides = swd_many([ctx.frames_rgb(side) for side in SIDES], real,
                     descriptors_per_image=ctx.settings["swd_descriptors"], seed=seed)
    for side, r in zip(SIDES, sides, strict=True):
        result[side] = {"mean": r.mean, "per_level": list(r.per_level)}
    result["descriptors_per_image"] = ctx.settings["swd_descriptors"]
    result["provenance"] = records.swd_record(
        ctx, f"{ctx.settings['swd_descriptors']} random 7x7x3 neighbourhoods per frame and Laplacian level (5-tap "
             "binomial pyramid down to 16 px), normalised per set and level by that set's channel mean and std")
    return result


def swd_lab_colours(ctx: EvalContext) -> dict[str, Any]:
    """SWD of CIELab pixel colours of each compared set vs real frames (Lab units): needs no weights."""
    ctx.require_frames()
    real, seed = ctx.frames_rgb("real"), ctx.settings["seed"]
    result: dict[str, Any] = {
        "description": "sliced Wasserstein distance of CIELab pixel colours vs real frames (Lab units)",
        "lower_is_better": True, "needs_weights": False,
    }
    values = swd_lab_many([ctx.frames_rgb(side) for side in SIDES], real, pixels_per_image=ctx.settings["swd_pixels"],
                          seed=seed)
    result.update(zip(SIDES, values, strict=True))
    result["provenance"] = records.swd_record(
        ctx, f"{ctx.settings['swd_pixels']} random pixels per frame, sRGB -> CIELab (D65), in Lab units")
    return result


METRICS: dict[str, Callable[[EvalContext], dict[str, Any]]] = {
    "kid_vgg": kid_vgg,
    "fid_vgg": fid_vgg,
    "lpips": lpips_source_enhanced,
    "swd": swd_patches,
    "swd_lab": swd_lab_colours,
    "skvd": skvd_metric,
    "ckvd": ckvd_metric,
    "tof": tof_metric,
    "tlp": tlp_metric,
    "semantic_consistency": semantic_consistency_metric,
}


def run_metrics(ctx: EvalContext, names: list[str]) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        log.info("computing %s", name)
        try:
            results[name] = METRICS[name](ctx)
        except MetricUnavailable as e:
            log.warning("metric %s skipped: %s", name, e)
            results[name] = {"skipped": str(e)}
    return results


def baselines_record(ctx: EvalContext) -> dict[str, Any]:
    """How the baseline frames were made (the colour transfer's Lab statistics when it ran)."""
    return {
        "identity": "the rendered (source) frames of the enhanced ones, unchanged",
        "colour_transfer": {
            "method": "Reinhard et al. 2001 in CIELab (D65): each channel shifted and scaled from the source "
                      "statistics to the real frames' pooled mean and std, clipped to sRGB, saved as 8-bit PNG",
            "source_statistics": "pooled over all rendered frames compared (one mapping for all)"
            if ctx.settings["colour_transfer"] == "per_set" else "each frame's own (Reinhard's original)",
            "statistics_measured_at": f"short side <= {ctx.settings['short_side']} px",
            **ctx.colour_transfer_stats(),
        },
    }


def check_kid_subset_size(settings: Mapping[str, Any], n_enhanced: int, n_real: int) -> None:
    """Stop before any feature is computed when the KID subset size does not fit the frame counts."""
    if "kid_vgg" in settings["metrics"] and min(n_enhanced, n_real) >= 2:
        resolve_subset_size(settings["kid_subset_size"], n_enhanced, n_real, KID_SUBSET_SIZE_KEY)


def run_evaluate(
    enhanced_dir: Path,
    src_manifest: Path,
    dst_manifest: Path,
    settings: Mapping[str, Any],
    weights: Mapping[str, Any] | None,
    allow_random: bool,
    experiment: str,
    threads: int = 1,
    device: torch.device | None = None,
    labels: tuple[Path, Path] | None = None,
    scratch: Path | None = None,
    feature_cache: Path | None = None,
) -> dict[str, Any]:
    """The metrics.json document of one experiment (`settings`: its validated `evaluate` section).

    `labels`: the labels folders of the source and the target dataset, which sKVD and cKVD need;
    `scratch`: where the colour-transferred baseline frames are written meanwhile (default: the system's
    temporary folder); they are deleted when the metrics are done. `feature_cache`: a folder that keeps each
    frame set's VGG16 features, so a rerun after a kill reuses the sets already done (the caller removes it).
    """
    settings = dict(settings)
    frames = collect_frames(
        enhanced_dir, src_manifest, dst_manifest, settings["real_split"], settings["max_frames"], settings["seed"]
    )
    log.info("evaluating %d enhanced frames against %d real frames", len(frames.enhanced), len(frames.real))
    device = device or select_device(settings["device"])
    check_kid_subset_size(settings, len(frames.enhanced), len(frames.real))
    with tempfile.TemporaryDirectory(prefix=".colour_transfer-", dir=scratch) as tmp:
        ctx = EvalContext(frames, settings, dict(weights or {}), allow_random, device, threads, labels, Path(tmp),
                          FeatureCache(feature_cache) if feature_cache is not None else None)
        metrics = run_metrics(ctx, list(settings["metrics"]))
    random = bool(ctx.random_models) or frames.enhanced_random
    doc: dict[str, Any] = {
        "experiment": experiment,
        "metrics": metrics,
        "frames": {"enhanced": len(frames.enhanced), "real": len(frames.real)},
        "compared": {side: SIDE_TITLES[side] for side in SIDES},
        "baselines": baselines_record(ctx),
        "settings": settings,
        "random_weights": random,
    }
    if random:
        doc["warning"] = RANDOM_WEIGHTS_WARNING
    doc["provenance"] = stamp(
        random,
        random_models=ctx.random_models,
        enhanced_random_weights=frames.enhanced_random,
        enhanced=str(enhanced_dir),
        source_manifest=str(src_manifest),
        target_manifest=str(dst_manifest),
        labels=[str(p) for p in labels] if labels else None,
        device=str(device),
        libraries=records.libraries(),
    )
    return doc

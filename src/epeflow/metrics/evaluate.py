"""The evaluate stage: how real enhanced frames look, with the unenhanced source frames as the baseline.

Each metric is a small function of an `EvalContext`, which computes once what metrics share (models,
VGG16 frame features); sKVD, FID-Inception or temporal metrics are one more entry in `METRICS`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from epeflow.common.device import select_device
from epeflow.common.lpips import LPIPS, build_lpips
from epeflow.common.vgg16 import VGG16, build_vgg16
from epeflow.log import progress
from epeflow.metrics.frame_features import EMBEDDING_LAYER, autocast, embed_frames, to_model_input
from epeflow.metrics.frames import EvalFrames, collect_frames, load_rgb, prefetch, resize_short_side, same_size_batches
from epeflow.metrics.kid import FrechetDistanceError, fid, kid, resolve_subset_size
from epeflow.metrics.swd import swd, swd_lab
from epeflow.provenance import RANDOM_WEIGHTS_WARNING, stamp

log = logging.getLogger(__name__)

FrameSet = Literal["enhanced", "source", "real"]
FEATURES = f"vgg16_{EMBEDDING_LAYER}_mean"


class MetricUnavailable(Exception):
    """These inputs cannot give this metric (too few frames, say): recorded with the reason, not fatal."""


@dataclass
class EvalContext:
    """What metric functions read: the frames, settings, and models / features built on first use."""

    frames: EvalFrames
    settings: dict[str, Any]
    weights: dict[str, Any]
    allow_random: bool
    device: torch.device
    threads: int = 1
    random_models: list[str] = field(default_factory=list)  # models that ran with random weights
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def _note_random(self, name: str, random: bool) -> None:
        if random:
            log.warning("%s runs with RANDOM weights: metrics are not real measurements", name)
            self.random_models.append(name)

    def vgg(self) -> VGG16:
        if "vgg" not in self._cache:
            model, random = build_vgg16(self.weights.get("vgg16"), self.allow_random)
            self._note_random("vgg16", random)
            self._cache["vgg"] = model.to(self.device)
        return self._cache["vgg"]

    def lpips(self) -> LPIPS:
        if "lpips" not in self._cache:
            model, random = build_lpips(self.weights, self.allow_random)
            self._note_random("lpips", random)
            self._cache["lpips"] = model.to(self.device)
        return self._cache["lpips"]

    def vgg_features(self, which: FrameSet) -> np.ndarray:
        """(N, 512) VGG16 frame embeddings of one frame set, computed once."""
        key = f"features:{which}"
        if key not in self._cache:
            paths = getattr(self.frames, which)
            self._cache[key] = embed_frames(
                self.vgg(), paths, self.settings["short_side"], self.threads, self.settings["batch_size"],
                desc=f"VGG16 features ({which})",
            )
        return self._cache[key]

    def require_frames(self, minimum: int = 2) -> None:
        n_enhanced, n_real = len(self.frames.enhanced), len(self.frames.real)
        if n_enhanced < minimum or n_real < minimum:
            raise MetricUnavailable(
                f"needs at least {minimum} enhanced and {minimum} real frames, got {n_enhanced} and {n_real}; "
                "enhance more frames (config keys `enhance.split`, `enhance.max_frames`) or use more real ones "
                "(`evaluate.real_split`, `evaluate.max_frames`)"
            )


KID_SUBSET_SIZE_KEY = "evaluate.kid_subset_size"


def kid_vgg(ctx: EvalContext) -> dict[str, Any]:
    """KID of enhanced vs real and, as the baseline, of source vs real (lower is more realistic)."""
    ctx.require_frames()
    real = ctx.vgg_features("real")
    s = ctx.settings
    result: dict[str, Any] = {"description": "KID on VGG16 frame features vs real frames", "lower_is_better": True}
    for side in ("enhanced", "source"):
        result[side] = kid(ctx.vgg_features(side), real, s["kid_subsets"], s["kid_subset_size"], s["kid_seed"],
                           key=KID_SUBSET_SIZE_KEY).as_dict()
    result["features"] = FEATURES
    return result


def fid_vgg(ctx: EvalContext) -> dict[str, Any]:
    """Fréchet distance on the same features (biased for few frames; an extra next to KID).

    A side whose covariances give no real square root (pytorch-fid's error) records that error instead.
    """
    ctx.require_frames()
    real = ctx.vgg_features("real")
    result: dict[str, Any] = {"description": "Fréchet distance on VGG16 frame features vs real frames",
                              "lower_is_better": True}
    for side in ("enhanced", "source"):
        try:
            result[side] = fid(ctx.vgg_features(side), real).as_dict()
        except FrechetDistanceError as e:
            log.warning("fid_vgg (%s): %s", side, e)
            result[side] = {"skipped": str(e)}
    result["features"] = FEATURES
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
    """How much enhancement changed each frame (LPIPS, higher = more changed); content should survive."""
    d = lpips_per_frame(
        ctx.lpips(), ctx.frames.source, ctx.frames.enhanced, ctx.settings["short_side"], ctx.threads,
        ctx.settings["batch_size"],
    )
    return {
        "description": "LPIPS between each source frame and its enhanced version",
        "mean": float(d.mean()),
        "std": float(d.std()),
        "n": len(d),
    }


def frames_rgb(ctx: EvalContext, which: FrameSet) -> list[np.ndarray]:
    """(H, W, 3) float frames in [0, 1] of one set at the evaluation size (short side <= `short_side`), read once."""
    key = f"rgb:{which}"
    if key not in ctx._cache:
        ctx._cache[key] = [resize_short_side(load_rgb(p), ctx.settings["short_side"]).permute(1, 2, 0).numpy()
                           for p in progress(getattr(ctx.frames, which), f"frames ({which})", unit="frame")]
    return ctx._cache[key]


def swd_patches(ctx: EvalContext) -> dict[str, Any]:
    """Multi-scale patch SWD (Karras et al. 2018) of enhanced and source frames vs real ones: needs no weights."""
    ctx.require_frames()
    real, seed = frames_rgb(ctx, "real"), ctx.settings["seed"]
    result: dict[str, Any] = {
        "description": "sliced Wasserstein distance of 7x7 Laplacian-pyramid neighbourhoods vs real frames "
                       "(Karras et al. 2018; x1000 in their tables); per level, finest first",
        "lower_is_better": True, "needs_weights": False,
    }
    for side in ("enhanced", "source"):
        r = swd(frames_rgb(ctx, side), real, descriptors_per_image=ctx.settings["swd_descriptors"], seed=seed)
        result[side] = {"mean": r.mean, "per_level": list(r.per_level)}
    result["descriptors_per_image"] = ctx.settings["swd_descriptors"]
    return result


def swd_lab_colours(ctx: EvalContext) -> dict[str, Any]:
    """SWD of CIELab pixel colours of enhanced and source frames vs real ones (Lab units): needs no weights."""
    ctx.require_frames()
    real, seed = frames_rgb(ctx, "real"), ctx.settings["seed"]
    return {
        "description": "sliced Wasserstein distance of CIELab pixel colours vs real frames (Lab units)",
        "lower_is_better": True, "needs_weights": False,
        "enhanced": swd_lab(frames_rgb(ctx, "enhanced"), real, pixels_per_image=ctx.settings["swd_pixels"], seed=seed),
        "source": swd_lab(frames_rgb(ctx, "source"), real, pixels_per_image=ctx.settings["swd_pixels"], seed=seed),
    }


METRICS: dict[str, Callable[[EvalContext], dict[str, Any]]] = {
    "kid_vgg": kid_vgg,
    "fid_vgg": fid_vgg,
    "lpips": lpips_source_enhanced,
    "swd": swd_patches,
    "swd_lab": swd_lab_colours,
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
) -> dict[str, Any]:
    """The metrics.json document of one experiment (`settings`: its validated `evaluate` section)."""
    settings = dict(settings)
    frames = collect_frames(
        enhanced_dir, src_manifest, dst_manifest, settings["real_split"], settings["max_frames"], settings["seed"]
    )
    log.info("evaluating %d enhanced frames against %d real frames", len(frames.enhanced), len(frames.real))
    device = device or select_device(settings["device"])
    check_kid_subset_size(settings, len(frames.enhanced), len(frames.real))
    ctx = EvalContext(frames, settings, dict(weights or {}), allow_random, device, threads)
    metrics = run_metrics(ctx, list(settings["metrics"]))
    random = bool(ctx.random_models) or frames.enhanced_random
    doc: dict[str, Any] = {
        "experiment": experiment,
        "metrics": metrics,
        "frames": {"enhanced": len(frames.enhanced), "real": len(frames.real)},
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
    )
    return doc

"""`kid_inception` and `fid_inception`: the FID / KID of published tables, for the enhanced frames and baselines.

Frames go to the network as stored (whole frames, no `short_side` downscale: torch-fidelity reads the files
as they are and squeezes each to 299x299). KID sums run in float32 as torch-fidelity's do, so the numbers
equal `fidelity --kid` on the same folders to float32 rounding of the features; the Fréchet distance
is pytorch-fid's (float64, an error where the square root is complex), equal to torch-fidelity's
eigenvalue form to ~1e-9 relative wherever the root is real. Without the weight file each side is
recorded as "weights missing", with the path expected and how to get the file.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from epeflow.metrics import records
from epeflow.metrics.context import EvalContext
from epeflow.metrics.inception import (
    INPUT_RECORD,
    WEIGHTS_NAME,
    InceptionV3Pool3,
    InceptionWeightsMissing,
    expected_path,
    inception_features,
    load_inception,
)
from epeflow.metrics.kid import FrechetDistanceError, fid, kid
from epeflow.weights import OFFICIAL

log = logging.getLogger(__name__)

KID_SUBSET_SIZE_KEY = "evaluate.kid_subset_size"
WEIGHTS_MISSING = "weights missing"


def _model(ctx: EvalContext) -> tuple[InceptionV3Pool3, dict[str, str]]:
    def build() -> tuple[InceptionV3Pool3, dict[str, str]]:
        model, record = load_inception(ctx.weights.get(WEIGHTS_NAME))
        return model.to(ctx.device), record

    return ctx.cached("inception", build)


def features(ctx: EvalContext, side: str) -> np.ndarray:
    """(N, 2048) float32 pool3 features of one frame set, computed once."""
    return ctx.cached(f"inception:{side}", lambda: inception_features(
        _model(ctx)[0], ctx.paths(side), ctx.threads, ctx.settings["batch_size"], desc=f"Inception features ({side})"))


def weights_missing(ctx: EvalContext, description: str) -> dict[str, Any]:
    """The record of an Inception metric without its weights: every side says so, with the path expected."""
    path = expected_path(ctx.weights.get(WEIGHTS_NAME))
    log.warning("%s: %s", description, InceptionWeightsMissing(path))
    return {
        "description": f"{description}; not computed, weights missing: expected at {path} "
                       f"(config key `weights.{WEIGHTS_NAME}.path`)",
        "lower_is_better": True,
        **{side: {"skipped": WEIGHTS_MISSING} for side in ctx.sides},
        "weights_missing": {"expected": str(path), "download": OFFICIAL[WEIGHTS_NAME].url,
                            "config_key": f"weights.{WEIGHTS_NAME}.path"},
    }


def record(ctx: EvalContext, model_record: dict[str, str]) -> dict[str, Any]:
    """Provenance shared by both Inception metrics."""
    return {
        "features": {"extractor": "Inception-v3, TensorFlow's 2015-12-05 FID graph in torch-fidelity's / "
                                  "pytorch-fid's PyTorch layout (epeflow.metrics.inception_net)",
                     "layer": "pool3 (2048-d, mean of Mixed_7c over its 8x8 map)", "weights": model_record},
        "input": {**INPUT_RECORD, "frames": "whole stored frames (no `evaluate.short_side` downscale)"},
        "device": str(ctx.device), "network_dtype": "float32", "samples": records.samples(ctx),
    }


def kid_inception(ctx: EvalContext) -> dict[str, Any]:
    """KID on Inception pool3 features (torch-fidelity's KID) of each compared set vs real frames."""
    description = "KID on Inception-v3 pool3 features vs real frames (torch-fidelity's KID)"
    ctx.require_frames()
    try:
        model_record = _model(ctx)[1]
    except InceptionWeightsMissing:
        return weights_missing(ctx, description)
    s = ctx.settings
    real = features(ctx, "real")
    result: dict[str, Any] = {"description": description, "lower_is_better": True}
    for side in ctx.sides:
        result[side] = kid(features(ctx, side), real, s["kid_subsets"], s["kid_subset_size"], s["kid_seed"],
                           key=KID_SUBSET_SIZE_KEY, dtype=np.float32).as_dict()
    result["provenance"] = {
        **record(ctx, model_record), "statistics_dtype": "float32 kernel sums, in torch-fidelity's order",
        "kernel": records.KERNEL, "estimator": records.MMD_ESTIMATOR + ", averaged over subsets",
        "subsets": s["kid_subsets"], "subset_size_setting": s["kid_subset_size"],
        "rng": f"numpy.random.RandomState({s['kid_seed']}); per subset choice(n_x, size, replace=False) then "
               "choice(n_y, size, replace=False), as torch-fidelity (restarted for each compared set)",
    }
    return result


def fid_inception(ctx: EvalContext) -> dict[str, Any]:
    """FID on Inception pool3 features of each compared set vs real frames (pytorch-fid's Fréchet distance)."""
    description = "FID: Fréchet distance on Inception-v3 pool3 features vs real frames"
    ctx.require_frames()
    try:
        model_record = _model(ctx)[1]
    except InceptionWeightsMissing:
        return weights_missing(ctx, description)
    real = features(ctx, "real")
    result: dict[str, Any] = {"description": description, "lower_is_better": True}
    for side in ctx.sides:
        try:
            result[side] = fid(features(ctx, side), real).as_dict()
        except FrechetDistanceError as e:
            log.warning("fid_inception (%s): %s", side, e)
            result[side] = {"skipped": str(e)}
    result["provenance"] = {
        **record(ctx, model_record), "statistics_dtype": "float64",
        "estimator": "Fréchet distance of Gaussians (mean, np.cov with ddof 1) with scipy.linalg.sqrtm as "
                     "pytorch-fid (1e-6 diagonal offset when not finite, an error when the root's diagonal is "
                     "complex beyond 1e-3); torch-fidelity's eigenvalue form gives the same value to ~1e-9 where "
                     "the root is real",
    }
    return result

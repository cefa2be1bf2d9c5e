"""Provenance of the numbers in metrics.json: what each metric saw, computed with what, drawn how.

Each metric stores a `provenance` block built from these pieces: the feature extractor and its layer, the
weight files (path and sha256, or the random-weights warning), how frames reached the network (size,
resize method, normalisation), dtype and device, kernel and estimator, subsets and random generators, and
how many samples each compared set had. Library versions go once into the document's own provenance.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from epeflow.artifacts.labels import read_labels_info
from epeflow.errors import EpeflowError
from epeflow.metrics.baselines import SIDES
from epeflow.metrics.context import EvalContext
from epeflow.provenance import RANDOM_WEIGHTS_WARNING
from epeflow.weights import resolve_weights, sha256_of

KERNEL = "polynomial k(x, y) = (x·y / d + 1)^3 (degree 3, gamma 1/d, coef0 1; KID's)"
MMD_ESTIMATOR = "unbiased MMD² (within-set means leave out the diagonal; torch-fidelity's mmd2 'unbiased')"
DECODING = "PNG/JPEG decoded by Pillow to uint8 RGB, / 255 as float32"
RESIZE = "torch.nn.functional.interpolate, bilinear, antialias=True, align_corners=False"
LIBRARIES = ("numpy", "scipy", "torch", "pillow")


def libraries() -> dict[str, str]:
    """Versions of the libraries the numbers depend on."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def weights_record(ctx: EvalContext, name: str) -> dict[str, str] | str:
    """The weight file a model ran with (path, sha256), or the random-weights warning."""
    if name in ctx.random_models:
        return RANDOM_WEIGHTS_WARNING
    try:
        path = resolve_weights(name, ctx.weights.get(name), allow_random=False)
    except EpeflowError:  # missing: the model ran with random weights (allowed, or it would have stopped)
        return RANDOM_WEIGHTS_WARNING
    return {"file": str(path), "sha256": sha256_of(path)}


def compute_record(ctx: EvalContext) -> dict[str, str]:
    """Device and dtypes of a network metric (bf16 autocast on CUDA, as `frame_features.autocast`)."""
    network = "bfloat16 autocast, outputs cast to float32" if ctx.device.type == "cuda" else "float32"
    return {"device": str(ctx.device), "network_dtype": network, "statistics_dtype": "float64"}


def frame_input(ctx: EvalContext) -> dict[str, str]:
    """How whole frames reach VGG16, LPIPS and the SWDs."""
    return {"decoding": DECODING, "size": f"downscaled so the short side is at most {ctx.settings['short_side']} "
            "px, aspect kept, never upscaled (`evaluate.short_side`)", "resize": RESIZE}


def samples(ctx: EvalContext) -> dict[str, int]:
    """Frames in each compared set and in the real set."""
    n = len(ctx.frames.enhanced)
    return {**dict.fromkeys(SIDES, n), "real": len(ctx.frames.real)}


def vgg_features(ctx: EvalContext, pooling: str) -> dict[str, Any]:
    return {"extractor": "VGG16 (torchvision layout), ImageNet mean/std normalisation", "layer": "relu5_3",
            "pooling": pooling, "weights": weights_record(ctx, "vgg16")}


def kid_record(ctx: EvalContext) -> dict[str, Any]:
    s = ctx.settings
    return {
        "features": vgg_features(ctx, "mean over space (512-d)"), "input": frame_input(ctx),
        **compute_record(ctx), "kernel": KERNEL, "estimator": MMD_ESTIMATOR + ", averaged over subsets",
        "subsets": s["kid_subsets"], "subset_size_setting": s["kid_subset_size"],
        "rng": f"numpy.random.RandomState({s['kid_seed']}); per subset choice(n_x, size, replace=False) then "
               "choice(n_y, size, replace=False), as torch-fidelity (one generator for all compared sets, "
               "restarted for each)",
        "samples": samples(ctx),
    }


def fid_record(ctx: EvalContext) -> dict[str, Any]:
    return {
        "features": vgg_features(ctx, "mean over space (512-d)"), "input": frame_input(ctx), **compute_record(ctx),
        "estimator": "Fréchet distance of Gaussians (numpy mean, np.cov with ddof 1); scipy.linalg.sqrtm of the "
                     "covariance product, retried with 1e-6 on the diagonals when not finite, an error when its "
                     "diagonal is complex beyond 1e-3 (pytorch-fid's calculate_frechet_distance)",
        "samples": samples(ctx),
    }


def lpips_record(ctx: EvalContext) -> dict[str, Any]:
    return {
        "network": "LPIPS v0.1 (VGG16 trunk, learned linear layers on relu1_2..relu5_3)",
        "weights": {"vgg16": weights_record(ctx, "vgg16"), "lpips": weights_record(ctx, "lpips")},
        "input": {**frame_input(ctx), "pairing": "each rendered frame with its version in the compared set, "
                  "resized to that version's size first when they differ"},
        **compute_record(ctx), "samples": {k: v for k, v in samples(ctx).items() if k != "real"},
    }


def swd_record(ctx: EvalContext, what: str) -> dict[str, Any]:
    return {
        "network": "none (needs no weights)", "input": frame_input(ctx), "what": what,
        "statistics_dtype": "float64",
        "rng": f"numpy.random.default_rng over SeedSequence({ctx.settings['seed']}).spawn(3): samples of the "
               "compared set, of the real set, projection directions (4 x 128 unit vectors); the same seed for "
               "every compared set",
        "estimator": "mean 1-D Wasserstein-1 distance of the projections (exact for unequal sample counts)",
        "samples": samples(ctx),
    }


def crops_record(ctx: EvalContext) -> dict[str, Any]:
    """sKVD / cKVD: crops, label grids, features and estimator."""
    h, w = ctx.settings["skvd_size"]
    labels = None if ctx.labels is None else {
        role: {"folder": str(folder), **read_labels_info(folder)} for role, folder in zip(("source", "target"),
                                                                                          ctx.labels, strict=True)}
    return {
        "features": vgg_features(ctx, "none: relu5_3 of the crop flattened"),
        "input": {"decoding": DECODING, "size": f"rescaled to height {h} (aspect kept), centre-cropped to width {w} "
                  "(`evaluate.skvd_size`)", "resize": RESIZE, "label_resize": "nearest at pixel centres"},
        **compute_record(ctx), "kernel": KERNEL, "estimator": MMD_ESTIMATOR + " x1000, on kept pairs; each real "
        "crop enters once however many enhanced crops it partners",
        "rng": f"numpy.random.default_rng over SeedSequence({ctx.settings['seed']}).spawn(2): crop positions of "
               "the rendered frames (the same in every compared set), of the real frames",
        "labels": labels, "samples": samples(ctx),
    }


def temporal_record(ctx: EvalContext, name: str, farneback: dict[str, Any]) -> dict[str, Any]:
    """tOF / tLP: pairs of consecutive frames, flow or LPIPS settings, crop, and OpenCV's version."""
    import cv2

    trim = ctx.settings.get("temporal_trim", 2)
    record: dict[str, Any] = {
        "definition": "TecoGAN (Chu et al. 2020, thunil/TecoGAN metrics.py), output = enhanced frame or baseline, "
                      "input = its rendered frame",
        "pairs": "frames t-1, t of one manifest `sequence` with consecutive `frame_index`, both enhanced; "
                 f"{trim} frames dropped at each end of every unbroken run (`evaluate.temporal_trim`; TecoGAN: 2)",
        "input": {"decoding": DECODING, "size": "each enhanced frame's own size; its rendered frame and baselines "
                  "resized to it when they differ", "resize": RESIZE, "to_uint8": "round(x * 255)",
                  "crop": "centre crop to the largest multiple of 32 at least 16 px under each side (TecoGAN's "
                          "crop_8x8)"},
        "statistics_dtype": "float64", "average": "mean over all pairs of all sequences (TecoGAN's total average)",
        "samples": {**{k: v for k, v in samples(ctx).items() if k != "real"}},
        "opencv": cv2.__version__,
    }
    if name == "tof":
        record["flow"] = {"method": "cv2.calcOpticalFlowFarneback on cv2.COLOR_RGB2GRAY frames", **farneback}
        record["estimator"] = "per pixel sqrt((u_in - u_out)^2 + (v_in - v_out)^2) on the crop, mean; in pixels"
        record["network"] = "none (needs no weights)"
    else:
        record["network"] = "LPIPS v0.1 (VGG16 trunk; TecoGAN used LPIPS-AlexNet, so values differ from its tables)"
        record["weights"] = {"vgg16": weights_record(ctx, "vgg16"), "lpips": weights_record(ctx, "lpips")}
        record["estimator"] = "|LPIPS(out t-1, out t) - LPIPS(in t-1, in t)| on the crops, mean (not x100)"
        record.update(compute_record(ctx))
    return record

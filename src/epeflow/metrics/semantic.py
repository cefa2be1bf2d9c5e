"""sKVD and cKVD in the evaluate stage: crops and label grids from the frames, then `epeflow.metrics.skvd`.

One seeded crop per enhanced frame and one per real frame. The enhanced side's crops sit at the same place
in every compared set (enhanced and its baselines), with the labels of the source frame, so all sets are
paired with the same real crops and differ only in their pixels. Real crop features are computed only for
the crops that partner a kept pair.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from epeflow.artifacts.labels import read_label_map, read_labels_info
from epeflow.common.taxonomy import UNLABELED, universal_names
from epeflow.log import progress
from epeflow.metrics import records
from epeflow.metrics.context import EvalContext, FrameSet, MetricUnavailable
from epeflow.metrics.frame_crops import crop_boxes, crop_side, labels_at_resolution
from epeflow.metrics.frame_features import EMBEDDING_LAYER, embed_crops
from epeflow.metrics.skvd import (
    GRID,
    MIN_AGREEMENT,
    CropPairs,
    dominant_class,
    label_grid,
    match_crops,
    paired_ckvd,
    paired_skvd,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CropSetup:
    """Where the crops are and how they pair: shared by sKVD and cKVD and by every compared set."""

    size: tuple[int, int]  # evaluation (height, width)
    side: int  # crop side in pixels at that size
    boxes: np.ndarray  # (N, 2) (top, left) of each enhanced frame's crop
    real_boxes: np.ndarray  # (M, 2)
    pairs: CropPairs
    classes: np.ndarray  # (P,) class of each kept pair (dominant label of its enhanced crop)


def _grids(folder: Path, ids: list[str], boxes: np.ndarray, size: tuple[int, int], side: int,
           desc: str) -> np.ndarray:
    grids = np.empty((len(ids), GRID, GRID), dtype=np.uint8)
    for i, (frame_id, (top, left)) in enumerate(progress(list(zip(ids, boxes, strict=True)), desc, unit="frame")):
        labels = labels_at_resolution(read_label_map(folder, frame_id), size, f"label map of frame {frame_id}")
        grids[i] = label_grid(labels[top : top + side, left : left + side])
    return grids


def crop_setup(ctx: EvalContext) -> CropSetup:
    """The seeded crops of both sides, their 16x16 label grids and the pairs (computed once)."""

    def make() -> CropSetup:
        ctx.require_frames()
        if ctx.labels is None:
            raise MetricUnavailable("needs the label maps of both datasets: pass `--src-labels` and `--dst-labels` "
                                    "to `epeflow evaluate` (the workflow's evaluate rule does), or `--labels FAKE "
                                    "REAL` with `--real` / `--fake`")
        src_labels, dst_labels = ctx.labels
        for folder in (src_labels, dst_labels):
            if read_labels_info(folder)["random_weights"]:
                ctx.random_models.append(f"labels {folder}")
        size = (int(ctx.settings["skvd_size"][0]), int(ctx.settings["skvd_size"][1]))
        side = crop_side(size)
        rng, rng_real = (np.random.default_rng(s) for s in np.random.SeedSequence(ctx.settings["seed"]).spawn(2))
        boxes = crop_boxes(len(ctx.frames.ids), size, side, rng)
        real_boxes = crop_boxes(len(ctx.frames.real_ids), size, side, rng_real)
        grids = _grids(src_labels, ctx.frames.ids, boxes, size, side, "label crops (source)")
        real_grids = _grids(dst_labels, ctx.frames.real_ids, real_boxes, size, side, "label crops (real)")
        pairs = match_crops(grids, real_grids)
        log.info("sKVD: %d of %d crops agree with a real crop in more than half their cells", pairs.kept.sum(),
                 len(grids))
        return CropSetup(size, side, boxes, real_boxes, pairs, dominant_class(grids[pairs.kept]))

    return ctx.cached("crops", make)


def _partner_features(ctx: EvalContext, setup: CropSetup) -> np.ndarray:
    """(P, D) features of the real crop partnering each kept pair (each distinct real crop computed once)."""

    def make() -> np.ndarray:
        used, back = np.unique(setup.pairs.kept_partners, return_inverse=True)
        features = embed_crops(ctx.vgg(), [ctx.frames.real[i] for i in used], setup.real_boxes[used], setup.side,
                               setup.size, ctx.threads, ctx.settings["batch_size"], desc="VGG16 crops (real)")
        return features[back]

    return ctx.cached("crop_features:real", make)


def _kept_features(ctx: EvalContext, setup: CropSetup, which: FrameSet) -> np.ndarray:
    """(P, D) features of the kept crops of one compared set."""

    def make() -> np.ndarray:
        kept = np.flatnonzero(setup.pairs.kept)
        paths = ctx.paths(which)
        return embed_crops(ctx.vgg(), [paths[i] for i in kept], setup.boxes[kept], setup.side, setup.size,
                           ctx.threads, ctx.settings["batch_size"], desc=f"VGG16 crops ({which})")

    return ctx.cached(f"crop_features:{which}", make)


def _require_pairs(setup: CropSetup) -> None:
    kept = int(setup.pairs.kept.sum())
    if kept < 2:
        raise MetricUnavailable(
            f"only {kept} of {len(setup.boxes)} enhanced crops agree with a real crop in more than half of their "
            f"{GRID}x{GRID} label cells; at least 2 pairs are needed: enhance more frames or use more real ones"
        )


def _setup_record(setup: CropSetup) -> dict[str, Any]:
    return {
        "evaluation_size": list(setup.size), "crop_side": setup.side,
        "crops": {"enhanced": len(setup.boxes), "real": len(setup.real_boxes)},
        "pairs": int(setup.pairs.kept.sum()), "real_crops_used": int(len(np.unique(setup.pairs.kept_partners))),
        "matching": f"{GRID}x{GRID} nearest-sampled labels, most agreeing real crop, kept when > "
                    f"{MIN_AGREEMENT:.0%} of cells agree (unlabeled cells never agree)",
        "features": f"vgg16_{EMBEDDING_LAYER}_flattened",
    }


def _record(ctx: EvalContext, setup: CropSetup) -> dict[str, Any]:
    return {**records.crops_record(ctx), "crop": f"one {setup.side}x{setup.side} square per frame (1/8 of "
            f"{setup.size[0]}x{setup.size[1]}), uniformly placed", "min_agreement": f"> {MIN_AGREEMENT:.0%} of "
            f"{GRID}x{GRID} cells"}


def skvd_metric(ctx: EvalContext) -> dict[str, Any]:
    """sKVD of each compared set vs real crops of matching layout (x1000, lower is more realistic)."""
    setup = crop_setup(ctx)
    _require_pairs(setup)
    real = _partner_features(ctx, setup)
    result: dict[str, Any] = {
        "description": "semantically aligned Kernel VGG Distance x1000 (EPE): KID kernel on crops paired by layout",
        "lower_is_better": True,
    }
    partners = setup.pairs.kept_partners
    for side in ctx.sides:
        x = _kept_features(ctx, setup, side)
        result[side] = paired_skvd(x, real, len(setup.boxes), len(setup.real_boxes), partners).as_dict()
    result.update(_setup_record(setup))
    result["provenance"] = _record(ctx, setup)
    return result


def class_name(class_id: int) -> str:
    return "unlabeled" if class_id == UNLABELED else universal_names()[class_id]


def ckvd_metric(ctx: EvalContext) -> dict[str, Any]:
    """cKVD: the sKVD pairs split by the class of their enhanced crop; per class and the mean over classes."""
    setup = crop_setup(ctx)
    _require_pairs(setup)
    real = _partner_features(ctx, setup)
    min_pairs = int(ctx.settings["ckvd_min_pairs"])
    result: dict[str, Any] = {
        "description": "class-wise KVD x1000: sKVD per dominant class of the enhanced crop, averaged over classes "
                       f"with at least {min_pairs} pairs",
        "lower_is_better": True,
    }
    for side in ctx.sides:
        r = paired_ckvd(_kept_features(ctx, setup, side), real, setup.pairs.kept_partners, setup.classes,
                        min_pairs).as_dict()
        r["per_class"] = {class_name(int(k)): v for k, v in r["per_class"].items()}
        result[side] = r
    result.update(_setup_record(setup))
    result["provenance"] = _record(ctx, setup)
    return result

"""What every metric of the evaluate stage reads: the frames, the settings, and what metrics share.

Models and VGG16 frame features are built on first use and kept, so KID and the Fréchet distance share
one pass over the frames, and a metric that is not asked for builds nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from epeflow.artifacts.chunk_progress import digest
from epeflow.artifacts.feature_cache import FeatureCache
from epeflow.common.lpips import LPIPS, build_lpips
from epeflow.common.vgg16 import VGG16, build_vgg16
from epeflow.log import progress
from epeflow.metrics.baselines import write_colour_transfer
from epeflow.metrics.colour_transfer import fit_reinhard
from epeflow.metrics.frame_features import embed_frames
from epeflow.metrics.frames import EvalFrames, load_rgb, resize_short_side
from epeflow.weights import weights_sha256

log = logging.getLogger(__name__)

FrameSet = Literal["enhanced", "identity", "colour_transfer", "real"]


class MetricUnavailable(Exception):
    """These inputs cannot give this metric (too few frames, say): recorded with the reason, not fatal."""


@dataclass
class EvalContext:
    """What metric functions read: the frames, settings, and models / features built on first use.

    `labels`: the labels folders of the source and the target dataset (for sKVD / cKVD), when given;
    `scratch`: an empty folder for the colour-transferred frames (made when a metric first needs them).
    """

    frames: EvalFrames
    settings: dict[str, Any]
    weights: dict[str, Any]
    allow_random: bool
    device: torch.device
    threads: int = 1
    labels: tuple[Path, Path] | None = None
    scratch: Path | None = None
    feature_cache: FeatureCache | None = None  # VGG16 features per set, kept across a killed run
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

    def paths(self, which: FrameSet) -> list[Path]:
        """Frame files of one set; `identity` is the source frames, `colour_transfer` is written on first use."""
        if which == "identity":
            return self.frames.source
        if which == "colour_transfer":
            return self.cached("paths:colour_transfer", self._colour_transfer)
        return getattr(self.frames, which)

    def colour_transfer_stats(self) -> dict[str, Any]:
        """The Lab statistics the colour transfer used, once it ran ({} before)."""
        return dict(self._cache.get("colour_transfer_stats", {}))

    def _colour_transfer(self) -> list[Path]:
        if self.scratch is None:
            raise ValueError("the colour-transfer baseline needs a scratch folder (EvalContext.scratch)")
        per_set = self.settings["colour_transfer"] == "per_set"
        source = fit_reinhard(self.frames_rgb("identity")) if per_set else None
        target = fit_reinhard(self.frames_rgb("real"))
        self._cache["colour_transfer_stats"] = {
            "target_lab_mean": target.mean.tolist(), "target_lab_std": target.std.tolist(),
            **({"source_lab_mean": source.mean.tolist(), "source_lab_std": source.std.tolist()} if source else {}),
        }
        return write_colour_transfer(self.frames.source, self.frames.ids, self.scratch, source, target, self.threads)

    def vgg_features(self, which: FrameSet) -> np.ndarray:
        """(N, 512) VGG16 frame embeddings of one frame set, computed once."""
        key = f"features:{which}"
        if key not in self._cache:
            model = self.vgg()  # built even when cached features are reused: it says whether weights are random
            cache_key = self._features_key(which) if self.feature_cache is not None else {}
            features = self.feature_cache.get(which, cache_key) if self.feature_cache is not None else None
            if features is None:
                features = embed_frames(model, self.paths(which), self.settings["short_side"], self.threads,
                                        self.settings["batch_size"], desc=f"VGG16 features ({which})")
                if self.feature_cache is not None:
                    self.feature_cache.put(which, cache_key, features)
            self._cache[key] = features
        return self._cache[key]

    def _features_key(self, which: FrameSet) -> dict[str, Any]:
        """What a set's VGG16 features depend on: its files (path, size, mtime), the settings that shape
        them and the weights. The colour-transfer frames are remade each run: their key is what they are
        made from."""
        def files(paths: list[Path]) -> str:
            return digest([(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths])

        if which == "colour_transfer":
            frames: Any = {"source": files(self.frames.source), "real": files(self.frames.real),
                           "method": self.settings["colour_transfer"]}
        else:
            frames = files(self.paths(which))
        return {"frames": frames, "short_side": self.settings["short_side"], "batch_size": self.settings["batch_size"],
                "device": self.device.type,
                "vgg16": weights_sha256("vgg16", self.weights.get("vgg16"), self.allow_random)}

    def frames_rgb(self, which: FrameSet) -> list[np.ndarray]:
        """(H, W, 3) float frames in [0, 1] at the evaluation size (short side <= `short_side`), read once."""
        key = f"rgb:{which}"
        if key not in self._cache:
            self._cache[key] = [resize_short_side(load_rgb(p), self.settings["short_side"]).permute(1, 2, 0).numpy()
                                for p in progress(self.paths(which), f"frames ({which})", unit="frame")]
        return self._cache[key]

    def cached(self, key: str, make: Any) -> Any:
        """`make()` once per key: for what several metrics share (sKVD and cKVD share their crops)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def require_frames(self, minimum: int = 2) -> None:
        n_enhanced, n_real = len(self.frames.enhanced), len(self.frames.real)
        if n_enhanced < minimum or n_real < minimum:
            raise MetricUnavailable(
                f"needs at least {minimum} enhanced and {minimum} real frames, got {n_enhanced} and {n_real}; "
                "enhance more frames (config keys `enhance.split`, `enhance.max_frames`) or use more real ones "
                "(`evaluate.real_split`, `evaluate.max_frames`)"
            )

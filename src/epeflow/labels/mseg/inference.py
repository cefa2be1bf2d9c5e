"""MSeg inference on one frame, as mseg-semantic's universal demo does it, with windows batched.

For each scale s: resize the frame (bilinear) so its short side is round(s * base_size); normalise with
ImageNet mean / std on 0..255 RGB; pad to at least crop x crop with the mean (= 0 after normalising);
slide crop x crop windows with stride ceil(2/3 crop); run each window and its mirror image through the
network, softmax, average the two; average overlapping windows; drop the padding; resize the
probabilities to the frame size. Probabilities are averaged over scales and the argmax is the label.
The reference runs one window at a time; here windows of a frame go through the network in batches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from epeflow.common.device import select_device
from epeflow.config import property_defaults
from epeflow.errors import EpeflowError
from epeflow.labels.mseg.checkpoint import build_mseg
from epeflow.labels.mseg.hrnet import HRNetV2

MEAN_255 = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STD_255 = (0.229 * 255, 0.224 * 255, 0.225 * 255)
MULTI_SCALE = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


_DEFAULTS = property_defaults("dataset", "mseg")


@dataclass(frozen=True)
class MsegSettings:
    """Defaults are the schema's (`datasets.<ds>.mseg`): the 1080p single-scale configuration of the released
    model."""

    base_size: int = _DEFAULTS["base_size"]  # short side at scale 1 (MSeg's 360 / 720 / 1080 configurations)
    scales: tuple[float, ...] = tuple(_DEFAULTS["scales"])  # MULTI_SCALE for the multi-scale configuration
    crop: int = _DEFAULTS["crop"]  # window side
    stride_rate: float = 2 / 3  # MSeg's, not a setting
    batch_size: int = _DEFAULTS["batch_size"]  # windows per forward pass (each also mirrored)
    flip: bool = _DEFAULTS["flip"]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None, key: str = "mseg") -> MsegSettings:
        spec = dict(spec or {})
        scales = spec.get("scales", list(cls.scales))
        if not scales or any(float(s) <= 0 for s in scales):
            raise EpeflowError(f"config key `{key}.scales`: give positive scales, e.g. [1.0] or [0.5, ..., 1.75]")
        settings = cls(
            base_size=int(spec.get("base_size", cls.base_size)),
            scales=tuple(float(s) for s in scales),
            crop=int(spec.get("crop", cls.crop)),
            batch_size=int(spec.get("batch_size", cls.batch_size)),
            flip=bool(spec.get("flip", cls.flip)),
        )
        if settings.crop < 8 or settings.base_size < 8 or settings.batch_size < 1:
            raise EpeflowError(f"config key `{key}`: crop and base_size must be at least 8, batch_size at least 1")
        return settings


def scaled_size(height: int, width: int, short: int) -> tuple[int, int]:
    """Frame size with the short side set to `short`, aspect kept (rounded as the reference)."""
    if height > width:
        return round(short / width * height), short
    return short, round(short / height * width)


def window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Start offsets of windows covering [0, length); the last one ends at the border."""
    count = math.ceil((length - crop) / stride) + 1
    return sorted({min(i * stride + crop, length) - crop for i in range(count)})


def _window_probs(model: HRNetV2, windows: torch.Tensor, flip: bool) -> torch.Tensor:
    """(B, 3, c, c) normalised windows -> (B, classes, c, c) float32 softmax, averaged with the mirror image."""
    batch = torch.cat([windows, windows.flip(3)]) if flip else windows
    probs = model(batch).float().softmax(dim=1)
    if flip:
        n = windows.shape[0]
        probs = (probs[:n] + probs[n:].flip(3)) / 2
    return probs


def scale_probs(model: HRNetV2, image: torch.Tensor, out_size: tuple[int, int], settings: MsegSettings) -> torch.Tensor:
    """Sliding-window class probabilities of one resized, normalised (3, h, w) image, resized to `out_size`."""
    _, h, w = image.shape
    crop = settings.crop
    pad_h, pad_w = max(crop - h, 0), max(crop - w, 0)
    top, left = pad_h // 2, pad_w // 2
    padded = F.pad(image, (left, pad_w - left, top, pad_h - top))  # zeros = the mean after normalising
    ph, pw = padded.shape[-2:]
    stride = math.ceil(crop * settings.stride_rate)
    boxes = [(r, c) for r in window_starts(ph, crop, stride) for c in window_starts(pw, crop, stride)]
    classes = model.config.num_classes
    total = torch.zeros((classes, ph, pw), device=image.device)
    count = torch.zeros((1, ph, pw), device=image.device)
    for i in range(0, len(boxes), settings.batch_size):
        chunk = boxes[i : i + settings.batch_size]
        windows = torch.stack([padded[:, r : r + crop, c : c + crop] for r, c in chunk])  # (B, 3, crop, crop)
        if image.device.type == "cuda":
            windows = windows.contiguous(memory_format=torch.channels_last)
        probs = _window_probs(model, windows, settings.flip)  # (B, classes, crop, crop)
        for (r, c), p in zip(chunk, probs, strict=True):
            total[:, r : r + crop, c : c + crop] += p
            count[:, r : r + crop, c : c + crop] += 1
    probs = (total / count)[:, top : top + h, left : left + w]  # (classes, h, w)
    return F.interpolate(probs[None], size=out_size, mode="bilinear", align_corners=False)[0]


def segment(model: HRNetV2, rgb: np.ndarray, settings: MsegSettings, device: torch.device | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 MSeg universal ids."""
    device = device or next(model.parameters()).device
    height, width = rgb.shape[:2]
    image = torch.from_numpy(np.array(rgb, copy=True)).to(device).permute(2, 0, 1).float()  # (3, H, W) 0..255
    mean = torch.tensor(MEAN_255, device=device).view(3, 1, 1)
    std = torch.tensor(STD_255, device=device).view(3, 1, 1)
    cuda = device.type == "cuda"
    total: torch.Tensor | None = None
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
        for scale in settings.scales:
            size = scaled_size(height, width, round(scale * settings.base_size))
            resized = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
            probs = scale_probs(model, (resized - mean) / std, (height, width), settings)  # (classes, H, W)
            total = probs if total is None else total + probs
    assert total is not None
    return total.argmax(dim=0).to(torch.uint8).cpu().numpy()


class MsegLabeler:
    """Callable that labels frames: `labeler(rgb) -> (H, W) uint8`; `random_weights` marks the outputs."""

    def __init__(
        self,
        settings: MsegSettings,
        weights: Mapping[str, Any] | None,
        allow_random: bool,
        device: str = "auto",
    ) -> None:
        self.settings = settings
        self.device = select_device(device)
        model, self.random_weights = build_mseg(weights, allow_random)
        model = model.to(self.device)
        if self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        self.model = model

    @staticmethod
    def settings_of(dataset_spec: Mapping[str, Any], dataset: str = "<dataset>") -> MsegSettings:
        """MsegSettings from a dataset's config entry (its `mseg` key)."""
        return MsegSettings.from_spec(dataset_spec.get("mseg"), f"datasets.{dataset}.mseg")

    @classmethod
    def from_config(
        cls, dataset_spec: Mapping[str, Any], weights: Mapping[str, Any] | None, allow_random: bool,
        dataset: str = "<dataset>",
    ) -> MsegLabeler:
        """What the labels stage calls: dataset config entry + the config's whole `weights` section."""
        return cls(cls.settings_of(dataset_spec, dataset), dict(weights or {}).get("mseg"), allow_random)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return segment(self.model, rgb, self.settings, self.device)

    def describe(self) -> dict[str, Any]:
        """Settings recorded with the labels (labels.json)."""
        s = self.settings
        return {"model": "mseg-hrnetv2-w48", "base_size": s.base_size, "scales": list(s.scales), "crop": s.crop,
                "flip": s.flip, "random_weights": self.random_weights}


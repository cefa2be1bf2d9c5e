"""LPIPS v0.1 with the VGG backbone (Zhang et al. 2018), written on our own VGG16 trunk.

Ours rather than the `lpips` package because that one needs torchvision. The computation is the
official one: scaling layer, five relu taps, unit normalisation over channels, squared difference,
non-negative 1x1 "lin" weights, spatial average, sum over taps. The official `vgg.pth` lin weights load
as they are, so values match the package when both weight files are the official ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from epeflow.common.vgg16 import RELU_CHANNELS, VGG16, build_vgg16
from epeflow.errors import EpeflowError
from epeflow.weights import OFFICIAL, load_state_dict, resolve_weights

LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
LPIPS_CHANNELS = tuple(RELU_CHANNELS[name] for name in LPIPS_LAYERS)  # (64, 128, 256, 512, 512)
# LPIPS's ScalingLayer for inputs in [-1, 1]: (x - shift) / scale, per RGB channel.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10  # as lpips.normalize_tensor


def lin_key(i: int) -> str:
    """Key of the i-th lin layer in the official weights file (`NetLinLayer` = Dropout, Conv2d)."""
    return f"lin{i}.model.1.weight"


def scaling_as_normalization() -> tuple[list[float], list[float]]:
    """Mean/std that turn [0, 1] inputs into LPIPS's scaled [-1, 1] inputs in one step.

    (2x - 1 - shift) / scale == (x - (1 + shift) / 2) / (scale / 2), so the trunk's own normalisation
    does the scaling layer's job and callers pass [0, 1] images like everywhere else in epeflow.
    """
    return [(1.0 + s) / 2.0 for s in LPIPS_SHIFT], [c / 2.0 for c in LPIPS_SCALE]


def _unit_normalize(x: torch.Tensor) -> torch.Tensor:
    """Divide each feature vector by its L2 norm over channels (lpips.normalize_tensor)."""
    return x / (torch.sqrt(torch.sum(x * x, dim=1, keepdim=True)) + _EPS)


class LPIPS(nn.Module):
    """Perceptual distance between two image batches; differentiable with respect to the images.

    Takes ownership of `trunk` (its normalisation is set to LPIPS's scaling). Parameters are frozen;
    gradients flow to the inputs only, which is what a training loss needs.
    """

    def __init__(self, trunk: VGG16, lin_weights: Sequence[torch.Tensor]) -> None:
        super().__init__()
        if len(lin_weights) != len(LPIPS_LAYERS):
            raise ValueError(f"LPIPS needs {len(LPIPS_LAYERS)} lin weights, got {len(lin_weights)}")
        self.trunk = trunk
        self.trunk.set_normalization(*scaling_as_normalization())
        for i, (w, channels) in enumerate(zip(lin_weights, LPIPS_CHANNELS, strict=True)):
            self.register_buffer(f"lin{i}", torch.as_tensor(w, dtype=torch.float32).reshape(channels).clone())
        self.eval().requires_grad_(False)

    def lin_weights(self) -> list[torch.Tensor]:
        return [getattr(self, f"lin{i}") for i in range(len(LPIPS_LAYERS))]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y: (B, 3, H, W) RGB in [0, 1] -> (B,) float32 distances."""
        if x.shape != y.shape:
            raise ValueError(f"LPIPS inputs differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
        batch = x.shape[0]
        feats = self.trunk(torch.cat([x, y]), LPIPS_LAYERS)  # one pass for both: (2B, C_l, H_l, W_l) per tap
        total = torch.zeros(batch, dtype=torch.float32, device=x.device)
        for name, w in zip(LPIPS_LAYERS, self.lin_weights(), strict=True):
            f = _unit_normalize(feats[name].float())
            diff = (f[:batch] - f[batch:]) ** 2  # (B, C_l, H_l, W_l)
            # lin (1x1 conv, no bias) then spatial mean == weighted sum of per-channel spatial means
            total = total + (diff.mean(dim=(2, 3)) * w).sum(dim=1)
        return total


def load_lin_weights(path: Path) -> list[torch.Tensor]:
    """The five lin weights of an official LPIPS v0.1 VGG file, checked for layout and sign."""
    state = load_state_dict(path, "LPIPS")
    url = OFFICIAL["lpips"].url
    weights: list[torch.Tensor] = []
    for i, channels in enumerate(LPIPS_CHANNELS):
        w = state.get(lin_key(i))
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != (1, channels, 1, 1):
            got = None if w is None else tuple(getattr(w, "shape", ()))
            raise EpeflowError(
                f"LPIPS weights {path} do not have the official v0.1 vgg layout: key {lin_key(i)!r} should "
                f"have shape (1, {channels}, 1, 1), found {got} (keys in file: {sorted(state)[:8]}); "
                f"download {url}"
            )
        if bool((w < 0).any()):
            raise EpeflowError(
                f"LPIPS weights {path}: {lin_key(i)} has negative entries, but LPIPS lin weights are "
                f"non-negative; this is not an LPIPS weights file, download {url}"
            )
        weights.append(w.detach().float().reshape(channels))
    return weights


def uniform_lin_weights() -> list[torch.Tensor]:
    """Lin weights 1/C per tap: every tap counts equally (used when random weights are allowed)."""
    return [torch.full((c,), 1.0 / c) for c in LPIPS_CHANNELS]


def build_lpips(
    weights: Mapping[str, Any] | None, allow_random: bool, seed: int = 0
) -> tuple[LPIPS, bool]:
    """LPIPS in eval mode; returns (module, used_random_weights).

    `weights` is the config's `weights` section ({"vgg16": {...}, "lpips": {...}}). Missing files are an
    error naming them unless `allow_random`; then the trunk is random (seeded) and the lin weights uniform.
    """
    weights = dict(weights or {})
    trunk, trunk_random = build_vgg16(weights.get("vgg16"), allow_random, padding="zero", seed=seed)
    path = resolve_weights("lpips", weights.get("lpips"), allow_random)
    lins = uniform_lin_weights() if path is None else load_lin_weights(path)
    return LPIPS(trunk, lins), trunk_random or path is None

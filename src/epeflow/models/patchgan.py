"""Multiscale PatchGAN discriminator (pix2pixHD style) with label projection: an image-space alternative to PPDE.

Each scale is a small conv net with spectral norm (three stride-2 4x4 convs, one stride-1 3x3 conv) that
judges overlapping patches of the image, each scale seeing the image average-pooled once more than the last,
so coarse scales judge layout and fine ones texture. Realness is conditioned on MSeg labels by the same
projection as PPDE. No VGG16 is involved: `input_names` is just the image.

(The reference's own `patchgan` option cannot be built as published, so there is no checkpoint to match.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from epeflow.config import build_dataclass
from epeflow.errors import EpeflowError
from epeflow.models.disc_inputs import IMAGE
from epeflow.models.ppde import NUM_LABELS, active_heads, label_embedding, scaled


@dataclass(frozen=True)
class PatchGANConfig:
    num_scales: int = 3
    num_layers: int = 4  # convs per scale; all but the last halve the resolution
    base_dim: int = 64
    max_dim: int = 512
    num_labels: int = NUM_LABELS
    width: float = 1.0

    def __post_init__(self) -> None:
        sizes = (self.num_scales, self.num_layers, self.base_dim, self.max_dim, self.num_labels)
        if min(sizes) < 1 or not self.width > 0:
            raise EpeflowError(f"patchgan config: all values must be positive, got {asdict(self)}")

    @property
    def min_input_size(self) -> int:
        """Smallest image side every scale can judge: each strided conv halves, each scale halves again."""
        return 2 ** (self.num_layers - 1 + self.num_scales - 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PatchGANConfig:
        return build_dataclass(cls, dict(values), "patchgan config")


@torch.no_grad()
def settle_spectral_norm(module: nn.Module, steps: int = 20) -> None:
    """Power-iterate every spectral-normed weight's `_u`/`_v` so that sigma is right from the start (torch starts
    them random and steps once per training forward; an untrained model in eval mode would scale by ~1/0)."""
    for m in module.modules():
        if hasattr(m, "weight_orig") and hasattr(m, "weight_u"):
            w = m.weight_orig.flatten(1)  # (out, in * k * k)
            for _ in range(steps):
                m.weight_v.copy_(F.normalize(w.t() @ m.weight_u, dim=0))
                m.weight_u.copy_(F.normalize(w @ m.weight_v, dim=0))


class PatchHead(nn.Module):
    """One scale: spectral-normed convs with leaky relu, then a realness score plus label projection."""

    def __init__(self, config: PatchGANConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i in range(config.num_layers):
            c = min(scaled(config.max_dim, config.width), scaled(config.base_dim, config.width) * 2**i)
            strided = i < config.num_layers - 1
            conv = nn.Conv2d(c_in, c, 4 if strided else 3, stride=2 if strided else 1, padding=1)
            layers += [spectral_norm(conv), nn.LeakyReLU(0.2)]
            c_in = c
        self.model = nn.Sequential(*layers)
        self.out = spectral_norm(nn.Conv2d(c_in, 1, 3, padding=1))
        self.embedding = nn.Embedding(config.num_labels, c_in)
        nn.init.normal_(self.embedding.weight, std=0.01)

    def forward(self, image: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = self.model(image)  # (B, C, h/2^(L-1), w/2^(L-1))
        score = self.out(x)  # (B, 1, ...)
        if labels is None:
            return score
        emb = label_embedding(self.embedding, labels, x.shape[-2:])
        return (emb.to(x.dtype) * x).sum(dim=1, keepdim=True) + score


class PatchGAN(nn.Module):
    """`forward(inputs, labels)` -> one realness map per scale, finest first; inputs["image"] in [0, 1]."""

    input_names = (IMAGE,)

    def __init__(self, config: PatchGANConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or PatchGANConfig()
        self.discs = nn.ModuleList(PatchHead(config) for _ in range(config.num_scales))
        settle_spectral_norm(self)

    def forward(
        self, inputs: Mapping[str, torch.Tensor], labels: torch.Tensor | None, active: Sequence[bool] | None = None
    ) -> list[torch.Tensor | None]:
        active = active_heads(active, len(self.discs))
        x = inputs[IMAGE] * 2 - 1  # (B, 3, H, W) in [-1, 1]
        maps: list[torch.Tensor | None] = []
        for i, (disc, run) in enumerate(zip(self.discs, active, strict=True)):
            if i > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)  # (B, 3, H/2^i, W/2^i)
            maps.append(disc(x, labels) if run else None)
        return maps

    def __len__(self) -> int:
        return len(self.discs)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PatchGAN:
        return cls(PatchGANConfig.from_dict(config))

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

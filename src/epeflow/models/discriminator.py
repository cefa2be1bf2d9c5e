"""EPE's perceptual discriminator, small: realness maps from frozen VGG16 features, conditioned on labels.

The reference judges an image through many VGG16 layers, each with its own conv head, and conditions every
head on robust (MSeg) labels by a projection: a learned embedding of the label at each location is dotted
with the head's features there. This lets the discriminator ask "does this look like a real road?" rather
than "does this look real?", which keeps the generator from hallucinating, say, trees on roads.

The VGG16 is not part of this module (it is frozen and shared with the perceptual loss), so checkpoints
hold only the heads; `realism_maps` runs both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from epeflow.common.vgg16 import RELU_CHANNELS, RELU_INDEX, VGG16
from epeflow.config import build_dataclass
from epeflow.errors import EpeflowError
from epeflow.models.generator import num_groups

NUM_LABELS = 194  # MSeg universal taxonomy ids 0..193
UNLABELED = 255  # id of unlabeled pixels in label maps; its embedding is zero (no label evidence)
DEFAULT_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def vgg_stride(layer: str) -> int:
    """Downsampling of a VGG16 relu layer relative to the input (max-pools before it)."""
    return 2 ** sum(1 for i in (4, 9, 16, 23) if i < RELU_INDEX[layer])


def label_indices(labels: torch.Tensor) -> torch.Tensor:
    """Map label ids to embedding rows: 0..193 stay, 255 (and anything unknown) becomes the zero row."""
    labels = labels.long()
    return torch.where(labels < NUM_LABELS, labels, torch.full_like(labels, NUM_LABELS))


class ProjectionHead(nn.Module):
    """Convs over one VGG layer's features down to 1/8 of the image, then realness + label projection."""

    def __init__(self, c_in: int, channels: int, strides: int, num_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(num_layers):
            stride = 2 if i < strides else 1
            layers += [
                nn.Conv2d(c_in if i == 0 else channels, channels, 3, stride=stride, padding=1),
                nn.GroupNorm(num_groups(channels), channels),
                nn.LeakyReLU(0.2),
            ]
        self.body = nn.Sequential(*layers)
        self.out = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(channels, 1, 1))
        self.embedding = nn.Embedding(NUM_LABELS + 1, channels, padding_idx=NUM_LABELS)
        nn.init.normal_(self.embedding.weight[:NUM_LABELS], std=0.01)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = self.body(features)  # (B, channels, h, w)
        emb = self.embedding(label_indices(labels)).permute(0, 3, 1, 2)  # (B, channels, H, W)
        emb = F.adaptive_avg_pool2d(emb.to(x.dtype), x.shape[-2:])  # (B, channels, h, w): label mix per cell
        return self.out(x) + (emb * x).sum(dim=1, keepdim=True)  # (B, 1, h, w)


@dataclass(frozen=True)
class DiscriminatorConfig:
    layers: tuple[str, ...] = DEFAULT_LAYERS
    channels: int = 64
    num_layers: int = 3


class PerceptualDiscriminator(nn.Module):
    """One projection head per VGG16 layer; `forward(features, labels)` returns one realness map per layer."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        unknown = [name for name in config.layers if name not in RELU_INDEX]
        if unknown or not config.layers:
            raise EpeflowError(
                f"config key `train.discriminator_layers`: {unknown or 'empty list'} are not VGG16 relu layers; "
                f"use names from {', '.join(RELU_INDEX)}"
            )
        self.config = config
        self.heads = nn.ModuleDict(
            {
                name: ProjectionHead(
                    RELU_CHANNELS[name], config.channels, max(0, 3 - int(math.log2(vgg_stride(name)))),
                    config.num_layers,
                )
                for name in config.layers
            }
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=0.2, nonlinearity="leaky_relu")

    def forward(self, features: dict[str, torch.Tensor], labels: torch.Tensor) -> list[torch.Tensor]:
        # features[name]: (B, C_name, H/s, W/s); labels: (B, H, W) MSeg ids
        return [head(features[name], labels) for name, head in self.heads.items()]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PerceptualDiscriminator:
        config = dict(config)
        if "layers" in config:
            config["layers"] = tuple(config["layers"])
        return cls(build_dataclass(DiscriminatorConfig, config, "discriminator config"))

    def config_dict(self) -> dict[str, Any]:
        d = asdict(self.config)
        d["layers"] = list(d["layers"])
        return d


def realism_maps(
    discriminator: nn.Module, vgg: VGG16, image: torch.Tensor, labels: torch.Tensor, layers: Sequence[str]
) -> list[torch.Tensor]:
    """Realness maps of `image` (B, 3, H, W) in [0, 1]: frozen VGG16 features, then the trainable heads.

    `discriminator` may be the module wrapped for distributed training, hence `layers` is passed in.
    """
    return discriminator(vgg(image, layers), labels)

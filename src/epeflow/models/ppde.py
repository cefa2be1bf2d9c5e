"""EPE's perceptual projection discriminator ensemble (PPDE), with the reference's parameter layout.

The reference (`discriminator.type: ppde` in train_pfd2cs.yaml) judges an image through ten frozen VGG16
layers (relu1_1 .. relu4_3), each read by its own small conv net that strides down to 1/16 of the image.
Every net is conditioned on robust (MSeg) labels by a projection: a learned embedding of the label at each
location is dotted with the net's features there and added to a plain realness score, so the question is
"does this look like a real road?" rather than "does this look real?".

The state dict holds exactly the keys the reference saves in `*_disc-network.pth.tar` (the VGG16 is the
caller's, as in the reference), so reference checkpoints load as they are (`epeflow.epe.discriminator_checkpoint`).
Where we differ, on purpose:
- batches: the reference reshapes label embeddings to batch 1; ours works for any batch size.
- label 255 (MSeg's "unlabeled") and any id outside [0, num_labels) get a zero embedding (no label evidence,
  the plain score alone); the reference's `nn.Embedding(194)` fails on them. Bilinear resizing of the
  embedding map then fades the label term near unlabeled areas.
- the width of the realness head is the last conv's width; the reference takes `dims[3]`, which is the same
  whenever the reference builds at all.
- `width` scales every conv (multiples of 8, for GroupNorm's 8 groups) for tiny CPU runs; 1.0 is the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from epeflow.common.vgg16 import RELU_CHANNELS
from epeflow.config import build_dataclass
from epeflow.errors import EpeflowError

NUM_LABELS = 194  # MSeg universal taxonomy ids 0..193 (the reference hard-codes 194)
UNLABELED = 255
# The reference's vgg.relu_0 .. relu_9, in order: one projection discriminator each.
PPDE_LAYERS = (
    "relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3", "relu4_1", "relu4_2", "relu4_3",
)
# Stride-2 convs per layer, so that every realness map lands at 1/16 of the image.
PPDE_STRIDES = (4, 4, 3, 3, 2, 2, 2, 1, 1, 1)
NORMS = ("group", "none", "inst", "batch")


def _taps(n_in: int, n_out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices (i0, i1) and weight of i1 for bilinear resizing with align_corners=True, as torch's."""
    scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    src = torch.arange(n_out, device=device, dtype=torch.float32) * scale
    i0 = src.long().clamp(max=n_in - 1)
    return i0, (i0 + 1).clamp(max=n_in - 1), src - i0


def label_embedding(embedding: nn.Embedding, labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Embedding of each pixel's label, resized to `size` like the reference (bilinear, align_corners).

    The reference embeds every pixel, then resizes; that resizing reads only 2 x 2 pixels per output cell, so
    only those are embedded here (same result, a fraction of the memory and time at 1/16 of the image).
    labels: (B, H, W) or (B, 1, H, W) integer ids; ids outside [0, num_labels) embed to zero.
    Returns (B, C, h, w).
    """
    if labels.dim() == 4:
        labels = labels.squeeze(1)  # (B, H, W)
    if labels.dtype.is_floating_point or labels.dim() != 3:
        raise ValueError(f"labels must be (B, H, W) integer ids, got {tuple(labels.shape)} {labels.dtype}")
    n = embedding.num_embeddings
    labels = labels.long()
    ids = torch.where((labels >= 0) & (labels < n), labels, torch.full_like(labels, n))
    table = torch.cat([embedding.weight, embedding.weight.new_zeros(1, embedding.embedding_dim)])  # row n: zero
    y0, y1, wy = _taps(labels.shape[1], size[0], labels.device)
    x0, x1, wx = _taps(labels.shape[2], size[1], labels.device)
    wy, wx = wy.view(1, -1, 1, 1), wx.view(1, 1, -1, 1)

    def at(ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids[:, ys][:, :, xs], table)  # (B, h, w, C)

    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    return (top * (1 - wy) + bottom * wy).permute(0, 3, 1, 2)  # (B, C, h, w)


def _norm(kind: str, channels: int) -> list[nn.Module]:
    if kind == "group":
        return [nn.GroupNorm(8, channels)]
    if kind == "inst":
        return [nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)]
    if kind == "batch":  # mixes the samples of a batch, as in the reference
        return [nn.BatchNorm2d(channels, track_running_stats=False)]
    return []


def active_heads(active: Sequence[bool] | None, count: int) -> list[bool]:
    """Which of `count` heads run this step (all when None): the reference's adaptive backprop skips some."""
    heads = [True] * count if active is None else list(active)
    if len(heads) != count:
        raise ValueError(f"active has {len(heads)} entries for {count} discriminators")
    return heads


def scaled(channels: int, width: float) -> int:
    """Channel count times `width`, in multiples of 8 (at least 8); exact at width 1.0."""
    return channels if width == 1.0 else max(8, 8 * round(channels * width / 8))


def head_dims(c_in: int, config: PPDEConfig) -> list[int]:
    """Channel widths of one head's convs: start at min(max_dim, c_in), double per layer up to max_dim."""
    cap = scaled(config.max_dim, config.width)
    base = scaled(min(config.max_dim, c_in), config.width)
    return [min(cap, base * 2**i) for i in range(config.num_layers)]


class PPDEHead(nn.Module):
    """One VGG layer's projection discriminator: (pad, conv, norm, leaky relu) x num_layers, then the scores.

    Attribute names and Sequential indices are the reference's (`model`, `out`, `embedding`), hence the
    parameterless pads and activations inside `model`.
    """

    def __init__(self, c_in: int, dims: Sequence[int], strides: int, norm: str, num_labels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, d in enumerate(dims):
            conv = nn.Conv2d(c_in if i == 0 else dims[i - 1], d, 3, stride=2 if i < strides else 1, bias=False)
            layers += [nn.ReplicationPad2d(1), conv, *_norm(norm, d), nn.LeakyReLU(0.2)]
        self.model = nn.Sequential(*layers)
        c = dims[-1]
        self.out = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(c, 1, 1))
        self.embedding = nn.Embedding(num_labels, c)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = self.model(features)  # (B, C, H/16, W/16)
        score = self.out(x)  # (B, 1, H/16, W/16)
        if labels is None:
            return score
        emb = label_embedding(self.embedding, labels, x.shape[-2:])  # (B, C, H/16, W/16)
        return (emb.to(x.dtype) * x).sum(dim=1, keepdim=True) + score


@dataclass(frozen=True)
class PPDEConfig:
    """The reference's `discriminator.config` (norm, num_layers, max_dim), the label count, and our width."""

    max_dim: int = 256
    num_layers: int = 4
    norm: str = "group"
    num_labels: int = NUM_LABELS
    width: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if self.norm not in NORMS:
            problems.append(f"norm {self.norm!r} is not one of {', '.join(NORMS)}")
        if self.num_layers < 1:
            problems.append(f"num_layers {self.num_layers} must be at least 1")
        if self.max_dim < 1 or self.num_labels < 1 or not self.width > 0:
            problems.append("max_dim, num_labels and width must be positive")
        if self.norm == "group" and scaled(self.max_dim, self.width) % 8:
            problems.append(f"max_dim {self.max_dim} must be a multiple of 8 with group norm (8 groups)")
        if problems:
            raise EpeflowError(f"discriminator config: {'; '.join(problems)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PPDEConfig:
        return build_dataclass(cls, dict(values), "discriminator config")


class PPDE(nn.Module):
    """Ten projection discriminators over frozen VGG16 features; one realness map each, at 1/16 of the image.

    `forward(inputs, labels)`: `inputs` maps the names in `input_names` (VGG16 relu layers, computed by the
    caller with replicate padding like the reference's VGG16) to features (B, C, H/s, W/s); `labels` is
    (B, H, W) MSeg ids or None. `active[i] == False` skips head i and returns None in its place (the
    reference's adaptive backprop).
    """

    input_names = PPDE_LAYERS

    def __init__(self, config: PPDEConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or PPDEConfig()
        self.discs = nn.ModuleList(
            PPDEHead(RELU_CHANNELS[name], head_dims(RELU_CHANNELS[name], config), strides, config.norm,
                     config.num_labels)
            for name, strides in zip(PPDE_LAYERS, PPDE_STRIDES, strict=True)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="leaky_relu")
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.01)

    def forward(
        self, inputs: Mapping[str, torch.Tensor], labels: torch.Tensor | None, active: Sequence[bool] | None = None
    ) -> list[torch.Tensor | None]:
        active = active_heads(active, len(self.discs))
        return [
            disc(inputs[name], labels) if run else None
            for name, disc, run in zip(self.input_names, self.discs, active, strict=True)
        ]

    def __len__(self) -> int:
        return len(self.discs)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PPDE:
        return cls(PPDEConfig.from_dict(config))

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

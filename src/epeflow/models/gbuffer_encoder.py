"""The reference EPE G-buffer encoder: one stream per material class, then a shared pyramid.

A pixel's G-buffers mean different things for different materials (a sky pixel has no useful normal), so
each class gets its own small network, optionally fed only a slice of the channels (`class_slices`; the
reference gives the sky only channels 15:21 of its `all` G-buffers). Every pixel keeps the features of its
own class's stream; a joint encoder then makes one feature map per resolution of the image network.

Module and attribute names (`class_encoders`, `joint_encoder_layers`, `conv`, `down`, the Sequential
indices) are those of the reference, so its checkpoints load with `strict=True`. All convolutions here are
spectrally normalised with `torch.nn.utils.spectral_norm`, which stores `weight_orig`, `weight_u` and
`weight_v` exactly as the reference's state dicts do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import torch
from torch import nn


def spectral_conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """[replicate pad, spectral-norm 3x3 conv with bias]: indices 0 and 1, as the reference lays them out."""
    conv = nn.utils.spectral_norm(nn.Conv2d(c_in, c_out, 3, stride=stride, bias=True))
    return nn.Sequential(nn.ReplicationPad2d(1), conv)


def _conv_stack(widths: Sequence[int], stride: int) -> nn.Sequential:
    """Convs through `widths`; a ReLU after each except the last of two or more (the reference's rule, which
    keeps the ReLU of a single conv). Only the first conv is strided."""
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(pairwise(widths)):
        layers += list(spectral_conv3x3(c_in, c_out, stride if i == 0 else 1))
        if i == 0 or i < len(widths) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


@torch.no_grad()
def settle_spectral_norms(module: nn.Module, iterations: int = 10) -> None:
    """Run power iterations for every spectral-norm conv in `module`.

    Fresh spectral norms hold random, unrelated `weight_u`/`weight_v`, so until a training-mode forward has
    iterated them the estimated sigma is arbitrary (even negative) and an eval-mode forward blows up.
    """
    for m in module.modules():
        if hasattr(m, "weight_orig") and hasattr(m, "weight_u"):
            w = m.weight_orig.flatten(1)  # (C_out, C_in * 3 * 3): the matrix spectral_norm normalises (dim 0)
            u = m.weight_u
            for _ in range(iterations):
                v = nn.functional.normalize(w.t() @ u, dim=0, eps=1e-12)
                u = nn.functional.normalize(w @ v, dim=0, eps=1e-12)
            m.weight_u.copy_(u)
            m.weight_v.copy_(v)


class SpectralResBlock(nn.Module):
    """relu(convs(x) + shortcut(x)); the shortcut is a conv (with ReLU) when the width or stride changes."""

    def __init__(self, widths: Sequence[int], stride: int = 1) -> None:
        super().__init__()
        self.conv = _conv_stack(widths, stride)
        change = stride != 1 or widths[0] != widths[-1]
        self.down = _conv_stack([widths[0], widths[-1]], stride) if change else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.down is None else self.down(x)
        return self.relu(self.conv(x) + shortcut)


class GBufferEncoder(nn.Module):
    """G-buffers (B, C, H, W) and one-hot classes (B, K, H, W) -> one feature map per image-network branch.

    Branch i has `width` channels at resolution ceil(H / 2^i) (stride-2 steps round up, like the image
    network's). `class_slices` maps a class to the (start, stop) channel range its stream sees; other classes
    see all C channels.
    """

    def __init__(
        self,
        gbuffer_channels: int,
        num_classes: int,
        num_branches: int,
        class_slices: Mapping[int, tuple[int, int]] | None = None,
        hidden: int = 64,
        width: int = 128,
    ) -> None:
        super().__init__()
        self.gbuffer_channels, self.num_classes = gbuffer_channels, num_classes
        self.class_slices = dict(class_slices or {})
        streams = []
        for c in range(num_classes):
            start, stop = self.class_slices.get(c, (0, gbuffer_channels))
            streams.append(
                nn.Sequential(
                    SpectralResBlock([stop - start, hidden, hidden]), SpectralResBlock([hidden, hidden, width])
                )
            )
        self.class_encoders = nn.ModuleList(streams)
        self.joint_encoder_layers = nn.ModuleList(
            [
                nn.Sequential(SpectralResBlock([width] * 3, 1 if i == 0 else 2), SpectralResBlock([width] * 3))
                for i in range(num_branches)
            ]
        )

    def forward(self, gbuffers: torch.Tensor, classes: torch.Tensor) -> list[torch.Tensor]:
        features = 0
        for c, stream in enumerate(self.class_encoders):
            start, stop = self.class_slices.get(c, (0, self.gbuffer_channels))
            # (B, 1, H, W) * (B, width, H, W): the reference indexes classes[:, c], which broadcasts only for B=1.
            features = features + classes[:, c : c + 1] * stream(gbuffers[:, start:stop])
        pyramid = []
        for layer in self.joint_encoder_layers:
            features = layer(features)  # (B, width, ceil(H/2^i), ceil(W/2^i))
            pyramid.append(features)
        return pyramid

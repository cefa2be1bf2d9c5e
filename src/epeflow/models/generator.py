"""EPE-style image enhancement network: G-buffers, routed by material, modulate a multi-resolution image net.

Read top to bottom: building blocks (padded convs, G-buffer-modulated normalisation, residual blocks), the
G-buffer encoder with one stream per material, the image network, and `from_config`.

The idea follows "Enhancing Photorealism Enhancement" (Richter et al.): a pixel's G-buffers (normals, depth,
albedo, ...) are encoded by the stream of its material class, because what a G-buffer value means for the
final look depends on the material. The encoded features then scale and shift the normalised features of
the image network at every resolution (the reference's "RAD" blocks). The output is the input image
changed by a residual in logit space, so it always stays in [0, 1] and starts near the identity.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from epeflow.config import build_dataclass

NUM_MATERIALS = 12  # epeflow.common.taxonomy.materials_from_cityscapes
LEVELS = 4  # resolutions 1, 1/2, 1/4, 1/8: inputs are padded to a multiple of 8


def conv3x3(c_in: int, c_out: int, stride: int = 1, groups: int = 1, bias: bool = True) -> nn.Conv2d:
    """3x3 convolution with replicate padding (no dark borders in the output, as in the reference)."""
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, padding_mode="replicate", groups=groups, bias=bias)


def num_groups(channels: int) -> int:
    """GroupNorm groups: 8 where the width allows (the reference's choice), fewer for narrow layers, and at
    least 2 channels a group so a 1x1 feature map (tiny inputs at 1/8) still has a variance."""
    return math.gcd(8, max(1, channels // 2))


class GBufferNorm(nn.Module):
    """Normalise image features, then scale and shift them per pixel from encoded G-buffer features."""

    def __init__(self, channels: int, gbuffer_width: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(num_groups(channels), channels, affine=False)
        self.scale = nn.Conv2d(gbuffer_width, channels, 1)
        self.shift = nn.Conv2d(gbuffer_width, channels, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        # x: (B, channels, h, w), g: (B, gbuffer_width, h, w)
        return self.norm(x) * (1 + self.scale(g)) + self.shift(g)


class ModulatedResBlock(nn.Module):
    """Residual block whose two normalisations are modulated by the G-buffer features of its resolution."""

    def __init__(self, channels: int, gbuffer_width: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(channels, channels, bias=False)
        self.norm1 = GBufferNorm(channels, gbuffer_width)
        self.conv2 = conv3x3(channels, channels, bias=False)
        self.norm2 = GBufferNorm(channels, gbuffer_width)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x), g))
        y = self.norm2(self.conv2(y), g)
        return F.relu(x + y)


class ConvNormAct(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__(conv3x3(c_in, c_out, stride, bias=False), nn.GroupNorm(num_groups(c_out), c_out), nn.ReLU())


class GBufferEncoder(nn.Module):
    """One small conv stream per material; each pixel keeps the features of its own material's stream.

    All streams run as one grouped convolution over the G-buffers repeated per material, which is the same
    computation as separate networks but one kernel launch. A shared pyramid then gives the features for
    each resolution of the image network.
    """

    def __init__(self, gbuffer_channels: int, num_materials: int, width: int) -> None:
        super().__init__()
        self.num_materials, self.width = num_materials, width
        m = num_materials
        self.streams = nn.Sequential(
            conv3x3(m * gbuffer_channels, m * width, groups=m),
            nn.LeakyReLU(0.2),
            conv3x3(m * width, m * width, groups=m),
            nn.LeakyReLU(0.2),
        )
        self.pyramid = nn.ModuleList(
            [ConvNormAct(width, width, stride=1 if level == 0 else 2) for level in range(LEVELS)]
        )

    def forward(self, gbuffers: torch.Tensor, materials: torch.Tensor) -> list[torch.Tensor]:
        b, _, h, w = gbuffers.shape
        x = gbuffers.repeat(1, self.num_materials, 1, 1)  # (B, M*C, H, W): a copy per material stream
        x = self.streams(x).view(b, self.num_materials, self.width, h, w)  # (B, M, width, H, W)
        x = (x * materials.unsqueeze(2)).sum(dim=1)  # (B, width, H, W): each pixel from its material's stream
        features = []
        for down in self.pyramid:
            x = down(x)  # (B, width, H/2^level, W/2^level)
            features.append(x)
        return features


@dataclass(frozen=True)
class GeneratorConfig:
    gbuffer_channels: int
    num_materials: int = NUM_MATERIALS
    channels: int = 64  # width at full resolution; doubles per level up to 4x
    blocks: int = 4  # modulated residual blocks per level
    gbuffer_width: int = 32  # width of each material stream and of the G-buffer pyramid

    def level_channels(self, level: int) -> int:
        return self.channels * min(2**level, 4)


class Generator(nn.Module):
    """Enhances an image (B, 3, H, W) in [0, 1] given G-buffers (B, C, H, W) and materials (B, 12, H, W).

    Fully convolutional: any size works (inputs are padded to a multiple of 8 and the output cropped back).
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        c, gw = config.level_channels, config.gbuffer_width
        self.gbuffer_encoder = GBufferEncoder(config.gbuffer_channels, config.num_materials, gw)
        self.stem = ConvNormAct(3, c(0))
        self.down = nn.ModuleList([nn.Identity()] + [ConvNormAct(c(i - 1), c(i), stride=2) for i in range(1, LEVELS)])
        self.encode = nn.ModuleList(
            [nn.ModuleList([ModulatedResBlock(c(i), gw) for _ in range(config.blocks)]) for i in range(LEVELS)]
        )
        self.fuse = nn.ModuleList([ConvNormAct(c(i + 1) + c(i), c(i)) for i in range(LEVELS - 1)])
        self.to_residual = nn.Conv2d(c(0), 3, 1)
        # Small output weights: the network starts close to the identity but every layer receives gradients.
        nn.init.normal_(self.to_residual.weight, std=1e-3)
        nn.init.zeros_(self.to_residual.bias)

    def forward(self, image: torch.Tensor, gbuffers: torch.Tensor, materials: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        pad = (0, -w % 8, 0, -h % 8)  # right, bottom
        if any(pad):
            image, gbuffers, materials = (F.pad(t, pad, mode="replicate") for t in (image, gbuffers, materials))
        g = self.gbuffer_encoder(gbuffers, materials)  # level i: (B, gbuffer_width, H/2^i, W/2^i)

        x = self.stem(image)  # (B, c0, H, W)
        skips = []
        for level in range(LEVELS):
            x = self.down[level](x)  # (B, c_level, H/2^level, W/2^level)
            for block in self.encode[level]:
                x = block(x, g[level])
            skips.append(x)
        for level in reversed(range(LEVELS - 1)):
            up = F.interpolate(x, size=skips[level].shape[-2:], mode="bilinear", align_corners=False)
            x = self.fuse[level](torch.cat((up, skips[level]), dim=1))  # (B, c_level, H/2^level, W/2^level)
        residual = self.to_residual(x).float()  # (B, 3, H, W)

        # Residual in logit space: the result stays in (0, 1) whatever the network outputs.
        logit = torch.logit(image.float().clamp(1e-3, 1 - 1e-3))
        return torch.sigmoid(logit + residual)[..., :h, :w]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Generator:
        """Build from a plain dict (as stored in model.pt); unknown keys are an error naming them."""
        return cls(build_dataclass(GeneratorConfig, config, "generator config"))

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)

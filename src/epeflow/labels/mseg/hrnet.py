"""HRNetV2-W48 as released with MSeg's universal models (mseg-3m.pth, mseg-1m.pth).

Module names follow mseg-semantic's seg_hrnet.py, so the official checkpoints load strictly once their
`module.` prefix is removed. Written from the architecture (Wang et al., "Deep High-Resolution
Representation Learning"; W48 configuration of MSeg's seg_hrnet.yaml), with plain BatchNorm (inference
only). Resolution flow for an input of H x W:

    stem: two stride-2 3x3 convs                       (B, 64, H/4, W/4)
    layer1: 4 bottlenecks                              (B, 256, H/4, W/4)
    stage2..4: 1, 4, 3 modules of 2, 3, 4 branches     (B, 48|96|192|384, H/4|8|16|32, W/4|8|16|32)
    head: concat upsampled branches, 1x1 conv, 1x1 classifier (B, 194, H/4, W/4) -> bilinear to H x W
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

NUM_CLASSES = 194
BN_MOMENTUM = 0.01


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (branches of stages 2-4)."""

    expansion = 1

    def __init__(self, cin: int, channels: int, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(cin, channels), _bn(channels)
        self.conv2, self.bn2 = _conv3x3(channels, channels), _bn(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 - 3x3 - 1x1 with 4x expansion (stage 1)."""

    expansion = 4

    def __init__(self, cin: int, channels: int, downsample: nn.Module | None = None) -> None:
        super().__init__()
        out = channels * self.expansion
        self.conv1, self.bn1 = nn.Conv2d(cin, channels, 1, bias=False), _bn(channels)
        self.conv2, self.bn2 = _conv3x3(channels, channels), _bn(channels)
        self.conv3, self.bn3 = nn.Conv2d(channels, out, 1, bias=False), _bn(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _blocks(block: type[BasicBlock] | type[Bottleneck], cin: int, channels: int, count: int) -> nn.Sequential:
    """`count` blocks; the first projects the input with a 1x1 conv + BN when the widths differ."""
    out = channels * block.expansion
    downsample = nn.Sequential(nn.Conv2d(cin, out, 1, bias=False), _bn(out)) if cin != out else None
    return nn.Sequential(block(cin, channels, downsample), *[block(out, channels) for _ in range(count - 1)])


def _down(cin: int, cout: int, relu: bool) -> nn.Sequential:
    """Stride-2 3x3 conv + BN (+ ReLU): one halving step of a fuse or transition path."""
    layers: list[nn.Module] = [_conv3x3(cin, cout, stride=2), _bn(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks, then every branch receives the sum of all branches (fuse)."""

    def __init__(self, channels: list[int], blocks: int = 4) -> None:
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList([_blocks(BasicBlock, c, c, blocks) for c in channels])
        fuse: list[nn.ModuleList] = []
        for i in range(n):
            paths: list[nn.Module | None] = []
            for j in range(n):
                if j > i:  # lower resolution: 1x1 conv to branch i's width, upsampled in forward
                    paths.append(nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False), _bn(channels[i])))
                elif j == i:
                    paths.append(None)
                else:  # higher resolution: i - j stride-2 convs, the last one to branch i's width
                    steps = [_down(channels[j], channels[j], relu=True) for _ in range(i - j - 1)]
                    paths.append(nn.Sequential(*steps, _down(channels[j], channels[i], relu=False)))
            fuse.append(nn.ModuleList(paths))
        self.fuse_layers = nn.ModuleList(fuse) if n > 1 else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        if self.fuse_layers is None:
            return xs
        out = []
        for i, paths in enumerate(self.fuse_layers):
            y = xs[i]
            for j, path in enumerate(paths):
                if j == i:
                    continue
                z = path(xs[j])
                if j > i:
                    z = F.interpolate(z, size=xs[i].shape[-2:], mode="bilinear", align_corners=False)
                y = y + z
            out.append(self.relu(y))
        return out


@dataclass(frozen=True)
class HRNetConfig:
    """Widths and depths of HRNetV2; the defaults are W48 as in MSeg's seg_hrnet.yaml."""

    stage_channels: tuple[int, ...] = (48, 96, 192, 384)
    stage_modules: tuple[int, ...] = (1, 4, 3)  # stages 2, 3, 4
    blocks: int = 4
    stem_blocks: int = 4
    num_classes: int = NUM_CLASSES


class HRNetV2(nn.Module):
    """Semantic segmentation network; forward returns class logits at input resolution (B, classes, H, W)."""

    def __init__(self, config: HRNetConfig = HRNetConfig()) -> None:
        super().__init__()
        self.config = config
        c = list(config.stage_channels)
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False), _bn(64)
        self.conv2, self.bn2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False), _bn(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _blocks(Bottleneck, 64, 64, config.stem_blocks)
        stem_out = 64 * Bottleneck.expansion
        self.transition1 = self._transition([stem_out], c[:2])
        self.stage2 = self._stage(c[:2], config.stage_modules[0], config.blocks)
        self.transition2 = self._transition(c[:2], c[:3])
        self.stage3 = self._stage(c[:3], config.stage_modules[1], config.blocks)
        self.transition3 = self._transition(c[:3], c[:4])
        self.stage4 = self._stage(c[:4], config.stage_modules[2], config.blocks)
        width = sum(c)  # 720 for W48
        self.last_layer = nn.Sequential(
            nn.Conv2d(width, width, 1), _bn(width), nn.ReLU(inplace=True), nn.Conv2d(width, config.num_classes, 1)
        )

    @staticmethod
    def _stage(channels: list[int], modules: int, blocks: int) -> nn.Sequential:
        return nn.Sequential(*[HighResolutionModule(channels, blocks) for _ in range(modules)])

    @staticmethod
    def _transition(before: list[int], after: list[int]) -> nn.ModuleList:
        """Adapt existing branches' widths (3x3 conv) and open one new branch at half resolution."""
        layers: list[nn.Module | None] = []
        for i, cout in enumerate(after):
            if i < len(before):
                same = before[i] == cout
                layers.append(None if same else nn.Sequential(_conv3x3(before[i], cout), _bn(cout), nn.ReLU(True)))
            else:
                steps = [_down(before[-1], before[-1], True) for _ in range(i - len(before))]
                layers.append(nn.Sequential(*steps, _down(before[-1], cout, relu=True)))
        return nn.ModuleList(layers)

    @staticmethod
    def _branch_inputs(transition: nn.ModuleList, ys: list[torch.Tensor]) -> list[torch.Tensor]:
        return [ys[i] if t is None and i < len(ys) else t(ys[min(i, len(ys) - 1)]) for i, t in enumerate(transition)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))  # (B, 64, H/4, W/4)
        x = self.layer1(x)  # (B, 256, H/4, W/4)
        ys = self.stage2(self._branch_inputs(self.transition1, [x]))
        ys = self.stage3(self._branch_inputs(self.transition2, ys))
        ys = self.stage4(self._branch_inputs(self.transition3, ys))  # 4 x (B, C_i, H/2^(i+2), W/2^(i+2))
        top = ys[0].shape[-2:]
        ups = [ys[0]] + [F.interpolate(y, size=top, mode="bilinear", align_corners=False) for y in ys[1:]]
        logits = self.last_layer(torch.cat(ups, dim=1))  # (B, classes, H/4, W/4)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=True)  # (B, classes, H, W)


def empty_model(config: HRNetConfig = HRNetConfig()) -> HRNetV2:
    """Parameters allocated but not initialised (building 66M default-initialised weights takes seconds);
    fill them with `load_state_dict` or `init_random`. BatchNorm statistics start at (0, 1)."""
    with torch.device("meta"):
        model = HRNetV2(config)
    model = model.to_empty(device="cpu")
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
    return model


def init_random(model: HRNetV2, seed: int = 0) -> None:
    """Seeded He initialisation (unit BN): reproducible random weights whose predictions still vary by pixel."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * (2.0 / fan_out) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
        for m in model.modules():  # residual blocks start as identities, so activations keep their scale
            if isinstance(m, Bottleneck):
                m.bn3.weight.zero_()
            elif isinstance(m, BasicBlock):
                m.bn2.weight.zero_()

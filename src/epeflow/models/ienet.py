"""The reference EPE generator ("image enhancement network"), checkpoint-compatible with the reference code.

An HRNet: a full-resolution stem, then stages that each add a branch at half the previous resolution and
exchange information between all branches; every residual block normalises its features and re-scales and
shifts them per pixel from encoded G-buffers (the reference's "RAD" norm). Branch outputs are merged from
coarse to fine and give a residual that is added to the input image in logit space, so the output stays in
(0, 1) and an all-zero residual is the identity.

Read top to bottom: config, norms, blocks, one multi-resolution module, the network, `IENet`.
Module names, Sequential indices and norms follow the reference's `HighResolutionNet` inside its
`ResidualGenerator` (what it saves as `<name>_gen-network.pth.tar`), so `IENet.load_state_dict` takes a
reference state dict with `strict=True`. The reference's setting (train_pfd2cs.yaml) is the default.

`width` (ours) scales every channel count for tiny runs; counts are rounded to multiples of 8 (at least 8)
so that the reference's GroupNorm(8, .) still applies. Width 1.0 is the reference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from epeflow.config import build_dataclass
from epeflow.errors import EpeflowError
from epeflow.models.gbuffer_encoder import GBufferEncoder, SpectralResBlock, settle_spectral_norms

# G-buffer channels of the reference's PfD dataset per mode (PfDDataset.num_gbuffer_channels).
GBUFFER_MODES = {"fake": 32, "all": 26, "no_light": 17, "geometry": 8, "img": 0}
# The reference's PfDDataset.cls2gbuf: with `all` G-buffers the sky (class 0) sees only channels 15:21.
CLASS_SLICES = {"all": ((0, 15, 21),)}
NORMS = ("group", "batch", "inst")
BASE_CHANNELS = 16  # stem and first branch; branch j has 16 * 2^j (reference make_hrnet_config)
BLOCKS_PER_BRANCH = 4
ENCODER_HIDDEN = 64  # per-class stream width
GBUFFER_WIDTH = 128  # encoded G-buffer features and the RAD norm's embedding


@dataclass(frozen=True)
class IENetConfig:
    """Architecture of the reference generator; `None` fields take the reference's value for the mode."""

    gbuffer_mode: str = "fake"  # fake | all | no_light | geometry | img (no G-buffers, no materials)
    gbuffer_channels: int | None = None  # C of the G-buffer input; None: 32/26/17/8/0 as the reference
    num_classes: int = 12  # material classes (one-hot input), one encoder stream each
    class_slices: tuple[tuple[int, int, int], ...] | None = None  # (class, start, stop); None: reference rule
    num_stages: int = 4  # branches at 1, 1/2, ..., 1/2^(num_stages-1) resolution; the reference needs >= 3
    num_gbuffer_layers: int = 3  # spectral res-blocks embedding the G-buffer features in each RAD norm
    width: float = 1.0  # channel multiplier (ours); 1.0 = the reference's widths
    stem_norm: str = "group"
    other_norm: str = "group"  # transitions, fusion and output layers
    gbuffer_norm: str | None = None  # RAD (G-buffer modes) or Default (img: BatchNorm ignoring G-buffers)
    gbuffer_encoder_norm: str = "residual"

    def __post_init__(self) -> None:
        mode = self.gbuffer_mode
        if mode not in GBUFFER_MODES:
            raise EpeflowError(f"generator config `gbuffer_mode`: {mode!r} is not one of {', '.join(GBUFFER_MODES)}")
        if self.gbuffer_channels is None:
            object.__setattr__(self, "gbuffer_channels", GBUFFER_MODES[mode])
        slices = CLASS_SLICES.get(mode, ()) if self.class_slices is None else self.class_slices
        object.__setattr__(self, "class_slices", tuple(tuple(int(v) for v in s) for s in slices))
        if self.gbuffer_norm is None:
            object.__setattr__(self, "gbuffer_norm", "Default" if mode == "img" else "RAD")
        self._validate()

    def _validate(self) -> None:
        def fail(key: str, why: str) -> None:
            raise EpeflowError(f"generator config `{key}`: {why}")

        img = self.gbuffer_mode == "img"
        if img and self.gbuffer_channels != 0:
            fail("gbuffer_channels", "must be 0 for gbuffer_mode img")
        if not img and self.gbuffer_channels < 1:
            fail("gbuffer_channels", f"must be >= 1 for gbuffer_mode {self.gbuffer_mode}")
        if not img and self.num_classes < 1:
            fail("num_classes", "must be >= 1 (one G-buffer encoder stream per material class)")
        for s in self.class_slices:
            ok = len(s) == 3 and 0 <= s[0] < self.num_classes and 0 <= s[1] < s[2] <= self.gbuffer_channels
            if not ok:
                fail("class_slices", f"{s} is not (class < {self.num_classes}, start, stop <= {self.gbuffer_channels})")
        if self.num_stages < 2:
            fail("num_stages", "must be >= 2")
        if self.num_gbuffer_layers < 0:
            fail("num_gbuffer_layers", "must be >= 0")
        if not self.width > 0:
            fail("width", "must be > 0")
        for key in ("stem_norm", "other_norm"):
            if getattr(self, key) not in NORMS:
                fail(key, f"{getattr(self, key)!r} is not one of {', '.join(NORMS)}")
        wanted = "Default" if img else "RAD"
        if self.gbuffer_norm != wanted:
            fail("gbuffer_norm", f"only {wanted} is implemented for gbuffer_mode {self.gbuffer_mode}")
        if self.gbuffer_encoder_norm != "residual":
            fail("gbuffer_encoder_norm", "only residual is implemented")

    def channels(self, reference_channels: int) -> int:
        """A reference channel count scaled by `width`, rounded to a multiple of 8 (GroupNorm uses 8 groups)."""
        return max(8, int(reference_channels * self.width / 8 + 0.5) * 8)

    def branch_channels(self) -> list[int]:
        return [self.channels(BASE_CHANNELS * 2**j) for j in range(self.num_stages)]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["class_slices"] = [list(s) for s in self.class_slices]
        return d

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> IENetConfig:
        """From `to_dict()` output (JSON lists become tuples); unknown keys are an error naming them."""
        values = dict(values)
        if values.get("class_slices") is not None:
            values["class_slices"] = tuple(tuple(s) for s in values["class_slices"])
        return build_dataclass(cls, values, "generator config")


# --- norms -------------------------------------------------------------------------------------------------


def make_norm(kind: str, channels: int) -> nn.Module:
    """The reference's plain norms (network_factory.norm_factory)."""
    if kind == "group":
        return nn.GroupNorm(8, channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels, track_running_stats=False)
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)


class GBufferNorm(nn.Module):
    """RAD: GroupNorm without affine, then a per-pixel scale and shift computed from G-buffer features."""

    def __init__(self, channels: int, gbuffer_width: int, num_layers: int) -> None:
        super().__init__()
        self._norm = nn.GroupNorm(8, channels, affine=False)
        layers = [SpectralResBlock([gbuffer_width, gbuffer_width]) for _ in range(num_layers)]
        self._conv = nn.Sequential(*layers) if layers else None
        self._scale = nn.Conv2d(gbuffer_width, channels, 1)
        self._bias = nn.Conv2d(gbuffer_width, channels, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        # x: (B, channels, h, w), g: (B, gbuffer_width, h, w)
        if self._conv is not None:
            g = self._conv(g)
        return self._norm(x) * self._scale(g) + self._bias(g)


class BatchNormIgnoringGBuffers(nn.BatchNorm2d):
    """The reference's `Default` norm for runs without G-buffers: affine BatchNorm with running statistics."""

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:  # noqa: ARG002
        return super().forward(x)


NormFactory = Callable[[int], nn.Module]


# --- blocks ------------------------------------------------------------------------------------------------


def padded_conv3x3(c_in: int, c_out: int, stride: int = 1, bias: bool = False) -> list[nn.Module]:
    """[replicate pad, 3x3 conv]: the reference pads by replication, so borders are not darkened."""
    return [nn.ReplicationPad2d(1), nn.Conv2d(c_in, c_out, 3, stride=stride, bias=bias)]


class BasicBlock(nn.Module):
    """HRNet residual block whose two norms see the G-buffer features of the block's resolution."""

    def __init__(self, channels: int, norm: NormFactory) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(*padded_conv3x3(channels, channels))
        self.bn1 = norm(channels)
        self.conv2 = nn.Sequential(nn.ReLU(inplace=True), nn.Sequential(*padded_conv3x3(channels, channels)))
        self.bn2 = norm(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        y = self.bn1(self.conv1(x), g)
        y = self.bn2(self.conv2(y), g)
        return self.relu(y + x)


class Branch(nn.ModuleList):
    """A run of BasicBlocks at one resolution, all modulated by the same G-buffer features."""

    def forward(self, x: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        for block in self:
            x = block(x, g)
        return x


class HighResolutionModule(nn.Module):
    """Runs every branch, then gives each output branch the sum of all branches brought to its resolution:
    finer ones by stride-2 convs, coarser ones by a 1x1 conv and bilinear upsampling."""

    def __init__(self, channels: list[int], norm: NormFactory, other_norm: str) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [Branch([BasicBlock(c, norm) for _ in range(BLOCKS_PER_BRANCH)]) for c in channels]
        )
        fuse = []
        for i, c_out in enumerate(channels):
            row: list[nn.Module | None] = []
            for j, c_in in enumerate(channels):
                if j > i:  # coarser: 1x1 conv here, upsampled in forward
                    row.append(nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), make_norm(other_norm, c_out)))
                elif j == i:
                    row.append(None)
                else:  # finer: i - j stride-2 convs, keeping c_in channels until the last
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        c = c_out if last else c_in
                        step = [*padded_conv3x3(c_in, c, stride=2), make_norm(other_norm, c)]
                        steps.append(nn.Sequential(*step) if last else nn.Sequential(*step, nn.ReLU()))
                    row.append(nn.Sequential(*steps))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)
        self.relu = nn.ReLU()

    def forward(self, xs: list[torch.Tensor], gs: list[torch.Tensor | None]) -> list[torch.Tensor]:
        xs = [branch(x, g) for branch, x, g in zip(self.branches, xs, gs[: len(xs)], strict=True)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = None  # summed in branch order, as the reference does
            for j, layer in enumerate(row):
                if j == i:
                    term = xs[j]
                elif j < i:
                    term = layer(xs[j])
                else:
                    term = F.interpolate(layer(xs[j]), size=xs[i].shape[-2:], mode="bilinear", align_corners=False)
                y = term if y is None else y + term
            out.append(self.relu(y))
        return out


# --- the network -------------------------------------------------------------------------------------------


class HighResolutionNet(nn.Module):
    """Image (B, 3, H, W), G-buffers, classes -> residual (B, 3, H, W) in logit space."""

    def __init__(self, config: IENetConfig) -> None:
        super().__init__()
        self.config = config
        chans = config.branch_channels()  # [16, 32, 64, 128] at width 1
        c0, other = chans[0], config.other_norm
        self.stem = nn.Sequential(
            *padded_conv3x3(3, c0), make_norm(config.stem_norm, c0), nn.ReLU(inplace=True),
            *padded_conv3x3(c0, c0), make_norm(config.stem_norm, c0), nn.ReLU(inplace=True),
        )  # fmt: skip
        if config.gbuffer_mode == "img":
            self.gbuffer_encoder = None

            def norm(c: int) -> nn.Module:
                return BatchNormIgnoringGBuffers(c)
        else:
            gw = config.channels(GBUFFER_WIDTH)
            self.gbuffer_encoder = GBufferEncoder(
                config.gbuffer_channels,
                config.num_classes,
                config.num_stages,
                {c: (start, stop) for c, start, stop in config.class_slices},
                hidden=config.channels(ENCODER_HIDDEN),
                width=gw,
            )

            def norm(c: int) -> nn.Module:
                return GBufferNorm(c, gw, config.num_gbuffer_layers)

        self.layer1 = Branch([BasicBlock(c0, norm) for _ in range(BLOCKS_PER_BRANCH)])
        transitions, stages = [], []
        for n in range(2, config.num_stages + 1):  # stage n has n branches; the new one from the coarsest
            new = nn.Sequential(
                nn.Sequential(
                    nn.Conv2d(chans[n - 2], chans[n - 1], 3, 2, 1, bias=False),
                    make_norm(other, chans[n - 1]),
                    nn.ReLU(),
                )
            )
            transitions.append(nn.ModuleList([None] * (n - 1) + [new]))
            stages.append(nn.ModuleList([HighResolutionModule(chans[:n], norm, other)]))
        self.transitions = nn.ModuleList(transitions)
        self.stages = nn.ModuleList(stages)

        up = []
        for i, (c_coarse, c_fine) in enumerate(pairwise(chans[::-1])):
            layers = [
                *padded_conv3x3(c_coarse + c_fine, c_fine, bias=True),
                make_norm(other, c_fine),
                nn.LeakyReLU(0.2, True),
            ]
            if i == config.num_stages - 2:  # finest: to the 3-channel residual
                layers += padded_conv3x3(c_fine, 3, bias=True)
            up.append(nn.Sequential(*layers))
        self.up_layers = nn.ModuleList(up)

    def forward(self, image: torch.Tensor, gbuffers: torch.Tensor | None, classes: torch.Tensor | None) -> torch.Tensor:
        if self.gbuffer_encoder is None:
            gs: list[torch.Tensor | None] = [None] * self.config.num_stages
        else:
            gs = list(self.gbuffer_encoder(gbuffers, classes))  # branch j: (B, 128w, ceil(H/2^j), ceil(W/2^j))
        x = self.layer1(self.stem(image), gs[0])  # (B, c0, H, W)
        xs = [x]
        for transition, stage in zip(self.transitions, self.stages, strict=True):
            xs = xs + [transition[-1](xs[-1])]  # new branch at half the coarsest resolution, rounded up
            xs = stage[0](xs, gs)
        y = xs[-1]
        for up, skip in zip(self.up_layers, xs[::-1][1:], strict=True):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = up(torch.cat((y, skip), 1))  # (B, c_skip or 3, h_skip, w_skip)
        return y


class IENet(nn.Module):
    """The reference generator: `enhanced = sigmoid(logit(image) + residual)`, image and result in [0, 1].

    forward(image (B, 3, H, W), gbuffers (B, C, H, W) or None in img mode, materials one-hot (B, K, H, W)
    float or None in img mode) -> (B, 3, H, W). Any H, W work (stride-2 steps round up, upsampling matches
    sizes exactly), as in the reference. state_dict keys are the reference generator's (`network.` ...).
    """

    def __init__(self, config: IENetConfig | None = None) -> None:
        super().__init__()
        self.config = config or IENetConfig()
        self.network = HighResolutionNet(self.config)
        # Ours: the last conv starts 100x smaller than PyTorch's default, so a fresh network is nearly the identity
        # and short runs start from the rendered frame instead of undoing a random residual, while gradients
        # still reach every layer (a zero start would stop them). Reference checkpoints overwrite it on load.
        last = self.network.up_layers[-1][-1]
        with torch.no_grad():
            last.weight.mul_(0.01)
            last.bias.zero_()
        settle_spectral_norms(self)  # so that a fresh network already works in eval mode

    def forward(
        self, image: torch.Tensor, gbuffers: torch.Tensor | None = None, materials: torch.Tensor | None = None
    ) -> torch.Tensor:
        self._check_inputs(image, gbuffers, materials)
        if self.config.gbuffer_mode == "img":
            gbuffers = materials = None
        residual = self.network(image, gbuffers, materials)  # (B, 3, H, W)
        return torch.sigmoid(torch.logit(image.clamp(min=0.001, max=0.999)) + residual)

    def _check_inputs(self, image: torch.Tensor, gbuffers: torch.Tensor | None, materials: torch.Tensor | None) -> None:
        cfg = self.config
        if image.ndim != 4 or image.shape[1] != 3:
            raise EpeflowError(f"generator input: image must be (B, 3, H, W), got {tuple(image.shape)}")
        if cfg.gbuffer_mode == "img":
            return
        b, _, h, w = image.shape
        for name, t, c in (("gbuffers", gbuffers, cfg.gbuffer_channels), ("materials", materials, cfg.num_classes)):
            if t is None or tuple(t.shape) != (b, c, h, w):
                got = None if t is None else tuple(t.shape)
                raise EpeflowError(
                    f"generator input: {name} must be {(b, c, h, w)} for gbuffer_mode {cfg.gbuffer_mode}, got {got}; "
                    "the data and the generator's config (G-buffer mode, channels, classes) do not fit"
                )

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> IENet:
        """Build from a plain dict as written by `IENetConfig.to_dict()`."""
        return cls(IENetConfig.from_dict(values))

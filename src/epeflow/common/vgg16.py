"""VGG16 feature extractor with torchvision's parameter layout (so `vgg16-397923af.pth` loads as is).

Written here rather than imported from torchvision so the package runs with a plain CPU torch wheel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import torch
from torch import nn

from epeflow.errors import EpeflowError
from epeflow.weights import load_state_dict, resolve_weights

Padding = Literal["zero", "none", "replicate"]

# torchvision vgg16 `features` indices: convolutions (in, out) and where the max-pools sit.
_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
RELU_INDEX = {
    "relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
    "relu4_1": 18, "relu4_2": 20, "relu4_3": 22, "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}
RELU_CHANNELS = {
    "relu1_1": 64, "relu1_2": 64, "relu2_1": 128, "relu2_2": 128, "relu3_1": 256, "relu3_2": 256,
    "relu3_3": 256, "relu4_1": 512, "relu4_2": 512, "relu4_3": 512, "relu5_1": 512, "relu5_2": 512,
    "relu5_3": 512,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG16(nn.Module):
    """VGG16 convolutional trunk; `forward` returns the requested relu activations by name.

    Inputs are RGB in [0, 1]; they are normalised with `mean`/`std` (ImageNet unless set per dataset,
    as the reference does for crop features).
    """

    def __init__(self, padding: Padding = "zero") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(v), 3, padding=1 if padding == "zero" else 0), nn.ReLU()]
                channels = int(v)
        self.features = nn.Sequential(*layers)
        self.padding = padding
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def set_normalization(self, mean: Iterable[float], std: Iterable[float]) -> None:
        self.mean.copy_(torch.as_tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1))
        self.std.copy_(torch.as_tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, layers: Iterable[str] = ("relu5_3",)) -> dict[str, torch.Tensor]:
        wanted = {RELU_INDEX[name]: name for name in layers}
        last = max(wanted)
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)  # (B, 3, H, W)
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            if self.padding == "replicate" and isinstance(layer, nn.Conv2d):
                x = nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
            x = layer(x)
            if i in wanted:
                out[wanted[i]] = x
            if i == last:
                break
        return out


def load_vgg16_state(model: VGG16, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load torchvision-layout weights strictly for the trunk (classifier keys are ignored)."""
    trunk = {k: v for k, v in state.items() if k.startswith("features.")}
    expected = set(model.features.state_dict().keys())
    got = {k.removeprefix("features.") for k in trunk}
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if missing or unexpected:
        raise EpeflowError(
            f"VGG16 weights {source} do not have torchvision's vgg16 layout "
            f"(missing: {missing[:6]}, unexpected: {unexpected[:6]}); download vgg16-397923af.pth"
        )
    try:
        model.features.load_state_dict({k.removeprefix("features."): v for k, v in trunk.items()}, strict=True)
    except RuntimeError as e:
        raise EpeflowError(f"VGG16 weights {source} have wrong shapes: {e}") from e


def build_vgg16(
    weights: Mapping[str, Any] | None, allow_random: bool, padding: Padding = "zero", seed: int = 0
) -> tuple[VGG16, bool]:
    """VGG16 in eval mode without gradients; returns (model, used_random_weights)."""
    path = resolve_weights("vgg16", weights, allow_random)
    if path is None:
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)  # reproducible random weights for the demo
        model = VGG16(padding)
        for m in model.features:
            if isinstance(m, nn.Conv2d):  # torchvision's VGG init keeps activations at a usable scale
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        torch.random.set_rng_state(generator_state)
    else:
        model = VGG16(padding)
        load_vgg16_state(model, load_state_dict(path, "VGG16"), str(path))
    model.eval().requires_grad_(False)
    return model, path is None

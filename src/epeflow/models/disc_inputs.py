"""What a discriminator reads, by name: VGG16 relu layers (PPDE) and/or the image itself (PatchGAN).

Every discriminator has `forward(inputs, labels)` and a class attribute `input_names`; the frozen VGG16 stays
with the caller (shared with other losses, never in a discriminator's checkpoint), and this builds `inputs`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from epeflow.common.vgg16 import VGG16

IMAGE = "image"


def discriminator_inputs(vgg: VGG16 | None, image: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """`names` from `image` (B, 3, H, W) in [0, 1]: VGG16 features for relu names, the image for "image"."""
    layers = [n for n in names if n != IMAGE]
    if layers and vgg is None:
        raise ValueError(f"a VGG16 is needed for inputs {layers}")
    inputs = vgg(image, layers) if layers else {}
    if IMAGE in names:
        inputs[IMAGE] = image
    return inputs

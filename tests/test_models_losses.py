from __future__ import annotations

import torch

from epeflow.models.losses import LSGANLoss, r1_penalty


def test_lsgan_targets():
    gan = LSGANLoss()
    ones, zeros = [torch.ones(2, 1, 3, 3), torch.ones(2, 1, 2, 2)], [torch.zeros(2, 1, 3, 3), torch.zeros(2, 1, 1, 1)]
    assert gan.real(ones) == 0 and gan.generator(ones) == 0 and gan.fake(zeros) == 0
    assert gan.real(zeros) == 2 and gan.generator(zeros) == 2 and gan.fake(ones) == 2  # summed over maps
    half = [torch.full((1, 1, 4, 4), 0.5)]
    assert torch.isclose(gan.real(half), torch.tensor(0.25)) and torch.isclose(gan.fake(half), torch.tensor(0.25))


def test_lsgan_works_on_bf16_maps_in_float32():
    maps = [torch.full((1, 1, 2, 2), 0.5, dtype=torch.bfloat16)]
    assert LSGANLoss().fake(maps).dtype == torch.float32


def test_r1_penalty_is_the_squared_gradient_norm_per_image():
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    images = torch.rand(3, 1, 2, 2, requires_grad=True)
    loss = (images**2 * w).sum() / 2  # gradient w.r.t. each image is images * w
    penalty = r1_penalty(loss, images)
    expected = (images.detach() * w).pow(2).flatten(1).sum(dim=1).mean()
    assert torch.isclose(penalty, expected)
    penalty.backward()  # differentiable (create_graph), as the discriminator update needs
    assert images.grad is not None

from __future__ import annotations

import torch

from epeflow.models.losses import r1_penalty


def test_r1_penalty_is_the_squared_gradient_norm_per_image():
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    images = torch.rand(3, 1, 2, 2, requires_grad=True)
    loss = (images**2 * w).sum() / 2  # gradient w.r.t. each image is images * w
    penalty = r1_penalty(loss, images)
    expected = (images.detach() * w).pow(2).flatten(1).sum(dim=1).mean()
    assert torch.isclose(penalty, expected)
    penalty.backward()  # differentiable (create_graph), as the discriminator update needs
    assert images.grad is not None

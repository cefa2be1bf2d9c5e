from __future__ import annotations

import math

import pytest
import torch

from epeflow.models.gan_losses import GAN_LOSSES, HingeLoss, LSLoss, NSLoss


def softplus(x: float) -> float:
    return math.log(1 + math.exp(x))


# Two maps (means over their locations are summed) and a skipped head (None).
MAPS = [torch.tensor([[[[0.0, 2.0]]]]), None, torch.tensor([[[[-1.0]]]])]

# (real, fake, generator) worked out by hand from the reference's formulas
EXPECTED = {
    "ls": ((1 + 1) / 2 + 4, (0 + 4) / 2 + 1, (1 + 1) / 2 + 4),
    "hinge": ((1 + 0) / 2 + 2, (0 + 2) / 2 + 0, (1 + 0) / 2 + 2),
    "ns": (
        (softplus(1) + softplus(-1)) / 2 + softplus(2),
        (softplus(0) + softplus(2)) / 2 + softplus(-1),
        (softplus(1) + softplus(-1)) / 2 + softplus(2),
    ),
}


def test_the_dict_names_the_three_losses():
    assert set(GAN_LOSSES) == {"ls", "hinge", "ns"}
    assert (GAN_LOSSES["ls"], GAN_LOSSES["hinge"], GAN_LOSSES["ns"]) == (LSLoss, HingeLoss, NSLoss)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_values_on_hand_computed_maps(name):
    loss = GAN_LOSSES[name]()
    real, fake, generator = EXPECTED[name]
    assert loss.real(MAPS).item() == pytest.approx(real, rel=1e-6)
    assert loss.fake(MAPS).item() == pytest.approx(fake, rel=1e-6)
    assert loss.generator(MAPS).item() == pytest.approx(generator, rel=1e-6)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_map_is_averaged_over_batch_and_locations(name):
    loss = GAN_LOSSES[name]()
    m = torch.randn(3, 1, 4, 5)
    per_image = sum(loss.real([m[i : i + 1]]) for i in range(3)) / 3
    torch.testing.assert_close(loss.real([m]), per_image)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_targets_real_high_fake_low_and_half_separates_them(name):
    loss = GAN_LOSSES[name]()
    high, low = [torch.full((1, 1, 2, 2), 1.0)], [torch.full((1, 1, 2, 2), 0.0)]
    assert loss.real(high) < loss.real(low) and loss.fake(low) < loss.fake(high)
    mid = [torch.full((1, 1, 2, 2), 0.5)]
    assert loss.real(mid).item() == pytest.approx(loss.fake(mid).item())


def test_gradients_and_fp16_maps_and_no_maps():
    m = torch.zeros(1, 1, 2, 2, dtype=torch.bfloat16, requires_grad=True)
    out = LSLoss().generator([m])
    assert out.dtype == torch.float32
    out.backward()
    torch.testing.assert_close(m.grad.float(), torch.full((1, 1, 2, 2), -0.5))
    assert LSLoss().fake([None, None]).item() == 0.0

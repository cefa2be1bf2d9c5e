from __future__ import annotations

import pytest
import torch
from train_fixtures import one_torch_thread

from epeflow.errors import EpeflowError
from epeflow.models.disc_inputs import IMAGE, discriminator_inputs
from epeflow.models.gan_losses import HingeLoss
from epeflow.models.losses import r1_penalty
from epeflow.models.patchgan import PatchGAN, PatchGANConfig

TINY = PatchGANConfig(num_scales=3, width=0.125)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


def tiny(seed: int = 0) -> PatchGAN:
    torch.manual_seed(seed)
    return PatchGAN(TINY)


def test_one_map_per_scale_each_coarser_and_no_vgg_needed():
    disc = tiny().eval()
    image = torch.rand(2, 3, 64, 96)
    maps = disc(discriminator_inputs(None, image, disc.input_names), torch.randint(0, 194, (2, 64, 96)))
    assert [tuple(m.shape) for m in maps] == [(2, 1, 8, 12), (2, 1, 4, 6), (2, 1, 2, 3)]


def test_spectral_norm_on_every_conv():
    keys = tiny().state_dict().keys()
    convs = {k.rsplit(".", 1)[0] for k in keys if k.endswith("weight_orig")}
    assert {f"discs.0.model.{i}" for i in (0, 2, 4, 6)} | {"discs.0.out"} <= convs
    assert all(f"{c}.weight_u" in keys and f"{c}.weight_v" in keys for c in convs)
    assert "discs.0.embedding.weight" in keys


def test_spectral_norm_is_settled_before_training():
    disc = tiny().eval()
    disc({IMAGE: torch.rand(1, 3, 32, 32)}, None)  # the forward pre-hook computes `weight` from the stored u, v
    for conv in (disc.discs[0].model[0], disc.discs[1].model[4], disc.discs[2].out):
        assert torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2).item() == pytest.approx(1.0, rel=1e-2)


def test_a_batch_of_two_equals_two_batches_of_one():
    disc = tiny().eval()  # eval: spectral norm's power iteration does not step
    torch.manual_seed(1)
    image, labels = torch.rand(2, 3, 48, 64), torch.randint(0, 194, (2, 48, 64))
    labels[0, 20:] = 255
    with torch.no_grad():
        both = disc({IMAGE: image}, labels)
        one = [disc({IMAGE: image[i : i + 1]}, labels[i : i + 1]) for i in range(2)]
    for i, m in enumerate(both):
        torch.testing.assert_close(m, torch.cat([one[0][i], one[1][i]]), atol=1e-5, rtol=1e-5)


def test_labels_condition_the_maps_and_unlabeled_keeps_the_plain_score():
    disc = tiny().eval()
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        road = disc({IMAGE: image}, torch.full((1, 32, 32), 98))
        sky = disc({IMAGE: image}, torch.full((1, 32, 32), 142))
        plain = disc({IMAGE: image}, None)
        unlabeled = disc({IMAGE: image}, torch.full((1, 32, 32), 255))
    assert not torch.allclose(road[0], sky[0])
    for a, b in zip(unlabeled, plain, strict=True):
        torch.testing.assert_close(a, b)


def test_r1_penalty_reaches_the_image_and_the_weights():
    disc = tiny().train()
    image = torch.rand(2, 3, 32, 32).requires_grad_()
    real = HingeLoss().real(disc({IMAGE: image}, torch.randint(0, 194, (2, 32, 32))))
    r1 = r1_penalty(real, image)
    (real + 0.03 * r1).backward()
    assert r1 > 0 and image.grad.abs().sum() > 0
    assert all(p.grad is not None for p in disc.parameters())


def test_inactive_scales_and_config():
    disc = tiny()
    maps = disc({IMAGE: torch.rand(1, 3, 32, 32)}, None, active=[False, True, False])
    assert [m is None for m in maps] == [True, False, True]
    assert PatchGANConfig.from_dict(TINY.to_dict()) == TINY
    assert PatchGAN.from_config({"num_scales": 2, "width": 0.125}).config_dict()["num_scales"] == 2
    with pytest.raises(EpeflowError):
        PatchGANConfig(num_scales=0)

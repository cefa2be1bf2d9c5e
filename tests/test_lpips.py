from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from epeflow.common.lpips import LPIPS_CHANNELS, LPIPS_LAYERS, LPIPS_SCALE, LPIPS_SHIFT, build_lpips, lin_key
from epeflow.common.vgg16 import VGG16
from epeflow.errors import EpeflowError


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 3, 48, 64, generator=g)
    return F.avg_pool2d(base, 3, stride=1, padding=1)  # smoother, more image-like


@pytest.fixture
def random_lpips(hub_dir):
    model, random = build_lpips({}, allow_random=True)
    assert random
    return model


def _official_lin_file(path, seed: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lins = [torch.rand(1, c, 1, 1, generator=g) for c in LPIPS_CHANNELS]
    torch.save({lin_key(i): w for i, w in enumerate(lins)}, path)
    return lins


def test_identity_is_zero_and_distance_is_symmetric(random_lpips, images):
    other = (images + 0.1 * torch.randn(images.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert random_lpips(images, images).abs().max() < 1e-6
    d_xy, d_yx = random_lpips(images, other), random_lpips(other, images)
    assert d_xy.shape == (1,) and d_xy.item() > 0
    torch.testing.assert_close(d_xy, d_yx)


def test_grows_with_noise_level(random_lpips, images):
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(2))
    levels = [0.02, 0.05, 0.1, 0.2, 0.4]
    batch = torch.cat([(images + s * noise).clamp(0, 1) for s in levels])
    distances = random_lpips(images.expand_as(batch), batch)
    assert distances.shape == (len(levels),)
    assert torch.all(distances[1:] > distances[:-1]), distances


def test_batch_entries_are_independent(random_lpips, images):
    other = images.flip(-1)
    both = random_lpips(torch.cat([images, other]), torch.cat([other, images]))
    torch.testing.assert_close(both[0], random_lpips(images, other)[0], rtol=1e-5, atol=1e-7)


def test_official_lin_file_loads_and_matches_reference_formula(tmp_path, hub_dir, images):
    lins = _official_lin_file(tmp_path / "vgg.pth")
    vgg = VGG16()
    vgg_path = tmp_path / "vgg16.pth"
    torch.save({"features." + k: v for k, v in vgg.features.state_dict().items()}, vgg_path)
    model, random = build_lpips({"vgg16": {"path": str(vgg_path)}, "lpips": {"path": str(tmp_path / "vgg.pth")}},
                                allow_random=False)
    assert not random
    for loaded, saved in zip(model.lin_weights(), lins, strict=True):
        torch.testing.assert_close(loaded, saved.flatten())

    # The reference computation, step by step as in lpips.LPIPS.forward (inputs scaled to [-1, 1]).
    other = images.roll(5, dims=-1)
    vgg.eval().set_normalization([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    shift, scale = torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1)
    with torch.no_grad():
        f0 = vgg((2 * images - 1 - shift) / scale, LPIPS_LAYERS)
        f1 = vgg((2 * other - 1 - shift) / scale, LPIPS_LAYERS)
    expected = torch.zeros(1)
    for i, name in enumerate(LPIPS_LAYERS):
        n0 = f0[name] / (f0[name].pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        n1 = f1[name] / (f1[name].pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        expected += F.conv2d((n0 - n1) ** 2, lins[i]).mean(dim=(2, 3)).flatten()
    torch.testing.assert_close(model(images, other), expected, rtol=1e-4, atol=1e-6)


def test_lpips_file_with_random_trunk_is_still_marked_random(tmp_path, hub_dir):
    _official_lin_file(tmp_path / "vgg.pth")
    _, random = build_lpips({"lpips": {"path": str(tmp_path / "vgg.pth")}}, allow_random=True)
    assert random


def test_wrong_lin_file_is_rejected_naming_it(tmp_path, hub_dir):
    bad = tmp_path / "not-lpips.pth"
    torch.save({"lin0.weight": torch.ones(1, 64, 1, 1)}, bad)
    with pytest.raises(EpeflowError, match="not-lpips.pth") as err:
        build_lpips({"lpips": {"path": str(bad)}}, allow_random=True)
    assert lin_key(0) in str(err.value)

    negative = tmp_path / "negative.pth"
    torch.save({lin_key(i): -torch.ones(1, c, 1, 1) for i, c in enumerate(LPIPS_CHANNELS)}, negative)
    with pytest.raises(EpeflowError, match="negative.pth.*non-negative"):
        build_lpips({"lpips": {"path": str(negative)}}, allow_random=True)


def test_missing_weights_without_random_is_an_error(hub_dir):
    with pytest.raises(EpeflowError, match="allow_random_weights"):
        build_lpips({}, allow_random=False)


def test_gradients_reach_the_inputs_only(random_lpips, images):
    x = images.clone().requires_grad_(True)
    target = images.flip(-2)
    random_lpips(x, target).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in random_lpips.parameters())

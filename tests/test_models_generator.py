from __future__ import annotations

import pytest
import torch
from train_fixtures import one_torch_thread

from epeflow.errors import EpeflowError
from epeflow.models.generator import GBufferEncoder, Generator, GeneratorConfig


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


TINY = {"gbuffer_channels": 5, "channels": 8, "blocks": 1, "gbuffer_width": 4}


def _inputs(b: int, h: int, w: int, c: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, 3, h, w, generator=g)
    gbuffers = torch.randn(b, c, h, w, generator=g)
    index = torch.randint(0, 12, (b, h, w), generator=g)
    materials = torch.nn.functional.one_hot(index, 12).permute(0, 3, 1, 2).float()  # (B, 12, H, W)
    return image, gbuffers, materials


@pytest.mark.parametrize("size", [(24, 32), (37, 45), (5, 9)])
def test_output_has_input_shape_and_stays_in_unit_range(size):
    torch.manual_seed(0)
    gen = Generator.from_config(TINY)
    image, gbuffers, materials = _inputs(2, *size)
    out = gen(image, gbuffers, materials)
    assert out.shape == image.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    # a fresh generator starts close to the identity (small residual), so early training keeps the content
    assert (out - image.clamp(1e-3, 1 - 1e-3)).abs().max() < 0.05


def test_every_parameter_receives_gradient():
    torch.manual_seed(0)
    gen = Generator.from_config(TINY)
    image, gbuffers, materials = _inputs(2, 16, 24)
    gen(image, gbuffers, materials).sum().backward()
    dead = [n for n, p in gen.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


def test_extreme_residuals_cannot_leave_unit_range():
    gen = Generator.from_config(TINY)
    with torch.no_grad():
        gen.to_residual.bias.fill_(1e4)
    out = gen(*_inputs(1, 8, 8))
    assert torch.isfinite(out).all() and out.max() <= 1


def test_a_pixel_only_uses_the_stream_of_its_material():
    torch.manual_seed(0)
    enc = GBufferEncoder(gbuffer_channels=3, num_materials=12, width=4)
    gbuffers = torch.randn(1, 3, 8, 8)
    materials = torch.zeros(1, 12, 8, 8)
    materials[:, 2] = 1  # every pixel is material 2
    before = enc(gbuffers, materials)[0]
    with torch.no_grad():  # change the weights of material 5's stream only (its slice of the grouped conv)
        enc.streams[0].weight[5 * 4:6 * 4] += 1.0
    assert torch.equal(enc(gbuffers, materials)[0], before)
    materials[:, :, :4] = 0
    materials[:, 5, :4] = 1  # top half becomes material 5: its features must now differ
    assert not torch.allclose(enc(gbuffers, materials)[0], before)


def test_encoder_gives_one_feature_map_per_level():
    enc = GBufferEncoder(gbuffer_channels=3, num_materials=12, width=4)
    _, gbuffers, materials = _inputs(2, 16, 24, c=3)
    shapes = [tuple(f.shape) for f in enc(gbuffers, materials)]
    assert shapes == [(2, 4, 16, 24), (2, 4, 8, 12), (2, 4, 4, 6), (2, 4, 2, 3)]


def test_config_round_trip_and_unknown_keys():
    gen = Generator.from_config(TINY)
    assert gen.config_dict() == {**TINY, "num_materials": 12}
    assert Generator.from_config(gen.config_dict()).config == gen.config == GeneratorConfig(**TINY)
    with pytest.raises(EpeflowError, match=r"generator config: unknown key\(s\)"):
        Generator.from_config({**TINY, "depth": 3})

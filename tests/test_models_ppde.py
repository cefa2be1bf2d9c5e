from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from train_fixtures import one_torch_thread

from epeflow.common.vgg16 import VGG16
from epeflow.errors import EpeflowError
from epeflow.models.disc_inputs import discriminator_inputs
from epeflow.models.gan_losses import LSLoss
from epeflow.models.losses import r1_penalty
from epeflow.models.ppde import PPDE, PPDE_LAYERS, PPDEConfig, head_dims, label_embedding

KEYS_FILE = Path(__file__).parent / "data" / "ppde_reference_keys.json"
TINY = PPDEConfig(width=0.125)  # widths 8..32: the reference's layout, small enough for CPU tests


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def vgg() -> VGG16:
    torch.manual_seed(0)
    return VGG16("replicate").eval().requires_grad_(False)


def tiny_ppde(seed: int = 0, config: PPDEConfig = TINY) -> PPDE:
    torch.manual_seed(seed)
    disc = PPDE(config).eval()
    for p in disc.parameters():  # GroupNorm starts as identity; perturb so every parameter shows in the output
        p.data.add_(torch.randn_like(p) * 0.05)
    return disc


@pytest.mark.parametrize("record", json.loads(KEYS_FILE.read_text()), ids=lambda r: str(r["config"]))
def test_state_dict_keys_and_shapes_are_the_references(record):
    """tests/data/ppde_reference_keys.json was written by instantiating the reference's ppde discriminator."""
    disc = PPDE(PPDEConfig(**record["config"]))
    assert [[k, list(v.shape)] for k, v in disc.state_dict().items()] == record["keys"]


def test_vgg_is_not_part_of_the_module():
    disc = PPDE(TINY)
    assert all(k.startswith("discs.") for k in disc.state_dict())
    assert not any(isinstance(m, VGG16) for m in disc.modules())
    assert disc.input_names == PPDE_LAYERS and len(disc) == 10


def test_head_widths_follow_the_reference_and_scale_in_multiples_of_8():
    assert head_dims(64, PPDEConfig()) == [64, 128, 256, 256]
    assert head_dims(512, PPDEConfig()) == [256, 256, 256, 256]
    assert head_dims(128, PPDEConfig(max_dim=512, num_layers=3)) == [128, 256, 512]
    assert head_dims(64, TINY) == [8, 16, 32, 32] and head_dims(512, TINY) == [32, 32, 32, 32]
    assert all(d % 8 == 0 for d in head_dims(256, PPDEConfig(width=0.3)))


def test_one_map_per_layer_at_a_sixteenth(vgg):
    disc = tiny_ppde()
    image = torch.rand(2, 3, 64, 48)
    maps = disc(discriminator_inputs(vgg, image, disc.input_names), torch.randint(0, 194, (2, 64, 48)))
    assert [tuple(m.shape) for m in maps] == [(2, 1, 4, 3)] * 10
    assert all(torch.isfinite(m).all() for m in maps)


def test_a_batch_of_two_equals_two_batches_of_one(vgg):
    disc = tiny_ppde()
    torch.manual_seed(1)
    image = torch.rand(2, 3, 32, 48)
    labels = torch.randint(0, 194, (2, 32, 48))
    labels[1, :10] = 255
    with torch.no_grad():
        both = disc(vgg(image, PPDE_LAYERS), labels)
        one = [disc(vgg(image[i : i + 1], PPDE_LAYERS), labels[i : i + 1]) for i in range(2)]
    for i, m in enumerate(both):
        torch.testing.assert_close(m, torch.cat([one[0][i], one[1][i]]), atol=1e-5, rtol=1e-5)


def test_labels_condition_the_maps_and_unlabeled_ids_only_keep_the_plain_score(vgg):
    disc = tiny_ppde()
    image = torch.rand(1, 3, 32, 32)
    features = vgg(image, PPDE_LAYERS)
    with torch.no_grad():
        road, sky = disc(features, torch.full((1, 32, 32), 98)), disc(features, torch.full((1, 32, 32), 142))
        plain = disc(features, None)
        for unlabeled in (255, 194, -1):
            for got, want in zip(disc(features, torch.full((1, 32, 32), unlabeled)), plain, strict=True):
                torch.testing.assert_close(got, want)
        with_channel = disc(features, torch.full((1, 1, 32, 32), 98))
    assert not torch.allclose(road[0], sky[0])
    for a, b in zip(road, with_channel, strict=True):
        torch.testing.assert_close(a, b)


def test_label_embedding_resizes_like_the_reference_and_zeroes_unknown_ids():
    emb = nn.Embedding(3, 2)
    labels = torch.tensor([[[0, 1, 255], [2, 2, 7]]])  # (1, 2, 3)
    out = label_embedding(emb, labels, (2, 3))  # same size: no resampling
    w = emb.weight.detach()
    zero = torch.zeros(2)
    want = torch.stack([torch.stack([w[0], w[1], zero]), torch.stack([w[2], w[2], zero])]).permute(2, 0, 1)
    torch.testing.assert_close(out[0], want)
    corners = label_embedding(emb, labels, (2, 2))  # align_corners: the corners are kept
    torch.testing.assert_close(corners[0, :, 0, 0], w[0])
    torch.testing.assert_close(corners[0, :, 1, 1], zero)
    with pytest.raises(ValueError):
        label_embedding(emb, labels.float(), (2, 2))


@pytest.mark.parametrize("sizes", [((196, 196), (13, 13)), ((53, 70), (4, 5)), ((8, 9), (1, 1)), ((5, 7), (9, 12))])
def test_label_embedding_equals_embedding_every_pixel_then_resizing(sizes):
    """Only the pixels bilinear resizing reads are embedded; the result is the reference's full-size way."""
    (h_in, w_in), size = sizes
    torch.manual_seed(0)
    emb = nn.Embedding(194, 16)
    labels = torch.randint(0, 194, (2, h_in, w_in))
    labels[0, : h_in // 2] = 255
    full = emb(labels.clamp(max=193)) * (labels < 194).unsqueeze(-1)  # (B, H, W, C), unlabeled -> 0
    want = nn.functional.interpolate(full.permute(0, 3, 1, 2), size, mode="bilinear", align_corners=True)
    torch.testing.assert_close(label_embedding(emb, labels, size), want, atol=1e-6, rtol=1e-5)


def test_r1_penalty_reaches_the_image_and_the_weights(vgg):
    disc = tiny_ppde().train()
    image = torch.rand(2, 3, 32, 32).requires_grad_()
    real = LSLoss().real(disc(vgg(image, PPDE_LAYERS), torch.randint(0, 194, (2, 32, 32))))
    r1 = r1_penalty(real, image)
    assert r1 > 0
    (real + 0.03 * r1).backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is not None for p in disc.parameters())


def test_inactive_heads_are_skipped():
    disc = tiny_ppde()
    features = {n: torch.rand(1, c, 16, 16) for n, c in zip(PPDE_LAYERS, [64] * 2 + [128] * 2 + [256] * 3 + [512] * 3,
                                                            strict=True)}
    maps = disc(features, None, active=[i % 2 == 0 for i in range(10)])
    assert [m is None for m in maps] == [i % 2 == 1 for i in range(10)]
    with pytest.raises(ValueError):
        disc(features, None, active=[True])


def test_config_round_trip_and_errors():
    config = PPDEConfig(max_dim=128, num_layers=3, norm="none", num_labels=20, width=0.5)
    assert PPDEConfig.from_dict(config.to_dict()) == config
    assert PPDE.from_config(config.to_dict()).config_dict() == config.to_dict()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_dim = 4  # type: ignore[misc]
    with pytest.raises(EpeflowError, match="unknown key"):
        PPDEConfig.from_dict({"max_dims": 3})
    with pytest.raises(EpeflowError, match="norm"):
        PPDEConfig(norm="spectral")
    with pytest.raises(EpeflowError, match="multiple of 8"):
        PPDEConfig(max_dim=100)
    assert PPDE(PPDEConfig(num_labels=20, width=0.125)).discs[0].embedding.num_embeddings == 20

from __future__ import annotations

import pytest
import torch
from train_fixtures import one_torch_thread

from epeflow.common.vgg16 import VGG16
from epeflow.errors import EpeflowError
from epeflow.models.discriminator import (
    NUM_LABELS,
    PerceptualDiscriminator,
    label_indices,
    realism_maps,
    vgg_stride,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


LAYERS = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]


@pytest.fixture(scope="module")
def vgg() -> VGG16:
    torch.manual_seed(0)
    return VGG16().eval().requires_grad_(False)


def test_vgg_strides():
    assert [vgg_stride(n) for n in ("relu1_1", "relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")] == [
        1, 1, 2, 4, 8, 16,
    ]


@pytest.mark.parametrize("size", [(32, 48), (27, 41)])
def test_one_realness_map_per_layer_at_an_eighth_of_the_image(vgg, size):
    torch.manual_seed(0)
    disc = PerceptualDiscriminator.from_config({"layers": LAYERS, "channels": 8})
    image = torch.rand(2, 3, *size)
    labels = torch.randint(0, 256, (2, *size))
    maps = realism_maps(disc, vgg, image, labels, LAYERS)
    assert len(maps) == len(LAYERS)
    for m in maps:
        assert m.shape[:2] == (2, 1) and torch.isfinite(m).all()
        assert abs(m.shape[2] - size[0] / 8) <= 1 and abs(m.shape[3] - size[1] / 8) <= 1


def test_labels_condition_the_output_and_unlabeled_has_no_embedding(vgg):
    torch.manual_seed(0)
    disc = PerceptualDiscriminator.from_config({"layers": ["relu2_2"], "channels": 8})
    image = torch.rand(1, 3, 32, 32)
    road, sky = torch.full((1, 32, 32), 98), torch.full((1, 32, 32), 142)
    assert not torch.allclose(disc(vgg(image, ["relu2_2"]), road)[0], disc(vgg(image, ["relu2_2"]), sky)[0])
    head = disc.heads["relu2_2"]
    assert label_indices(torch.tensor([0, 193, 255, 250])).tolist() == [0, 193, NUM_LABELS, NUM_LABELS]
    assert torch.equal(head.embedding.weight[NUM_LABELS], torch.zeros(8))
    # unlabeled pixels: the output is the unconditional realness alone
    feats = vgg(image, ["relu2_2"])
    unlabeled = disc(feats, torch.full((1, 32, 32), 255))[0]
    assert torch.allclose(unlabeled, head.out(head.body(feats["relu2_2"])))


def test_gradients_reach_heads_and_image_but_not_vgg(vgg):
    torch.manual_seed(0)
    disc = PerceptualDiscriminator.from_config({"layers": LAYERS, "channels": 8})
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    maps = realism_maps(disc, vgg, image, torch.randint(0, 194, (1, 32, 32)), LAYERS)
    sum(m.mean() for m in maps).backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())
    dead = [n for n, p in disc.named_parameters() if p.grad is None]
    assert dead == []


def test_bad_layers_are_named():
    with pytest.raises(EpeflowError, match="relu9_9"):
        PerceptualDiscriminator.from_config({"layers": ["relu9_9"]})
    with pytest.raises(EpeflowError, match=r"discriminator config: unknown key\(s\)"):
        PerceptualDiscriminator.from_config({"norm": "group"})


def test_config_round_trip():
    disc = PerceptualDiscriminator.from_config({"layers": LAYERS, "channels": 8})
    again = PerceptualDiscriminator.from_config(disc.config_dict())
    assert again.config == disc.config and disc.config_dict()["layers"] == LAYERS

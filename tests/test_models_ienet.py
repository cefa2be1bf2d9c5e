import json

import pytest
import torch
from epe_reference import MODES, key_file, read_key_file

from epeflow.errors import EpeflowError
from epeflow.models.ienet import GBUFFER_MODES, IENet, IENetConfig

TINY = {"width": 0.125}


def inputs(config: IENetConfig, b: int = 2, h: int = 20, w: int = 28, seed: int = 0):
    """Image in [0, 1], G-buffers, and one-hot materials in blocks (so every class covers some pixels)."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(b, 3, h, w, generator=gen)
    if config.gbuffer_mode == "img":
        return image, None, None
    gbuffers = torch.randn(b, config.gbuffer_channels, h, w, generator=gen)
    cls = torch.randint(0, config.num_classes, (b, 1, (h + 3) // 4, (w + 3) // 4), generator=gen)
    cls = torch.nn.functional.interpolate(cls.float(), scale_factor=4, mode="nearest")[..., :h, :w].long()[:, 0]
    materials = torch.nn.functional.one_hot(cls, config.num_classes).permute(0, 3, 1, 2).float()
    return image, gbuffers, materials


@pytest.mark.parametrize("mode", MODES)
def test_state_dict_keys_and_shapes_are_the_references(mode):
    """tests/data/ienet_reference_keys_<mode>.txt was written from the reference network (tests/epe_reference.py)."""
    ours = {k: tuple(v.shape) for k, v in IENet(IENetConfig(gbuffer_mode=mode)).state_dict().items()}
    reference = read_key_file(key_file(mode))
    assert [k for k in reference if k not in ours] == []
    assert [k for k in ours if k not in reference] == []
    assert {k: s for k, s in ours.items() if reference[k] != s} == {}


def test_spectral_norm_where_the_reference_has_it():
    sd = IENet(IENetConfig(gbuffer_mode="all", **TINY)).state_dict()
    stream = "network.gbuffer_encoder.class_encoders.0.0.conv.1"
    assert {f"{stream}.{p}" for p in ("weight_orig", "weight_u", "weight_v", "bias")} <= set(sd)
    assert sd[f"{stream}.weight_orig"].shape[1] == 6  # the sky sees channels 15:21 of the `all` G-buffers
    assert sd["network.gbuffer_encoder.class_encoders.1.0.conv.1.weight_orig"].shape[1] == 26
    assert "network.layer1.0.bn1._conv.2.conv.1.weight_orig" in sd  # 3 spectral layers in each RAD norm
    assert "network.stem.1.weight" in sd and "network.stem.1.weight_orig" not in sd  # the stem has none


@pytest.mark.parametrize("mode", MODES)
def test_forward_shape_and_range(mode):
    config = IENetConfig(gbuffer_mode=mode, **TINY)
    image, gbuffers, materials = inputs(config, b=2, h=19, w=27)  # not multiples of 2^stages
    out = IENet(config)(image, gbuffers, materials)
    assert out.shape == (2, 3, 19, 27)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("mode", ["all", "img"])
def test_batch_equals_samples_one_by_one(mode):
    config = IENetConfig(gbuffer_mode=mode, **TINY)
    net = IENet(config).eval()
    image, gbuffers, materials = inputs(config, b=2)
    with torch.no_grad():
        batch = net(image, gbuffers, materials)
        for i in range(2):
            one = net(image[i : i + 1], *(None if t is None else t[i : i + 1] for t in (gbuffers, materials)))
            torch.testing.assert_close(batch[i : i + 1], one, atol=1e-5, rtol=1e-5)


def test_residual_is_added_in_logit_space():
    config = IENetConfig(gbuffer_mode="fake", **TINY)
    net = IENet(config)
    last = net.network.up_layers[-1][5]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    image, gbuffers, materials = inputs(config, b=1)
    out = net(image, gbuffers, materials)
    torch.testing.assert_close(out, image.clamp(0.001, 0.999), atol=1e-6, rtol=1e-5)


def test_sky_stream_sees_only_its_channel_slice():
    config = IENetConfig(gbuffer_mode="all", **TINY)
    net = IENet(config).eval()
    image, gbuffers, _ = inputs(config, b=1)
    for cls, channel, changes in ((0, 0, False), (0, 16, True), (1, 0, True)):
        materials = torch.zeros(1, 12, 20, 28)
        materials[:, cls] = 1
        changed = gbuffers.clone()
        changed[:, channel] += 1
        with torch.no_grad():
            diff = (net(image, gbuffers, materials) - net(image, changed, materials)).abs().max()
        assert (diff > 1e-6) == changes, (cls, channel)


def test_width_multiplier_scales_channels():
    assert IENetConfig().branch_channels() == [16, 32, 64, 128]
    assert IENetConfig(width=0.25).branch_channels() == [8, 8, 16, 32]
    assert IENetConfig(width=0.125).branch_channels() == [8, 8, 8, 16]
    small = IENet(IENetConfig(width=0.25))
    assert small.state_dict()["network.gbuffer_encoder.joint_encoder_layers.0.0.conv.1.weight_orig"].shape[0] == 32
    assert sum(p.numel() for p in small.parameters()) < 4_000_000


def test_gradients_reach_encoder_and_stem():
    config = IENetConfig(gbuffer_mode="fake", num_stages=3, **TINY)
    net = IENet(config)
    net(*inputs(config, b=2, h=16, w=16)).mean().backward()
    assert net.network.stem[1].weight.grad.abs().sum() > 0
    assert net.network.gbuffer_encoder.class_encoders[0][0].conv[1].weight_orig.grad is not None


def test_config_defaults_are_pfd2cs_and_round_trip():
    config = IENetConfig()
    assert (config.gbuffer_mode, config.gbuffer_channels, config.num_classes, config.num_stages) == ("fake", 32, 12, 4)
    assert (config.gbuffer_norm, config.gbuffer_encoder_norm, config.num_gbuffer_layers) == ("RAD", "residual", 3)
    assert (config.stem_norm, config.other_norm, config.width) == ("group", "group", 1.0)
    for mode, channels in GBUFFER_MODES.items():
        c = IENetConfig(gbuffer_mode=mode, num_classes=5, width=0.5)
        assert c.gbuffer_channels == channels
        assert IENetConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert IENetConfig(gbuffer_mode="all").class_slices == ((0, 15, 21),)
    assert IENetConfig(gbuffer_mode="img").gbuffer_norm == "Default"


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"gbuffer_mode": "normals"}, "gbuffer_mode"),
        ({"gbuffer_mode": "img", "gbuffer_channels": 3}, "gbuffer_channels"),
        ({"gbuffer_mode": "all", "class_slices": [[12, 0, 3]]}, "class_slices"),
        ({"gbuffer_mode": "geometry", "class_slices": [[0, 5, 9]]}, "class_slices"),
        ({"num_stages": 1}, "num_stages"),
        ({"stem_norm": "layer"}, "stem_norm"),
        ({"gbuffer_norm": "SPADE"}, "gbuffer_norm"),
        ({"widht": 0.5}, "widht"),
    ],
)
def test_bad_config_names_the_key(values, key):
    with pytest.raises(EpeflowError, match=key):
        IENetConfig.from_dict(values)


def test_inputs_that_do_not_fit_the_config_raise():
    config = IENetConfig(gbuffer_mode="no_light", **TINY)
    net = IENet(config)
    image, gbuffers, materials = inputs(config, b=1)
    with pytest.raises(EpeflowError, match="gbuffers must be"):
        net(image, gbuffers[:, :8], materials)
    with pytest.raises(EpeflowError, match="materials must be"):
        net(image, gbuffers, None)
    with pytest.raises(EpeflowError, match="image must be"):
        net(image[:, :1], gbuffers, materials)

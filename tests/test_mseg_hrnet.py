import pytest
import torch

from epeflow.labels.mseg.hrnet import HRNetConfig, HRNetV2, init_random

# Key names and shapes as in the official mseg-3m.pth / mseg-1m.pth (after removing `module.`).
OFFICIAL_KEYS = {
    "conv1.weight": (64, 3, 3, 3),
    "bn1.running_var": (64,),
    "conv2.weight": (64, 64, 3, 3),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer1.3.bn3.weight": (256,),
    "transition1.0.0.weight": (48, 256, 3, 3),
    "transition1.1.0.0.weight": (96, 256, 3, 3),
    "stage2.0.branches.1.3.conv2.weight": (96, 96, 3, 3),
    "stage2.0.fuse_layers.0.1.0.weight": (48, 96, 1, 1),
    "stage2.0.fuse_layers.1.0.0.0.weight": (96, 48, 3, 3),
    "transition2.2.0.0.weight": (192, 96, 3, 3),
    "stage3.3.fuse_layers.2.0.1.0.weight": (192, 48, 3, 3),
    "transition3.3.0.0.weight": (384, 192, 3, 3),
    "stage4.2.branches.3.0.bn1.num_batches_tracked": (),
    "stage4.2.fuse_layers.0.3.1.running_mean": (48,),
    "stage4.2.fuse_layers.3.0.0.0.weight": (48, 48, 3, 3),
    "stage4.2.fuse_layers.3.0.2.0.weight": (384, 48, 3, 3),
    "last_layer.0.weight": (720, 720, 1, 1),
    "last_layer.0.bias": (720,),
    "last_layer.1.running_mean": (720,),
    "last_layer.3.weight": (194, 720, 1, 1),
    "last_layer.3.bias": (194,),
}


@pytest.fixture(scope="module")
def w48():
    model = HRNetV2()
    init_random(model, seed=0)
    return model.eval()


def test_official_key_names_and_shapes(w48):
    state = w48.state_dict()
    for key, shape in OFFICIAL_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith(("stage4.3", "stage3.4", "stage2.1", "layer1.4", "transition4")) for k in state)
    assert not any("fuse_layers.0.0." in k or "fuse_layers.1.1." in k for k in state)  # identity paths hold nothing


def test_parameter_count_of_w48(w48):
    # HRNetV2-W48 for segmentation has 65.9M parameters with 19 classes; 194 classes add 175 * 721.
    count = sum(p.numel() for p in w48.parameters())
    assert 65.9e6 + 175 * 721 - 0.1e6 < count < 65.9e6 + 175 * 721 + 0.1e6


def test_forward_returns_logits_at_input_size(w48):
    with torch.no_grad():
        out = w48(torch.rand(2, 3, 33, 50))
    assert out.shape == (2, 194, 33, 50) and torch.isfinite(out).all()


def test_small_config_and_seeded_init():
    cfg = HRNetConfig(stage_channels=(8, 16, 24, 32), stage_modules=(1, 1, 1), blocks=1, stem_blocks=1, num_classes=5)
    a, b = HRNetV2(cfg), HRNetV2(cfg)
    init_random(a, 3)
    init_random(b, 3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    with torch.no_grad():
        assert a.eval()(torch.rand(1, 3, 20, 24)).shape == (1, 5, 20, 24)

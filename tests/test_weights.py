from __future__ import annotations

import hashlib

import pytest
import torch

from epeflow.common.vgg16 import RELU_CHANNELS, VGG16, build_vgg16
from epeflow.errors import EpeflowError
from epeflow.weights import load_state_dict, resolve_weights


def test_missing_weights_name_the_file_and_the_way_out(hub_dir):
    with pytest.raises(EpeflowError) as err:
        resolve_weights("vgg16", {}, allow_random=False)
    message = str(err.value)
    assert str(hub_dir / "vgg16-397923af.pth") in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert "weights.vgg16.path" in message and "allow_random_weights" in message


def test_random_weights_only_when_allowed(hub_dir):
    assert resolve_weights("vgg16", {}, allow_random=True) is None
    model, random = build_vgg16({}, allow_random=True)
    assert random
    again, _ = build_vgg16({}, allow_random=True)
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)  # random weights are reproducible


def test_configured_path_and_checksum(tmp_path, hub_dir):
    model = VGG16()
    path = tmp_path / "my-vgg.pth"
    torch.save({"features." + k: v for k, v in model.features.state_dict().items()}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert resolve_weights("vgg16", {"path": str(path), "sha256": digest}, allow_random=False) == path
    with pytest.raises(EpeflowError, match="weights.vgg16.sha256"):
        resolve_weights("vgg16", {"path": str(path), "sha256": "0" * 64}, allow_random=False)
    loaded, random = build_vgg16({"path": str(path)}, allow_random=False)
    assert not random
    assert torch.equal(loaded.features[0].weight, model.features[0].weight)


def test_official_name_with_wrong_content_is_rejected(hub_dir):
    torch.save({"features.0.weight": torch.zeros(1)}, hub_dir / "vgg16-397923af.pth")
    with pytest.raises(EpeflowError, match="do not match the official file"):
        resolve_weights("vgg16", {}, allow_random=False)


def test_wrong_layout_lists_keys(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save({"state_dict": {"features.0.weight": torch.zeros(64, 3, 3, 3)}}, path)
    with pytest.raises(EpeflowError, match="missing: \\['0.bias'"):
        build_vgg16({"path": str(path)}, allow_random=False)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(EpeflowError, match="garbage.pth cannot be read"):
        load_state_dict(garbage, "VGG16")


@pytest.mark.parametrize(("padding", "size", "expected"), [("none", 196, 1), ("zero", 64, 4), ("replicate", 64, 4)])
def test_vgg16_shapes(padding, size, expected):
    model = VGG16(padding).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, size, size), layers=("relu2_2", "relu5_3"))
    assert out["relu5_3"].shape == (2, RELU_CHANNELS["relu5_3"], expected, expected)
    assert out["relu2_2"].shape[1] == 128


def test_checksum_follows_file_changes(tmp_path):
    from epeflow.weights import sha256_of

    path = tmp_path / "w.pth"
    path.write_bytes(b"one")
    first = sha256_of(path)
    assert first == hashlib.sha256(b"one").hexdigest()
    path.write_bytes(b"two!")  # a changed file (size and mtime) is hashed again, not served from the cache
    assert sha256_of(path) == hashlib.sha256(b"two!").hexdigest()


@pytest.mark.parametrize("allow_random", [False, True])
def test_a_configured_path_that_does_not_exist_is_an_error_even_with_random_weights_allowed(tmp_path, hub_dir,
                                                                                              allow_random):
    missing = tmp_path / "typo" / "vgg16.pth"
    with pytest.raises(EpeflowError, match=r"config key `weights.vgg16.path`: .*typo/vgg16.pth does not exist"):
        resolve_weights("vgg16", {"path": str(missing)}, allow_random=allow_random)
    with pytest.raises(EpeflowError, match=r"`weights.mseg.path`: .* is a folder"):
        resolve_weights("mseg", {"path": str(tmp_path)}, allow_random=allow_random)

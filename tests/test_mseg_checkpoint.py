import pytest
import torch

from epeflow.errors import EpeflowError
from epeflow.labels.mseg.checkpoint import build_mseg, load_mseg_file, load_mseg_state, official_state_dict
from epeflow.labels.mseg.hrnet import empty_model, init_random


@pytest.fixture(scope="module")
def model():
    m = empty_model()
    init_random(m, seed=5)
    return m.eval()


@pytest.fixture(scope="module")
def official_file(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("weights") / "mseg-test.pth"
    checkpoint = official_state_dict(model)
    checkpoint["epoch"] = 10  # official files carry training bookkeeping next to the weights
    torch.save(checkpoint, path)
    return path


def test_round_trip_in_the_official_layout(official_file, model):
    assert all(k.startswith("module.") for k in official_state_dict(model)["state_dict"])
    loaded = load_mseg_file(official_file)
    assert not loaded.training
    x = torch.rand(1, 3, 33, 41)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_missing_and_unexpected_keys_are_listed(model):
    state = dict(official_state_dict(model)["state_dict"])
    del state["module.last_layer.3.bias"]
    state["module.aux_head.weight"] = torch.zeros(3)
    target = empty_model()
    with pytest.raises(EpeflowError) as e:
        load_mseg_state(target, state, "bad.pth")
    msg = str(e.value)
    assert "bad.pth" in msg and "missing keys: last_layer.3.bias" in msg and "unexpected keys: aux_head.weight" in msg
    assert "mseg-3m.pth" in msg


def test_wrong_class_count_is_a_shape_error(model):
    state = dict(official_state_dict(model)["state_dict"])
    state["module.last_layer.3.weight"] = torch.zeros(180, 720, 1, 1)
    state["module.last_layer.3.bias"] = torch.zeros(180)
    with pytest.raises(EpeflowError, match=r"wrong shapes: last_layer\.3\.bias \(180,\) \(expected \(194,\)\)"):
        load_mseg_state(empty_model(), state, "x.pth")


def test_batch_counters_may_be_absent(model):
    state = {k: v for k, v in official_state_dict(model)["state_dict"].items() if "num_batches_tracked" not in k}
    target = empty_model()
    load_mseg_state(target, state, "old.pth")
    torch.testing.assert_close(target.last_layer[3].weight, model.last_layer[3].weight)


def test_missing_weights_name_the_file_to_download(hub_dir):
    with pytest.raises(EpeflowError, match=r"mseg weights not found at .*mseg-3m\.pth.*allow_random_weights"):
        build_mseg(None, allow_random=False)
    with pytest.raises(EpeflowError, match=r"elsewhere\.pth"):
        build_mseg({"path": str(hub_dir / "elsewhere.pth")}, allow_random=False)


def test_random_weights_are_flagged_and_seeded(hub_dir, model):
    again, random = build_mseg(None, allow_random=True, seed=5)
    assert random and not again.training
    torch.testing.assert_close(again.last_layer[3].weight, model.last_layer[3].weight)
    key = "stage4.2.fuse_layers.3.0.2.0.weight"
    torch.testing.assert_close(again.state_dict()[key], model.state_dict()[key])


def test_configured_file_is_used_and_checksum_checked(hub_dir, official_file, model):
    loaded, random = build_mseg({"path": str(official_file)}, allow_random=False)
    assert not random
    torch.testing.assert_close(loaded.conv1.weight, model.conv1.weight)
    with pytest.raises(EpeflowError, match="sha256"):
        build_mseg({"path": str(official_file), "sha256": "0" * 64}, allow_random=False)

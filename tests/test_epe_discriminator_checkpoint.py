from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from train_fixtures import one_torch_thread

from epeflow.epe.discriminator_checkpoint import export_discriminator, import_discriminator, infer_config
from epeflow.errors import EpeflowError
from epeflow.models.ppde import PPDE, PPDE_LAYERS, PPDEConfig

KEYS_FILE = Path(__file__).parent / "data" / "ppde_reference_keys.json"
RECORDS = json.loads(KEYS_FILE.read_text())
SMALL = PPDEConfig(**RECORDS[1]["config"])  # the reference's layout with norm none, 3 layers, max_dim 128


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


def reference_like_state(record: dict) -> OrderedDict:
    """What the reference would save for `record["config"]`, from the recorded key names and shapes."""
    return OrderedDict((k, torch.randn(shape)) for k, shape in record["keys"])


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: str(r["config"]))
def test_config_is_read_off_reference_keys_and_shapes(record):
    config = infer_config(reference_like_state(record))
    assert config == PPDEConfig(**record["config"])  # num_labels 194 and width 1.0 included


def test_import_of_a_reference_file_loads_every_tensor(tmp_path):
    state = reference_like_state(RECORDS[1])
    torch.save(state, tmp_path / "run_disc-network.pth.tar")
    module, config = import_discriminator(tmp_path / "run_disc-network.pth.tar")
    assert config == SMALL and not module.training
    for k, v in module.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_export_import_export_round_trip(tmp_path):
    torch.manual_seed(0)
    ours = PPDE(SMALL).eval()
    export_discriminator(ours, tmp_path / "a_disc-network.pth.tar")
    saved = torch.load(tmp_path / "a_disc-network.pth.tar", weights_only=True)
    assert isinstance(saved, OrderedDict)
    assert [[k, list(v.shape)] for k, v in saved.items()] == RECORDS[1]["keys"]  # what the reference loads

    again, config = import_discriminator(tmp_path / "a_disc-network.pth.tar")
    assert config == SMALL
    widths = [d.model[1].weight.shape[1] for d in ours.discs]  # each head's VGG channels
    features = {n: torch.rand(1, c, 32, 32) for n, c in zip(PPDE_LAYERS, widths, strict=True)}
    labels = torch.randint(0, 194, (1, 64, 64))
    with torch.no_grad():
        for a, b in zip(ours(features, labels), again(features, labels), strict=True):
            assert torch.equal(a, b)
    export_discriminator(again, tmp_path / "b_disc-network.pth.tar")
    resaved = torch.load(tmp_path / "b_disc-network.pth.tar", weights_only=True)
    assert all(torch.equal(saved[k], resaved[k]) for k in saved) and list(saved) == list(resaved)


def test_narrow_models_round_trip_only_when_asked(tmp_path):
    config = PPDEConfig(width=0.125, num_labels=20)
    ours = PPDE(config)
    with pytest.raises(EpeflowError, match="reference_shapes=False"):
        export_discriminator(ours, tmp_path / "n.pth.tar")
    export_discriminator(ours, tmp_path / "n.pth.tar", reference_shapes=False)
    assert import_discriminator(tmp_path / "n.pth.tar")[1] == config
    assert import_discriminator(tmp_path / "n.pth.tar", norm="inst")[1].norm == "inst"


def test_bad_checkpoints_name_missing_unexpected_and_misshaped_keys(tmp_path):
    state = reference_like_state(RECORDS[1])
    del state["discs.3.out.0.bias"]
    state["discs.0.extra.weight"] = torch.zeros(1)
    state["discs.9.embedding.weight"] = torch.zeros(194, 7)
    torch.save(state, tmp_path / "bad.pth.tar")
    with pytest.raises(EpeflowError) as e:
        import_discriminator(tmp_path / "bad.pth.tar")
    message = str(e.value)
    assert "bad.pth.tar" in message
    assert "missing (1): discs.3.out.0.bias" in message
    assert "unexpected (1): discs.0.extra.weight" in message
    assert "mis-shaped (1): discs.9.embedding.weight (194, 7) (expected (194, 128))" in message


def test_long_key_lists_are_cut_to_ten(tmp_path):
    state = reference_like_state(RECORDS[1])
    for k in [k for k in state if k.startswith(("discs.5.", "discs.6."))]:
        del state[k]
    torch.save(state, tmp_path / "short.pth.tar")
    with pytest.raises(EpeflowError, match=r"missing \(\d+\): (discs\.[56]\.[\w.]+, ){9}discs\.[56]\.[\w.]+, \.\.\."):
        import_discriminator(tmp_path / "short.pth.tar")


def test_unreadable_and_foreign_files(tmp_path):
    with pytest.raises(EpeflowError, match="not found"):
        import_discriminator(tmp_path / "nope.pth.tar")
    (tmp_path / "junk.pth.tar").write_bytes(b"not a torch file")
    with pytest.raises(EpeflowError, match="cannot be read"):
        import_discriminator(tmp_path / "junk.pth.tar")
    torch.save({"network": {"a": torch.zeros(1)}}, tmp_path / "nested.pth.tar")
    with pytest.raises(EpeflowError, match="not a state dict"):
        import_discriminator(tmp_path / "nested.pth.tar")
    torch.save({"generator.conv.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "gen.pth.tar")
    with pytest.raises(EpeflowError, match="ppde"):
        import_discriminator(tmp_path / "gen.pth.tar")

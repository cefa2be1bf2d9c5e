from __future__ import annotations

import pytest
import torch

from epeflow.artifacts.model import MODEL_FORMAT, write_model
from epeflow.errors import EpeflowError
from epeflow.models import load_generator
from epeflow.models.ienet import IENet, IENetConfig
from epeflow.provenance import stamp


def test_round_trip_with_weights_only(tmp_path):
    torch.manual_seed(0)
    gen = IENet(IENetConfig(gbuffer_mode="all", gbuffer_channels=2, class_slices=(), num_stages=2, width=0.125))
    gbuffers = {"channels": 2, "names": ["a", "b"], "mean": [0.0, 1.0], "std": [1.0, 2.0], "mode": "real"}
    write_model(tmp_path / "model.pt", gen.state_dict(), gen.config.to_dict(), gbuffers, {"iterations": 3}, stamp(True),
                {"iteration": [1], "g": [0.5]})
    raw = torch.load(tmp_path / "model.pt", weights_only=True)
    assert raw["format"] == MODEL_FORMAT and raw["gbuffers"] == gbuffers and raw["history"]["g"] == [0.5]
    loaded, model = load_generator(tmp_path / "model.pt")
    assert not loaded.training and model["provenance"]["random_weights"] is True
    for key, value in gen.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary files left


def test_foreign_files_are_named(tmp_path):
    with pytest.raises(EpeflowError, match="does not exist"):
        load_generator(tmp_path / "model.pt")
    torch.save({"format": "something/1"}, tmp_path / "other.pt")
    with pytest.raises(EpeflowError, match="not an epeflow model"):
        load_generator(tmp_path / "other.pt")


@pytest.mark.parametrize("gbuffers", [{}, {"channels": 2, "names": ["a", "b"], "mean": [0.0], "std": [1.0, 2.0]}])
def test_a_model_without_gbuffer_metadata_is_refused_naming_the_file(tmp_path, gbuffers):
    gen = IENet(IENetConfig(gbuffer_mode="all", gbuffer_channels=2, class_slices=(), num_stages=2, width=0.125))
    write_model(tmp_path / "bare.pt", gen.state_dict(), gen.config.to_dict(), gbuffers, {}, stamp(False), {})
    with pytest.raises(EpeflowError, match=r"bare\.pt has no usable G-buffer metadata"):
        load_generator(tmp_path / "bare.pt")
    # an image-only generator reads no G-buffers and needs none
    img = IENet(IENetConfig(gbuffer_mode="img", gbuffer_channels=0, num_stages=2, width=0.125))
    write_model(tmp_path / "img.pt", img.state_dict(), img.config.to_dict(), {}, {}, stamp(False), {})
    assert load_generator(tmp_path / "img.pt")[0].config.gbuffer_mode == "img"


def test_an_empty_or_truncated_model_says_so_and_to_rerun_training(tmp_path):
    gen = IENet(IENetConfig(gbuffer_mode="all", gbuffer_channels=2, class_slices=(), num_stages=2, width=0.125))
    gbuffers = {"channels": 2, "names": ["a", "b"], "mean": [0.0, 1.0], "std": [1.0, 2.0], "mode": "real"}
    write_model(tmp_path / "model.pt", gen.state_dict(), gen.config.to_dict(), gbuffers, {}, stamp(True), {})
    data = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(EpeflowError, match=r"model .*empty.pt is empty \(0 bytes.*not a readable torch checkpoint"
                                           r".*rerun the train rule"):
        load_generator(tmp_path / "empty.pt")
    with pytest.raises(EpeflowError, match=r"model .*cut.pt is truncated .*not a readable torch checkpoint"
                                           r".*rerun the train rule"):
        load_generator(tmp_path / "cut.pt")

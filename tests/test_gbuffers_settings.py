import pytest

from epeflow.errors import EpeflowError
from epeflow.gbuffers.settings import GBufferSettings


def test_defaults_and_values_from_the_dataset_entry():
    s = GBufferSettings.from_spec({"gbuffers": "fake", "fake_gbuffers": {"batch_size": 3}})
    assert (s.kind, s.key, s.channels, s.names, s.batch_size, s.stats_frames) == ("fake", "data", "all", None, 3, 1000)
    r = GBufferSettings.from_spec({"gbuffers": "real", "gbuffer_key": "gbuffers", "gbuffer_names": ["a", "b"]})
    assert (r.key, r.names) == ("gbuffers", ("a", "b"))


def test_errors_name_the_config_key():
    with pytest.raises(EpeflowError, match=r"datasets\.cs\.gbuffers"):
        GBufferSettings.from_spec({"gbuffers": "none"}, "cs")
    with pytest.raises(EpeflowError, match=r"datasets\.x\.gbuffer_channels: geometry` applies to real"):
        GBufferSettings.from_spec({"gbuffers": "fake", "gbuffer_channels": "geometry"}, "x")

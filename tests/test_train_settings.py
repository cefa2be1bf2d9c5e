from __future__ import annotations

import pytest

from epeflow.config import load_schema
from epeflow.errors import EpeflowError
from epeflow.train.settings import NOT_FINGERPRINTED, TrainSettings


def test_defaults_come_from_the_schema():
    settings = TrainSettings.from_spec({"iterations": 10})
    schema = load_schema()["definitions"]["train"]["properties"]
    assert settings.iterations == 10 and settings.batch_size == schema["batch_size"]["default"]
    assert settings.betas == (0.9, 0.999)
    assert settings.discriminator == "ppde" and settings.gan_loss == "ls" and settings.generator_width == 1.0
    assert set(settings.to_dict()) == set(schema)  # every schema key is a setting and vice versa


def test_unknown_and_invalid_keys_are_named():
    with pytest.raises(EpeflowError, match="train.*'lr'"):
        TrainSettings.from_spec({"lr": 0.1})
    with pytest.raises(EpeflowError, match="train.discriminator`: 'unet' is not one of: ppde, patchgan"):
        TrainSettings.from_spec({"discriminator": "unet"})


def test_fingerprinted_settings_leave_out_run_length_and_logging():
    a = TrainSettings.from_spec({"iterations": 10, "log_every": 1, "num_workers": 0})
    b = TrainSettings.from_spec({"iterations": 99, "log_every": 7, "num_workers": 4, "checkpoint_every": 3})
    assert a.fingerprinted() == b.fingerprinted()
    assert not set(NOT_FINGERPRINTED) & set(a.fingerprinted())
    assert TrainSettings.from_spec({"seed": 2}).fingerprinted() != a.fingerprinted()

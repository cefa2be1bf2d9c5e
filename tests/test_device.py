from __future__ import annotations

import pytest
import torch

from epeflow.common.device import select_device
from epeflow.errors import EpeflowError


def test_auto_follows_availability():
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert select_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(EpeflowError, match="no CUDA GPU"):
        select_device("cuda")


def test_unknown_device_names_the_key():
    with pytest.raises(EpeflowError, match="config key `device`.*auto, cpu, cuda"):
        select_device("tpu")

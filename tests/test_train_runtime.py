from __future__ import annotations

import pytest
import torch

from epeflow.common.runtime import Runtime, frozen, unwrap
from epeflow.errors import EpeflowError


def test_cpu_runtime_is_plain_fp32():
    runtime = Runtime.detect(amp=True, device="cpu")
    assert runtime.device.type == "cpu" and runtime.amp is False and runtime.is_main
    module = torch.nn.Conv2d(3, 4, 3)
    assert runtime.wrap(module) is module and unwrap(module) is module
    with runtime.autocast():
        out = runtime.prepare(module)(runtime.tensor(torch.rand(1, 3, 8, 8)))
    assert out.dtype == torch.float32


def test_auto_device_follows_availability():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert Runtime.detect().device.type == expected
    if not torch.cuda.is_available():
        with pytest.raises(EpeflowError, match="no CUDA GPU"):
            Runtime.detect(device="cuda")


def test_rank_and_world_come_from_the_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    runtime = Runtime.detect(device="cpu")
    assert (runtime.rank, runtime.world_size, runtime.is_main) == (1, 2, False)
    assert runtime.shard([(0, 0), (5, 1), (3, 2), (3, 3)]) == [(5, 1), (3, 3)]
    assert Runtime.detect(device="cpu").wrap(torch.nn.Linear(1, 1)).__class__ is torch.nn.Linear  # no process group


def test_frozen_restores_requires_grad():
    module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    module[1].weight.requires_grad_(False)
    with frozen(module):
        assert not any(p.requires_grad for p in module.parameters())
    assert [p.requires_grad for p in module.parameters()] == [True, True, False, True]

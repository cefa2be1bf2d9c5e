"""Shared fixtures: small generated data only; nothing is downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP; see epeflow.cli.quiet_openmp

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Two cores on CI: keep torch from oversubscribing when pytest runs alongside DataLoader workers.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
os.environ.setdefault("EPEFLOW_NO_PROGRESS", "1")


@pytest.fixture(scope="session", autouse=True)
def _empty_torch_hub(tmp_path_factory):
    """No test sees weights a developer happens to have downloaded: the hub cache is an empty folder, so a
    weights spec without `path` means random weights where they are allowed."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        yield


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def hub_dir(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache, so no test sees weights a developer happens to have downloaded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    checkpoints = tmp_path / "torch_home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    return checkpoints

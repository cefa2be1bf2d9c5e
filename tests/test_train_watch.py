"""Watching a run: TensorBoard event files with the losses, learning rates, speed and crop grids."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from train_fixtures import TINY_TRAIN, make_experiment, one_torch_thread

from epeflow.artifacts import checkpoints as ckpt
from epeflow.train import run_train
from epeflow.train.watch import crop_grid

SCALARS = {"loss/g_gan", "loss/g_perceptual", "loss/d_real", "loss/d_fake", "loss/d_r1", "lr/generator",
           "lr/discriminator", "speed/it_per_s"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


def test_crop_grid_puts_samples_in_rows_and_kinds_in_columns():
    a, b = torch.zeros(6, 3, 4, 5), torch.ones(6, 3, 4, 5)
    a[1] = 0.5
    grid = crop_grid([a, b], rows=4)
    assert grid.shape == (3, 4 * 4, 2 * 5)
    assert torch.equal(grid[:, 4:8, :5], a[1]) and torch.equal(grid[:, :, 5:], torch.ones(3, 16, 5))


def _events(folder):
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_training_writes_scalars_and_crop_grids_and_a_resumed_run_does_not_fold_back(tmp_path, hub_dir):
    exp = make_experiment(tmp_path)
    args = exp.train_args(tmp_path / "model.pt", tmp_path / "checkpoints")
    spec = {**TINY_TRAIN, "iterations": 3, "checkpoint_every": 2, "log_every": 1, "image_every": 2}
    run_train(**args, spec=spec, weights={}, allow_random=True, tensorboard=tmp_path / "tb")
    events = _events(tmp_path / "tb")
    assert set(events.Tags()["scalars"]) == SCALARS
    assert [e.step for e in events.Scalars("loss/g_gan")] == [1, 2, 3]
    assert [e.value for e in events.Scalars("lr/generator")] == pytest.approx([1e-4] * 3)
    assert all(e.value > 0 for e in events.Scalars("speed/it_per_s"))
    [grid] = events.Images("crops/source_enhanced_real")
    assert grid.step == 2 and (grid.width, grid.height) == (3 * 24, 2 * 24)  # 3 kinds of 24-px crops, batch 2

    # killed after logging iteration 3 but before its checkpoint: the rerun logs 3 again, TensorBoard keeps one
    ckpt.checkpoint_path(tmp_path / "checkpoints", 3).unlink()
    run_train(**args, spec={**spec, "iterations": 4}, weights={}, allow_random=True, tensorboard=tmp_path / "tb")
    events = _events(tmp_path / "tb")
    assert [e.step for e in events.Scalars("loss/g_gan")] == [1, 2, 3, 4]
    assert [e.step for e in events.Images("crops/source_enhanced_real")] == [2, 4]

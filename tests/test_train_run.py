from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from train_fixtures import TINY_TRAIN, make_experiment, one_torch_thread, pretrained_weight_files

from epeflow.artifacts import checkpoints as ckpt
from epeflow.errors import EpeflowError
from epeflow.io import read_json, write_json
from epeflow.models import load_generator
from epeflow.train import run_train


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return make_experiment(tmp_path_factory.mktemp("exp"))


def _train(exp, name: str, weights=None, allow_random=True, **spec):
    root = exp.root / name
    run_train(**exp.train_args(root / "model.pt", root / "checkpoints"), spec={**TINY_TRAIN, **spec},
                 weights=weights or {}, allow_random=allow_random)
    return root


def _checkpoint(root, iteration):
    return torch.load(ckpt.checkpoint_path(root / "checkpoints", iteration), weights_only=True)


def _assert_same_tensors(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_resumed_training_reaches_exactly_the_weights_of_an_uninterrupted_run(exp, hub_dir, caplog):
    spec = {"iterations": 4, "checkpoint_every": 2, "log_every": 3, "crop_size": 16, "flip": True, "ema_decay": 0.9}
    straight = _train(exp, "straight", **spec)
    # a run with DataLoader workers (they prefetch past the checkpoint) killed after its checkpoint at
    # iteration 2, in the middle of a log window; continued without workers
    resumed = _train(exp, "resumed", **{**spec, "iterations": 3, "num_workers": 2})
    ckpt.checkpoint_path(resumed / "checkpoints", 3).unlink()
    with caplog.at_level(logging.INFO):
        _train(exp, "resumed", **spec)
    assert "resuming from" in caplog.text and "(iteration 2)" in caplog.text and "stale" not in caplog.text

    a, b = _checkpoint(straight, 4), _checkpoint(resumed, 4)
    for key in ("generator", "generator_ema", "discriminator", "opt_g", "opt_d", "sched_g", "sched_d", "sampler",
                "losses"):
        _assert_same_tensors(a[key], b[key], key)
    _, model_a = load_generator(straight / "model.pt")
    _, model_b = load_generator(resumed / "model.pt")
    _assert_same_tensors(model_a["generator"], model_b["generator"])
    _assert_same_tensors(model_a["generator"], a["generator_ema"])  # the delivered model is the weight average
    assert model_a["history"] == model_b["history"] and model_a["history"]["iteration"] == [3, 4]


def test_a_finished_run_can_be_extended(exp, hub_dir, caplog):
    root = _train(exp, "extend", iterations=1)
    with caplog.at_level(logging.INFO):
        _train(exp, "extend", iterations=2)
    assert "resuming from" in caplog.text and "(iteration 1)" in caplog.text
    assert load_generator(root / "model.pt")[1]["history"]["iteration"] == [1, 2]


def test_model_file_is_plain_and_complete(exp, hub_dir):
    root = _train(exp, "plain", iterations=3)
    model = torch.load(root / "model.pt", weights_only=True)
    assert model["format"] == "epeflow-model/1"
    assert model["gbuffers"]["channels"] == 3 and model["gbuffers"]["mode"] == "real"
    assert len(model["gbuffers"]["mean"]) == 3 and model["train"]["iterations"] == 3
    assert model["history"]["iteration"] == [1, 2, 3] and len(model["history"]["g_gan"]) == 3
    assert model["provenance"]["random_weights"] is True and "not a real measurement" in model["provenance"]["warning"]
    generator, _ = load_generator(root / "model.pt")
    out = generator(torch.rand(1, 3, 20, 28), torch.randn(1, 3, 20, 28), torch.ones(1, 12, 20, 28) / 12)
    assert out.shape == (1, 3, 20, 28)
    assert [it for it, _ in ckpt.list_checkpoints(root / "checkpoints")] == [2, 3]  # keep_checkpoints: 2


def test_changed_settings_start_fresh_and_move_old_checkpoints_aside(exp, hub_dir, caplog):
    root = _train(exp, "changed", iterations=2)
    before = _checkpoint(root, 2)
    with caplog.at_level(logging.WARNING):
        _train(exp, "changed", iterations=2, lr_generator=0.001, num_workers=1)  # workers are not a change
    assert "settings.lr_generator" in caplog.text and "starting fresh" in caplog.text
    stale = [p for p in (root / "checkpoints").iterdir() if p.name.startswith("stale-")]
    assert len(stale) == 1 and (stale[0] / "ckpt-000000002.pt").exists()
    after = _checkpoint(root, 2)
    assert after["fingerprint"] != before["fingerprint"]
    assert any(not torch.equal(after["generator"][k], before["generator"][k]) for k in before["generator"])


def test_random_weights_are_stamped_only_when_used_or_inherited(tmp_path, hub_dir):
    weights = pretrained_weight_files(tmp_path / "weights")
    clean = make_experiment(tmp_path / "clean")
    root = _train(clean, "real", weights=weights, allow_random=False, iterations=1)
    provenance = load_generator(root / "model.pt")[1]["provenance"]
    assert provenance["random_weights"] is False and "warning" not in provenance

    inherited = make_experiment(tmp_path / "inherited", random_labels=True, random_matches=True)
    root = _train(inherited, "real", weights=weights, allow_random=False, iterations=1)
    provenance = load_generator(root / "model.pt")[1]["provenance"]
    assert provenance["random_weights"] is True
    assert provenance["random_inputs"] == ["matches", "pair_weights", "src_labels"]

    root = _train(clean, "random", iterations=1)  # no weight files: random VGG16 / LPIPS
    provenance = load_generator(root / "model.pt")[1]["provenance"]
    assert provenance["random_weights"] is True and provenance["vgg16_random"] and provenance["lpips_random"]


def test_missing_weights_without_permission_are_an_error(exp, hub_dir):
    with pytest.raises(EpeflowError, match="vgg16 weights not found"):
        _train(exp, "noweights", allow_random=False)


def test_bad_settings_and_inputs_are_named(exp, hub_dir, tmp_path):
    with pytest.raises(EpeflowError, match="train.*learning_rate"):
        _train(exp, "bad", learning_rate=0.1)
    labels = tmp_path / "labels"
    labels.mkdir()
    write_json(labels / "other.json", {})
    args = exp.train_args(tmp_path / "model.pt", tmp_path / "checkpoints")
    with pytest.raises(EpeflowError, match="labels.json"):
        run_train(**{**args, "inputs": replace(args["inputs"], dst_labels=labels)}, spec=TINY_TRAIN, weights={},
                     allow_random=True)
    assert read_json(exp.src_labels / "labels.json")["num_frames"] == 4



def test_patchgan_training_needs_no_vgg16(exp, tmp_path, hub_dir):
    with pytest.raises(EpeflowError, match=r"train.crop_size`: training crops of 24x24 px .* \(32 px\)"):
        _train(exp, "patchgan", iterations=1, discriminator="patchgan")  # the fixture's 24-px crops
    large = make_experiment(tmp_path / "large", size=(48, 64), crop=32)
    root = _train(large, "patchgan", iterations=1, discriminator="patchgan")
    provenance = load_generator(root / "model.pt")[1]["provenance"]
    # no discriminator VGG16 is built (a PatchGAN judges pixels), so none is stamped random; LPIPS still is
    assert provenance["vgg16_random"] is False and provenance["lpips_random"] is True
    assert _checkpoint(root, 1)["discriminator_config"]["num_scales"] == 3


def test_changed_input_contents_start_fresh_and_say_why(tmp_path, hub_dir, caplog):
    """A rerun after the label maps, the frames or the G-buffers changed never resumes the old checkpoints:
    the fingerprint covers their content digests (recorded upstream), and the log names what changed."""
    from epeflow.artifacts.labels import per_frame, write_labels
    from epeflow.artifacts.manifest import load_manifest
    from epeflow.gbuffers import run_gbuffers
    from epeflow.io import read_table, write_table

    exp = make_experiment(tmp_path / "exp")
    frames, _ = load_manifest(exp.src_manifest)

    def relabel(changed_frame: int) -> None:  # as the labels stage writes them, with their content digest
        def label(row):
            return torch.full((row["height"], row["width"]), 13 + (row["frame"] == changed_frame),
                              dtype=torch.uint8).numpy()
        write_labels(frames, exp.src_labels, per_frame(label), "given")

    def rerun_says(*changed: str) -> None:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            _train(exp, "run", iterations=2)
        for key in changed:
            assert f"inputs.{key}" in caplog.text
        assert "starting fresh" in caplog.text and "resuming from" not in caplog.text

    relabel(-1)
    _train(exp, "run", iterations=2)
    relabel(1)  # one map's content differs, nothing else
    rerun_says("src_labels.content")

    df, meta = read_table(exp.src_manifest)  # a frame's bytes replaced: the manifest records a new digest
    write_table(exp.src_manifest, df.assign(digest=[f"d{i}" for i in range(len(df))]), meta)
    rerun_says("src_content")

    gbuffer = tmp_path / "exp" / "synth" / "gbuffers" / "frame_000.npz"  # a G-buffer rewritten, store rebuilt
    np.savez(gbuffer, data=np.load(gbuffer)["data"] * 2)
    df, meta = read_table(exp.src_manifest)
    write_table(exp.src_manifest, df.assign(digest=[f"e{i}" for i in range(len(df))]), meta)
    run_gbuffers(exp.src_manifest, exp.gbuffers, {"role": "synthetic", "gbuffers": "real"})
    rerun_says("gbuffers.content")

    caplog.clear()
    with caplog.at_level(logging.INFO):
        _train(exp, "run", iterations=3)  # unchanged inputs: resumed
    assert "resuming from" in caplog.text and "starting fresh" not in caplog.text


def test_a_training_beside_a_running_one_is_refused_and_a_finished_one_leaves_no_lock(exp, hub_dir):
    root = _train(exp, "locked", iterations=1)
    assert not (root / "checkpoints" / ckpt.LOCK_FILE).exists()
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # e.g. left by a killed snakemake
    try:
        (root / "checkpoints" / ckpt.LOCK_FILE).write_text(
            json.dumps({"pid": orphan.pid, "host": socket.gethostname(), "since": "earlier"}))
        with pytest.raises(EpeflowError, match=rf"another training \(pid {orphan.pid}"):
            _train(exp, "locked", iterations=2)
    finally:
        orphan.kill()
        orphan.wait()
    assert [it for it, _ in ckpt.list_checkpoints(root / "checkpoints")] == [1]
    _train(exp, "locked", iterations=2)  # its holder is gone now: taken over
    assert [it for it, _ in ckpt.list_checkpoints(root / "checkpoints")][-1] == 2


def test_changed_pair_weights_or_pretrained_weight_files_start_fresh_and_say_why(tmp_path, hub_dir, caplog):
    """The fingerprint covers the sampling weights of the pairs and the sha256 of the VGG16 / LPIPS files."""
    from epeflow.io import read_table, write_table

    exp = make_experiment(tmp_path / "exp")
    weights = pretrained_weight_files(tmp_path / "weights")

    def rerun_says(changed: str) -> None:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            _train(exp, "run", weights=weights, allow_random=False, iterations=2)
        assert f"changed: inputs.{changed}" in caplog.text and "resuming from" not in caplog.text

    _train(exp, "run", weights=weights, allow_random=False, iterations=2)
    df, meta = read_table(exp.pair_weights)  # same pairs, other sampling weights
    write_table(exp.pair_weights, df.assign(weight=df["weight"][::-1].to_numpy()), meta)
    rerun_says("pairs")
    vgg = torch.load(weights["vgg16"]["path"], weights_only=True)  # a VGG16 file replaced by other weights
    torch.save({k: v * 0.5 for k, v in vgg.items()}, weights["vgg16"]["path"])
    rerun_says("pretrained.vgg16")


def test_image_only_training_needs_no_gbuffers_or_gt_labels(tmp_path, hub_dir):
    """A frames-only synthetic dataset: no G-buffer store, no GT labels; the generator is the reference's
    `img` mode and model.pt says it takes no G-buffers."""
    from dataclasses import replace as replace_field

    from epeflow.io import read_table, write_table
    from epeflow.train.run import IMAGE_ONLY_GBUFFERS, TrainInputs

    exp = make_experiment(tmp_path / "exp")
    df, meta = read_table(exp.src_manifest)
    write_table(exp.src_manifest, df.assign(gt_label_path=None), meta)
    root = tmp_path / "img"
    args = exp.train_args(root / "model.pt", root / "checkpoints")
    args["inputs"] = replace_field(args["inputs"], gbuffers=None)
    assert isinstance(args["inputs"], TrainInputs)
    with pytest.raises(EpeflowError, match="train.image_only"):
        run_train(**args, spec={**TINY_TRAIN, "iterations": 1}, weights={}, allow_random=True)
    run_train(**args, spec={**TINY_TRAIN, "iterations": 1, "image_only": True}, weights={}, allow_random=True)
    generator, model = load_generator(root / "model.pt")
    assert generator.config.gbuffer_mode == "img" and model["gbuffers"] == IMAGE_ONLY_GBUFFERS
    assert generator(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)

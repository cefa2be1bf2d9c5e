from __future__ import annotations

import json

import pytest
from train_fixtures import TINY_TRAIN, make_experiment, one_torch_thread

from epeflow.cli import main
from epeflow.io import read_table
from epeflow.models import load_generator


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.mark.parametrize("command", ["train", "enhance"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--spec" in text and "--threads" in text
    if command == "train":
        for option in ("--src-manifest", "--dst-labels", "--pair-weights", "--checkpoints", "--tensorboard",
                       "--allow-random-weights"):
            assert option in text


def test_train_then_enhance_as_the_rules_call_them(tmp_path, hub_dir, capsys):
    exp = make_experiment(tmp_path)
    model = tmp_path / "results" / "model.pt"
    # the shell line of rules/train.smk
    rc = main([
        "train", "--src-manifest", str(exp.src_manifest), "--dst-manifest", str(exp.dst_manifest),
        "--src-labels", str(exp.src_labels), "--dst-labels", str(exp.dst_labels), "--gbuffers", str(exp.gbuffers),
        "--matches", str(exp.matches), "--pair-weights", str(exp.pair_weights),
        "--src-crops", str(exp.src_crops), "--dst-crops", str(exp.dst_crops),
        "--checkpoints", str(tmp_path / "results" / "checkpoints"), "--out", str(model),
        "--tensorboard", str(tmp_path / "results" / "tb"),
        "--spec", json.dumps({**TINY_TRAIN, "iterations": 1}), "--weights", "{}", "--allow-random-weights",
        "--threads", "1",
    ])
    assert rc == 0
    assert list((tmp_path / "results" / "tb").glob("events.out.tfevents.*"))
    assert load_generator(model)[1]["provenance"]["random_weights"] is True
    # the shell line of rules/enhance.smk
    out = tmp_path / "results" / "enhanced"
    rc = main(["enhance", str(model), str(exp.src_manifest), str(exp.gbuffers), str(out),
               "--spec", json.dumps({"split": "test", "max_frames": None}), "--threads", "1"])
    assert rc == 0
    index, _ = read_table(out / "index.parquet")
    assert len(index) == 2 and all((out / f"{i}.png").exists() for i in index["id"])


def test_errors_are_reported_without_traceback(tmp_path, hub_dir, capsys):
    exp = make_experiment(tmp_path)
    capsys.readouterr()  # only what the commands print counts
    rc = main([
        "train", "--src-manifest", str(exp.src_manifest), "--dst-manifest", str(exp.dst_manifest),
        "--src-labels", str(exp.src_labels), "--dst-labels", str(exp.dst_labels), "--gbuffers", str(exp.gbuffers),
        "--matches", str(exp.matches), "--pair-weights", str(exp.pair_weights),
        "--src-crops", str(exp.src_crops), "--dst-crops", str(exp.dst_crops),
        "--checkpoints", str(tmp_path / "ckpt"), "--out", str(tmp_path / "model.pt"),
        "--spec", json.dumps({"iterations": 0}),
    ])
    err = capsys.readouterr().err
    assert rc == 2 and "epeflow train: error:" in err and "train.iterations" in err and "Traceback" not in err
    rc = main(["enhance", str(tmp_path / "none.pt"), str(exp.src_manifest), str(exp.gbuffers), str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "none.pt does not exist" in err

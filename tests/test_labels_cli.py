"""`epeflow labels` through the CLI entry point, with the rule's arguments."""

from __future__ import annotations

import json

import pytest
from dataset_fixtures import DEMO_SPEC

from epeflow.cli import main


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["labels", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--allow-random-weights" in out and "--weights" in out


def test_labels_run_writes_the_folder(tmp_path):
    spec = json.dumps({"role": "real", "labels": "gt", **DEMO_SPEC})
    ds = tmp_path / "results" / "datasets" / "demo_real"
    assert main(["demo", str(ds / "demo"), "--spec", spec]) == 0
    assert main(["manifest", "demo_real", str(ds / "manifest.parquet"), "--skipped", str(ds / "skipped.tsv"),
                 "--spec", spec, "--demo-dir", str(ds / "demo"), "--threads", "2"]) == 0
    assert main(["labels", str(ds / "manifest.parquet"), str(ds / "labels"), "--spec", spec, "--weights", "{}",
                 "--allow-random-weights", "--threads", "2"]) == 0
    assert len(list((ds / "labels").glob("s*_f*.png"))) == 6
    info = json.loads((ds / "labels" / "labels.json").read_text())
    assert info["method"] == "gt" and info["num_frames"] == 6


def test_missing_manifest_is_a_one_line_error(tmp_path, capsys):
    assert main(["labels", str(tmp_path / "none.parquet"), str(tmp_path / "labels"), "--spec",
                 json.dumps({"role": "real", "labels": "gt", "images": "x"})]) == 2
    err = capsys.readouterr().err
    assert "epeflow labels: error:" in err and "none.parquet" in err

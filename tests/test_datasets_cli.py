"""`epeflow demo` and `epeflow manifest` through the CLI entry point, with the rule's arguments."""

from __future__ import annotations

import json

import pytest
from dataset_fixtures import DEMO_SPEC, write_rgb

from epeflow.artifacts.manifest import load_manifest
from epeflow.cli import main


@pytest.mark.parametrize("command", ["demo", "manifest"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--spec" in capsys.readouterr().out


def test_demo_then_manifest_as_the_rules_call_them(tmp_path):
    spec = json.dumps({"role": "synthetic", "gbuffers": "real", "labels": "gt", **DEMO_SPEC}, sort_keys=True)
    ds = tmp_path / "results" / "datasets" / "demo_synth"
    assert main(["demo", str(ds / "demo"), "--spec", spec]) == 0
    assert main(["manifest", "demo_synth", str(ds / "manifest.parquet"), "--skipped", str(ds / "skipped.tsv"),
                 "--spec", spec, "--demo-dir", str(ds / "demo"), "--threads", "2"]) == 0
    df, meta = load_manifest(ds / "manifest.parquet")
    assert len(df) == 6 and meta["kind"] == "demo" and meta["dataset"] == "demo_synth"
    assert (ds / "skipped.tsv").read_text() == "path\treason\n"


def test_manifest_error_is_one_line_naming_the_folder(tmp_path, capsys):
    spec = json.dumps({"role": "real", "images": str(tmp_path / "missing")})
    assert main(["manifest", "cs", str(tmp_path / "m.parquet"), "--spec", spec]) == 2
    err = capsys.readouterr().err
    assert "epeflow manifest: error:" in err and str(tmp_path / "missing") in err and "Traceback" not in err
    assert not (tmp_path / "m.parquet").exists()


def test_skipped_defaults_beside_the_manifest(tmp_path):
    write_rgb(tmp_path / "img" / "a.png")
    spec = json.dumps({"role": "real", "images": str(tmp_path / "img")})
    assert main(["manifest", "cs", str(tmp_path / "out" / "manifest.parquet"), "--spec", spec]) == 0
    assert (tmp_path / "out" / "skipped.tsv").is_file()

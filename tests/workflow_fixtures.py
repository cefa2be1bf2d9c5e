"""Running this checkout's Snakefile in a temporary directory: the tiny demo config, dry-run plans, and
placeholder outputs made current with `--touch`, so a test can ask what a config change would rerun
without running the pipeline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]

TINY: dict[str, Any] = {
    "datasets": {
        "demo_synth": {
            "demo": {"frames": 12, "height": 64, "width": 96, "sequences": 3},
            "crops": {"per_image": 4, "size": 32, "stats_frames": 12, "batch_size": 16, "num_workers": 0},
        },
        "demo_real": {
            "demo": {"frames": 12, "height": 64, "width": 96, "sequences": 3},
            "crops": {"per_image": 4, "size": 32, "stats_frames": 12, "batch_size": 16, "num_workers": 0},
        },
    },
    "experiments": {
        "demo": {
            "knn": {"k": 3},
            "max_dist": 2.0,
            "train": {
                "iterations": 4,
                "crop_size": None,
                "batch_size": 2,
                "generator_width": 0.125,
                "generator_stages": 2,
                "gbuffer_layers": 1,
                "discriminator_width": 0.125,
                "discriminator_max_dim": 64,
                "discriminator_num_layers": 2,
                "checkpoint_every": 2,
                "log_every": 1,
                "num_workers": 0,
            },
            "evaluate": {"kid_subsets": 5, "kid_subset_size": 4, "skvd_size": [64, 96], "temporal_trim": 0},
        }
    },
}

_FILE_SUFFIXES = {".parquet", ".tsv", ".json", ".pt", ".png", ".html"}  # other outputs are directories


def copy_config(config: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(config))


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "EPEFLOW_NO_PROGRESS": "1"}
    env["TORCH_HOME"] = str(workdir / "torch_home")  # no pretrained weights: the demo runs on random ones
    cmd = [os.path.join(bindir, "snakemake"), "--snakefile", str(workdir / "Snakefile"), "--directory",
           str(workdir), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200, cwd=workdir)


def planned_rules(result: subprocess.CompletedProcess[str]) -> set[str]:
    """Rule names of a dry run's job table (empty when there is nothing to do)."""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    if "Nothing to be done" in result.stdout + result.stderr:
        return set()
    table = result.stdout.split("Job stats:")[-1]
    return set(re.findall(r"^([a-z_]+)\s+\d+$", table, flags=re.M)) - {"total", "all"}


def copy_workflow(work: Path) -> None:
    """The workflow files of this checkout (links resolved) in a fresh working directory."""
    work.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "rules", "workflow", "config", "envs"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, work / name, symlinks=False)
        else:
            shutil.copy2(src, work / name)


class Planner:
    """A workflow directory whose outputs are placeholders made current by `snakemake --touch`: a dry run
    with a changed config then lists exactly the rules Snakemake would rerun."""

    def __init__(self, work: Path, config: dict[str, Any], *targets: str) -> None:
        self.work, self.targets = work, list(targets)
        copy_workflow(work)
        self.write_config(config)
        summary = self.run("--summary")
        assert summary.returncode == 0, summary.stdout[-4000:] + summary.stderr[-4000:]
        for line in summary.stdout.splitlines()[1:]:
            fields = line.split("\t")
            if len(fields) < 5 or fields[4] != "missing":
                continue  # the header, or a temporary file a finished run would have removed
            out = work / fields[0]
            if out.suffix in _FILE_SUFFIXES:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text("placeholder\n")
            else:
                out.mkdir(parents=True, exist_ok=True)
        self.accept(config)

    def accept(self, config: dict[str, Any]) -> None:
        """Make every output current for `config` and the data as they are now (as a finished run would)."""
        self.write_config(config)
        touched = self.run("--touch", "--forceall")  # every job, so each records its params
        assert touched.returncode == 0, touched.stdout[-4000:] + touched.stderr[-4000:]
        assert self.plan(config) == set(), "placeholders are not current"

    def write_config(self, config: dict[str, Any]) -> None:
        (self.work / "test.yaml").write_text(yaml.safe_dump(config))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return snakemake(self.work, *self.targets, "--configfile", "config/config.yaml", "test.yaml", *args)

    def plan(self, config: dict[str, Any]) -> set[str]:
        """Rules a run with `config` would execute."""
        self.write_config(config)
        return planned_rules(self.run("-n"))

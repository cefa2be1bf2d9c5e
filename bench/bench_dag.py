"""Issue 12: time to plan the DAG (`snakemake -n`) of a real-sized dataset pair, with per-shard jobs.

DESIGN.md asks that the DAG of a 25K-frame dataset builds in seconds. Two image-folder datasets of N
frames each (empty .png files in 100 sub-folders, GT label files beside the synthetic ones: planning lists
and stats files, it never decodes them; the manifest is not built), MSeg labels and fake G-buffers on the
synthetic side, `shard_frames` 500: the dry run of the experiment's report plans 2 x ceil(N / 500) label
shards and as many crop shards, the enhancement shards, their merges, and the rest of the chain. Timed:
the whole `snakemake -n` process (Python start, config validation, the listing fingerprint of both
datasets, DAG), best of 2, as CPU time (user + system) and wall time; also with sharding off
(`shard_frames: null`) for the cost of the extra jobs.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench.harness import fmt_s, remove_scratch, scratch_dir, write_result

REPO = Path(__file__).resolve().parents[1]


def make_folder(root: Path, frames: int) -> Path:
    """`frames` empty .png files in 100 sub-folders (listing and stat cost only)."""
    for i in range(frames):
        sub = root / f"seq{i % 100:03d}"
        if i < 100:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:06d}.png").touch()
    return root


def config(data: Path, shard_frames: int | None) -> dict:
    common = {"labels": "mseg", "allow_random_weights": True, "shard_frames": shard_frames}
    return {
        "default_experiment": "big",
        "datasets": {
            "big_synth": {"role": "synthetic", "images": str(data / "synth"), "gt_label_dir": str(data / "gt"),
                          "gbuffers": "fake", **common},
            "big_real": {"role": "real", "images": str(data / "real"), **common},
        },
        "experiments": {"big": {"source": "big_synth", "target": "big_real", "allow_random_weights": True}},
    }


def plan(workdir: Path, cfg: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds (user + system) of one `snakemake -n` of the big experiment's report, number
    of jobs it plans). On the shared 2-core machine the wall time is mostly waiting for a core; the CPU time
    is what the plan costs."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(REPO / "config" / "config.yaml"), str(cfg), "--", "results/big/report.html"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode != 0:
        raise RuntimeError(f"snakemake -n failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    total = re.search(r"^total\s+(\d+)", out.stdout, re.M)
    return seconds, cpu, int(total.group(1)) if total else -1


def main(quick: bool = False) -> None:
    sizes = [200, 1_000] if quick else [1_000, 25_000, 100_000]
    root = scratch_dir("dag")
    rows, summary = [], []
    for n in sizes:
        data = root / f"data{n}"
        for side in ("synth", "gt", "real"):
            make_folder(data / side, n)
        for shard_frames in (500, None):
            cfg = root / f"config{n}-{shard_frames}.yaml"
            cfg.write_text(yaml.safe_dump(config(data, shard_frames)))
            workdir = root / f"work{n}-{shard_frames}"
            workdir.mkdir()
            times = [plan(workdir, cfg) for _ in range(2)]
            seconds, cpu, jobs = min(t[0] for t in times), min(t[1] for t in times), times[0][2]
            rows.append({"frames": n, "shard_frames": shard_frames, "wall_s": seconds, "cpu_s": cpu, "jobs": jobs})
            summary.append({
                "what": f"snakemake -n, 2 datasets x {n // 1000 if n >= 1000 else n}{'K' if n >= 1000 else ''} "
                        f"frames, shard_frames {shard_frames}: {jobs} jobs (CPU time; wall under load)",
                "ours": f"{fmt_s(cpu)} CPU ({fmt_s(seconds)} wall)",
                "ratio": "goal: seconds at 25K" if n == 25_000 and shard_frames else "",
            })
    write_result("dag", {"quick": quick, "runs": rows, "summary": summary,
                         "notes": "whole snakemake -n process, best of 2 (CPU time = user + system of the "
                                  "process; wall time waits for a core on the shared machine); empty image files "
                                  "(listing only)"})
    remove_scratch("dag")


if __name__ == "__main__":
    main()

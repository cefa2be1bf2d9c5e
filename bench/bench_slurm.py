"""Demo wall time run locally vs through a one-node SLURM, and what each SLURM job costs on top.

The CI's shrunk demo (tests/test_slurm.py's config: 12 frames a dataset, 12 training iterations)
runs in fresh folders: `snakemake --cores 2` on this machine, then `snakemake --profile slurm` on the
one-node SLURM of tests/slurm_fixtures.py with the polling the test uses (first status check after 2 s, then
every 3 s), and unless `--quick` (or `main(shipped=False)`) once more as the profile ships (20 s, then
every 10 s). Per-job overhead is the
SLURM run's extra wall time divided by the jobs on the DAG's longest chain (they wait for each other;
the others overlap). Needs root to install and start SLURM (as the tests).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench.harness import fmt_s, remove_scratch, scratch_dir, write_result

TESTS = Path(__file__).resolve().parents[1] / "tests"
JOBS = 21  # snakemake -n on the shrunk demo (labels and crops merges run where Snakemake runs: localrules)
CHAIN = 9  # cluster jobs on the longest chain: demo_data, manifest, crop_stats, crops_shard, knn, the
#            matching group (filter + weights), train, enhance, evaluate
SHIPPED_STATUS = ("--slurm-init-seconds-before-status-checks", "20", "--seconds-between-status-checks", "10")


def _prepare(work: Path) -> None:
    from test_slurm import ci_config
    from workflow_fixtures import copy_workflow

    copy_workflow(work)
    (work / "ci.yaml").write_text(yaml.safe_dump(ci_config()))


def _timed(cmd: list[str], work: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return wall


def main(quick: bool = False, shipped: bool = True) -> None:
    sys.path.insert(0, str(TESTS))
    from slurm_fixtures import install_problem, one_node_slurm
    from test_slurm import FAST_STATUS, TARGET, run_env, snakemake_command

    if problem := install_problem():
        print(f"bench_slurm skipped: {problem}")
        return
    root = scratch_dir("slurm")
    exe = str(Path(sys.executable).parent / "snakemake")
    walls: dict[str, float] = {}
    runs = ("local", "slurm_fast") if quick or not shipped else ("local", "slurm_fast", "slurm_shipped")
    for name in runs:
        (root / name).mkdir()
        _prepare(root / name)
    cluster_gen = one_node_slurm(root / "cluster")
    cluster = next(cluster_gen)
    try:
        env = run_env(cluster, root / "local")
        local_cmd = [exe, "--cores", "2", TARGET, "--configfile", "config/config.yaml", "ci.yaml"]
        walls["local"] = _timed(local_cmd, root / "local", {**env, "TORCH_HOME": str(root / "local/torch_home")})
        for name, status in (("slurm_fast", FAST_STATUS), ("slurm_shipped", SHIPPED_STATUS))[: len(runs) - 1]:
            cmd = [c for c in snakemake_command(TARGET) if c not in FAST_STATUS] + list(status)
            walls[name] = _timed(cmd, root / name, run_env(cluster, root / name))
    finally:
        cluster_gen.close()
    overhead = {k: (walls[k] - walls["local"]) / CHAIN for k in walls if k != "local"}
    labels = {"slurm_fast": "status 2 s / 3 s (the CI test's)",
              "slurm_shipped": "profile as shipped (status 20 s / 10 s)"}
    summary = [
        {"what": f"shrunk demo ({JOBS} jobs) through a one-node SLURM, {labels[k]}: overhead {overhead[k]:.0f} s "
                 f"a job on the longest chain ({CHAIN} jobs)",
         "ours": fmt_s(walls[k]), "reference": f"{fmt_s(walls['local'])} local (--cores 2)",
         "ratio": f"{walls[k] / walls['local']:.1f}x slower"}
        for k in overhead
    ]
    write_result("slurm", {"quick": quick, "wall_s": {k: round(v, 1) for k, v in walls.items()},
                           "overhead_per_chain_job_s": {k: round(v, 1) for k, v in overhead.items()},
                           "summary": summary})
    remove_scratch("slurm")


if __name__ == "__main__":
    main()

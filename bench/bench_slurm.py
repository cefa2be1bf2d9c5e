"""Demo wall time run locally vs through a one-node SLURM, and what each SLURM job costs on top.

The CI's shrunk demo (tests/test_slurm.py's config: 12 frames a dataset, 12 training iterations; 19 jobs)
runs three times in fresh folders: `snakemake --cores 2` on this machine, then `snakemake --profile slurm`
on the one-node SLURM of tests/slurm_fixtures.py, once as the profile ships (first status check after
20 s, then every 10 s) and once with the polling the test uses (2 s, then 3 s). Per-job overhead is the
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
CHAIN = 12  # demo_data, manifest, crop_stats, crops_shard, crops, knn, filter, weights, train, enhance, evaluate + all
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


def main(quick: bool = False) -> None:
    sys.path.insert(0, str(TESTS))
    from slurm_fixtures import install_problem, one_node_slurm
    from test_slurm import FAST_STATUS, TARGET, run_env, snakemake_command

    if problem := install_problem():
        print(f"bench_slurm skipped: {problem}")
        return
    root = scratch_dir("slurm")
    exe = str(Path(sys.executable).parent / "snakemake")
    walls: dict[str, float] = {}
    for name in ("local", "slurm_shipped", "slurm_fast"):
        (root / name).mkdir()
        _prepare(root / name)
    cluster_gen = one_node_slurm(root / "cluster")
    cluster = next(cluster_gen)
    try:
        env = run_env(cluster, root / "local")
        local_cmd = [exe, "--cores", "2", TARGET, "--configfile", "config/config.yaml", "ci.yaml"]
        walls["local"] = _timed(local_cmd, root / "local", {**env, "TORCH_HOME": str(root / "local/torch_home")})
        for name, status in (("slurm_shipped", SHIPPED_STATUS), ("slurm_fast", FAST_STATUS)):
            cmd = [c for c in snakemake_command(TARGET) if c not in FAST_STATUS] + list(status)
            walls[name] = _timed(cmd, root / name, run_env(cluster, root / name))
    finally:
        cluster_gen.close()
    overhead = {k: (walls[k] - walls["local"]) / CHAIN for k in ("slurm_shipped", "slurm_fast")}
    summary = [
        {"what": f"shrunk demo (19 jobs), SLURM profile as shipped (status 20 s / 10 s): overhead "
                 f"{overhead['slurm_shipped']:.0f} s a job on the longest chain ({CHAIN})",
         "ours": fmt_s(walls["slurm_shipped"]), "reference": f"{fmt_s(walls['local'])} local (--cores 2)",
         "ratio": f"{walls['slurm_shipped'] / walls['local']:.1f}x slower"},
        {"what": f"shrunk demo (19 jobs), SLURM with status 2 s / 3 s (the CI test's): overhead "
                 f"{overhead['slurm_fast']:.0f} s a job on the longest chain",
         "ours": fmt_s(walls["slurm_fast"]), "reference": f"{fmt_s(walls['local'])} local (--cores 2)",
         "ratio": f"{walls['slurm_fast'] / walls['local']:.1f}x slower"},
    ]
    write_result("slurm", {"quick": quick, "wall_s": {k: round(v, 1) for k, v in walls.items()},
                           "overhead_per_chain_job_s": {k: round(v, 1) for k, v in overhead.items()},
                           "summary": summary})
    remove_scratch("slurm")


if __name__ == "__main__":
    main()

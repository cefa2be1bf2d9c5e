"""Shared benchmark plumbing: machine facts, best-of timing, peak memory, JSON results.

Each benchmark compares our implementation with the straightforward / reference-style way *in the same
run* and records the ratio, so numbers from different machines are never mixed.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "host_cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        # The machine may be shared: the 1/5/15-minute load averages when the result was written.
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        import faiss

        info["faiss"] = faiss.__version__
    except ImportError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def best_time(fn: Callable[[], Any], repeat: int = 3, min_time: float = 0.0) -> float:
    """Best wall time of `repeat` calls (seconds); the result of the last call is discarded."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
        if best > 30 and min_time == 0.0:  # slow baselines: one run is enough
            break
    return best


def best_times(fns: dict[str, Callable[[], Any]], repeat: int = 3, slow: float = 30.0) -> dict[str, float]:
    """Best wall time (seconds) of each function, run in turn round after round, so that a busy spell on
    a shared machine hits all sides alike; stops after the round in which any side took over `slow` s."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
        if max(best.values()) > slow:
            break
    return best


def peak_rss_of(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a command in a fresh process; return (peak RSS in MiB, wall seconds)."""
    # A fresh interpreter per measurement: RUSAGE_CHILDREN of a one-child wrapper is that child's peak.
    wrapper = (
        "import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)"
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    peak_kib = int(proc.stdout.strip().splitlines()[-1])
    return peak_kib / 1024.0, wall


def self_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_result(name: str, result: dict[str, Any]) -> Path:
    """bench/results/<name>.json; a `--quick` smoke run (result["quick"] true) goes to results/quick/ so it
    never replaces a full-size result in the README table."""
    folder = RESULTS / "quick" if result.get("quick") else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "date": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": machine(), **result}
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
    print(json.dumps(payload, indent=2))
    return path


def ratio(reference_s: float, ours_s: float) -> float:
    """How many times faster ours is (reference time / our time), rounded for the table."""
    return round(reference_s / ours_s, 1) if ours_s > 0 else float("inf")


def fmt_s(seconds: float) -> str:
    """A duration for the summary table."""
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"


def scratch_dir(name: str) -> Path:
    """An empty scratch folder for one benchmark's generated data (bench/out/<name>, git-ignored)."""
    import shutil

    path = Path(__file__).parent / "out" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def remove_scratch(name: str) -> None:
    """Delete a benchmark's generated data once its result is written (the k-NN one is gigabytes)."""
    import shutil

    shutil.rmtree(Path(__file__).parent / "out" / name, ignore_errors=True)


def textured_frame(rng: Any, height: int, width: int) -> Any:
    """A random RGB frame (uint8) with smooth regions, edges and noise, so that crops differ and images
    do not compress unrealistically well."""
    import numpy as np

    coarse = rng.random((max(2, height // 32), max(2, width // 32), 3))
    rows = np.linspace(0, coarse.shape[0] - 1, height).round().astype(int)
    cols = np.linspace(0, coarse.shape[1] - 1, width).round().astype(int)
    fine = rng.random((height, width, 3)) * 0.25
    return (np.clip(coarse[rows][:, cols] * 0.75 + fine, 0, 1) * 255).astype(np.uint8)


def write_frames(root: Path, count: int, height: int, width: int, seed: int = 0, name: str = "frames") -> Path:
    """`count` PNG frames and a manifest.parquet as `epeflow manifest` writes it; returns the manifest path."""
    import numpy as np
    import pandas as pd

    from epeflow.io import safe_id, write_png, write_table

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        rel = f"{name}/frame_{i:05d}.png"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_png(path, textured_frame(rng, height, width))
        stat = path.stat()
        rows.append({"frame": i, "id": safe_id(rel), "path": str(path), "height": height, "width": width,
                     "sequence": "", "frame_index": i, "split": "train", "robust_label_path": None,
                     "gbuffer_path": None, "gt_label_path": None, "size": stat.st_size, "mtime": stat.st_mtime})
    manifest = root / f"{name}_manifest.parquet"
    frame = pd.DataFrame(rows).astype({"frame": "int64", "height": "int64", "width": "int64", "frame_index": "int64"})
    write_table(manifest, frame, {"dataset": name, "role": "synthetic", "kind": "images"})
    return manifest


def dir_bytes(path: Path) -> int:
    """Bytes of all files under `path` (what the store takes on disk, without filesystem block rounding)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def set_threads() -> int:
    """Use every core for torch / faiss, as the pipeline's rules do with `threads`; returns the count."""
    n = os.cpu_count() or 1
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:
        pass
    return n

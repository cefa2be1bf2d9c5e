"""Run every benchmark (bench/bench_*.py), then rewrite the results table in bench/README.md.

    python -m bench.run_all            # all benchmarks, full sizes
    python -m bench.run_all --quick    # small sizes (smoke test)
    python -m bench.run_all weights    # only bench_weights.py
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

BENCH = Path(__file__).parent
MARK_BEGIN = "<!-- results:begin -->"
MARK_END = "<!-- results:end -->"


def summarize() -> str:
    rows = ["| benchmark | measurement | ours | reference-style | ratio | machine |", "|---|---|---|---|---|---|"]
    for path in sorted((BENCH / "results").glob("*.json")):
        data = json.loads(path.read_text())
        machine = data["machine"].get("gpu") or data["machine"]["host_cpu"]
        machine = f"{machine}, {data['machine']['cpu_count']} cores"
        for row in data.get("summary", []):
            rows.append(
                f"| {data['benchmark']} | {row['what']} | {row.get('ours', '')} | {row.get('reference', '')} "
                f"| {row.get('ratio', '')} | {machine} |"
            )
    return "\n".join(rows)


def update_readme() -> None:
    readme = BENCH / "README.md"
    text = readme.read_text()
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    readme.write_text(head + MARK_BEGIN + "\n" + summarize() + "\n" + MARK_END + tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="benchmarks to run (file names without bench_ / .py)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--summarize-only", action="store_true", help="only rewrite bench/README.md")
    args = parser.parse_args()
    if not args.summarize_only:
        names = args.names or sorted(p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py"))
        for name in names:
            importlib.import_module(f"bench.bench_{name}").main(quick=args.quick)
    update_readme()


if __name__ == "__main__":
    main()

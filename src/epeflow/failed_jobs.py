"""What went wrong in the failed jobs of a Snakemake run, on screen.

Every rule sends its command's output to its log (`&> {log}`), so Snakemake's own report of a failure is
the rule's long command line and "check log file(s) for error details". The Snakefile's `onerror:` handler
calls `print_failures`: it finds the failed jobs' logs in Snakemake's run log and prints, per job, the
error line our CLI wrote (`epeflow <stage>: error: ...`), or the last line of a traceback, or the log's tail.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

_FAILED = re.compile(r"^Error in rule (?P<rule>\S+):\s*$")
_LOG = re.compile(r"^\s+log: (?P<logs>.+?)(?: \(check log file\(s\) for error details\))?\s*$")
_OUR_ERROR = re.compile(r"^epeflow \S+: (error: )?")


def failed_jobs(run_log: str) -> list[tuple[str, list[str]]]:
    """(rule, log files) of every "Error in rule" block of a Snakemake run log, in order, without repeats."""
    found: list[tuple[str, list[str]]] = []
    rule = None
    for line in run_log.splitlines():
        if match := _FAILED.match(line):
            rule = match["rule"]
            continue
        if rule is None:
            continue
        if match := _LOG.match(line):
            entry = (rule, [p.strip() for p in match["logs"].split(",") if p.strip()])
            if entry not in found:
                found.append(entry)
            rule = None
        elif line and not line.startswith((" ", "\t")):  # the block ended without a log: nothing to show
            rule = None
    return found


def error_lines(log_text: str, tail: int = 3) -> list[str]:
    """The lines of a job log that say what failed: our CLI's error lines (with the lines indented under
    them), else a traceback's last line, else the last `tail` non-empty lines."""
    lines = [line.rstrip() for line in log_text.splitlines()]
    for i in range(len(lines) - 1, -1, -1):
        if _OUR_ERROR.match(lines[i]):
            end = i + 1
            while end < len(lines) and lines[end].startswith("  "):
                end += 1
            return lines[i:end]
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        last = [line for line in lines if line and not line.startswith((" ", "\t"))]
        if last:
            return last[-1:]
    return [line for line in lines if line.strip()][-tail:]


def print_failures(run_logs: str | Iterable[str] | None, out: TextIO | None = None) -> None:
    """For `onerror:`: print what each failed job's log says went wrong (the run logs Snakemake passes)."""
    out = out or sys.stderr
    paths = [run_logs] if isinstance(run_logs, str) else list(run_logs or [])
    for run_log in paths:
        try:
            text = Path(run_log).read_text(errors="replace")
        except OSError:
            continue
        for rule, logs in failed_jobs(text):
            for log in logs:
                try:
                    found = error_lines(Path(log).read_text(errors="replace"))
                except OSError:
                    found = ["(the log file is missing)"]
                print(f"rule {rule} failed; from {log}:", file=out)
                for line in found:
                    print(f"  {line}", file=out)

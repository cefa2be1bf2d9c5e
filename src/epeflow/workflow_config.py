"""The config as the Snakefile sees it: errors that name the config file (and line, or key) in one short
message, instead of a traceback through the Snakefile.

Snakemake merges `config/config.yaml` with the `--configfile` overlays before any of our code runs, so a
validation error by itself cannot say which file set the bad key; `validate_workflow_config` looks the key
up in the files. `exit_on_error` turns an `EpeflowError` into that message on stderr and exit status 1,
which Snakemake passes through without adding its own traceback.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from epeflow.config import validate_config
from epeflow.errors import EpeflowError

_KEY = re.compile(r"config key `([^`]+)`")


def read_yaml_file(path: str | Path) -> dict[str, Any]:
    """A config file's mapping; invalid YAML is an error naming the file and the line (Snakemake's own
    message names neither)."""
    path = Path(path)
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise EpeflowError(f"config file {path} does not exist") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise EpeflowError(f"config file {path}{where}: not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EpeflowError(f"config file {path} must hold a mapping at the top level")
    return data


def _holds(data: Any, keys: Sequence[str]) -> bool:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True


def key_origin(key: str, files: Sequence[str | Path]) -> str | None:
    """The last of `files` (in overlay order) that sets `key` (dotted) or its closest parent, or None."""
    parts = key.split(".")
    contents = []
    for f in files:
        try:
            contents.append((str(f), read_yaml_file(f)))
        except EpeflowError:
            continue
    for length in range(len(parts), 0, -1):
        for name, data in reversed(contents):
            if _holds(data, parts[:length]):
                return name
    return None


def validate_workflow_config(config: dict[str, Any], files: Sequence[str | Path]) -> dict[str, Any]:
    """`validate_config` for the Snakefile: the message names the config files (`files` in overlay order,
    base first; relative to the working directory when inside it) and, for each bad key, the file that sets it."""
    files = [_shown(f) for f in files]
    try:
        return validate_config(config)
    except EpeflowError as e:
        lines = str(e).splitlines()
        named = []
        for line in lines[1:]:
            match = _KEY.search(line)
            origin = key_origin(match.group(1), files) if match else None
            named.append(line.replace(match.group(0), f"{match.group(0)} (in {origin})", 1) if origin else line)
        listed = ", ".join(map(str, files)) or "no config file"
        raise EpeflowError("\n  ".join([f"{lines[0].rstrip(':')} ({listed}):", *(n.strip() for n in named)])) from None


_TARGETS = {"experiments": "results/<experiment>/...", "datasets": "results/datasets/<dataset>/..."}


def config_entry(config: Mapping[str, Any], section: str, name: str) -> Any:
    """`config[section][name]` for a name taken from a target path; an unknown name (a typo in the target)
    is an error listing the names the config defines, the closest first."""
    entries = config[section]
    if name in entries:
        return entries[name]
    kind = section.rstrip("s")
    close = difflib.get_close_matches(name, list(entries), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise EpeflowError(
        f"no {kind} named {name!r} in the config ({_TARGETS[section]}); {hint}{section} defined: "
        f"{', '.join(sorted(entries)) or 'none'}"
    )


def _shown(path: str | Path) -> str:
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


@contextlib.contextmanager
def exit_on_error() -> Iterator[None]:
    """In a Snakefile: an `EpeflowError` becomes `epeflow: error: <message>` on stderr and exit status 1."""
    try:
        yield
    except EpeflowError as e:
        print(f"epeflow: error: {e}", file=sys.stderr)
        sys.exit(1)

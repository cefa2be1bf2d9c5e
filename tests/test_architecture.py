"""The package's layers: base modules, then `common`, then `artifacts`, then the stages, then the CLI.

Lower layers never import higher ones, stage packages import each other without cycles, and only the
artifact modules open the files stages hand each other.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "epeflow"
BASE = {"errors", "io", "log", "provenance", "config", "config_docs", "weights", "schemas"}
LAYERS = {"base": 0, "common": 1, "artifacts": 2, "stage": 3, "cli": 4}


def unit_of(module: str) -> str:
    """`epeflow.x.y` -> the top-level unit `x` (a module or a package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(unit: str) -> int:
    if unit in BASE:
        return LAYERS["base"]
    if unit in ("common", "artifacts", "cli"):
        return LAYERS[unit]
    if unit == "__init__":
        return LAYERS["cli"]  # the package's front door may re-export anything
    return LAYERS["stage"]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every epeflow module imported anywhere in the file (function-local imports included)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("epeflow"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("epeflow"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def graph() -> dict[str, set[str]]:
    """unit -> units it imports, over all modules of the package."""
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        unit = unit_of(module_name(path)) if path.parent != PACKAGE or path.stem != "__init__" else "__init__"
        targets = {unit_of(m) for m in imports_of(path) if m != "epeflow"}
        edges.setdefault(unit, set()).update(t for t in targets if t != unit and (PACKAGE / t).exists()
                                             or (PACKAGE / f"{t}.py").exists())
        edges[unit].discard(unit)
    return edges


def test_lower_layers_never_import_higher_ones():
    wrong = sorted(f"{a} -> {b}" for a, targets in graph().items() for b in targets if layer_of(b) > layer_of(a))
    assert not wrong, f"imports against the layers: {wrong}"


def test_no_import_cycle_between_units():
    edges = graph()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail(f"import cycle: {' -> '.join([*trail, node, nxt])}")
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])


# Reading or writing a stage's hand-over files directly: only `epeflow.artifacts` (and the generic io helpers
# it is built on, `weights` for pretrained checkpoints, and `epe` for the reference code's own file formats) may.
DIRECT_ACCESS = re.compile(r"\b(read_parquet|to_parquet|zarr\.open\w*|zarr\.create\w*|read_table|write_table|"
                           r"read_table_meta|torch\.load|torch\.save)\s*\(")
ALLOWED = {"io.py", "weights.py"}


def test_only_artifact_modules_open_hand_over_files():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("artifacts", "epe") or str(rel) in ALLOWED:
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if DIRECT_ACCESS.search(line):
                offenders.append(f"{rel}:{lineno}: {line.strip()}")
    assert not offenders, "open these files through epeflow.artifacts:\n" + "\n".join(offenders)


def test_the_checks_see_a_violation(tmp_path):
    """The layer test is not vacuous: a module of `common` importing a stage would be caught."""
    assert layer_of("train") > layer_of("common") > layer_of("io")
    assert "epeflow.artifacts.model" in imports_of(PACKAGE / "models" / "load.py")

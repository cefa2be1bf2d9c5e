"""Render config/README.md from the schema, so every key's documentation exists and stays current."""

from __future__ import annotations

from typing import Any

from epeflow.config import load_schema

INTRO = """\
# Configuration reference

epeflow reads `config/config.yaml` (and any `--configfile` overlays, merged key by key) and checks it
against `workflow/schemas/config.schema.yaml` before any job runs: a misspelt key or a wrong type stops
Snakemake with a message naming the key. `epeflow config config/config.yaml [overlay.yaml ...]` prints the
merged configuration with every default filled in.

The file has four parts:

- `datasets`: named datasets, each one of an image folder (`images`), an EPE file list (`filelist`),
  video sequences (`video`) or a generated demo (`demo`), with how to label it, its G-buffers and its
  crops;
- `experiments`: named translations from a synthetic `source` dataset to a real `target` dataset, with
  matching, training, enhancement and evaluation settings;
- `weights`: where pretrained weights are (they are never downloaded by the pipeline);
- `default_experiment`: whose report `snakemake` builds when no target is named.

Paths are relative to the directory Snakemake runs in. An experiment can live in its own file, e.g.
`config/experiments/pfd2vistas.example.yaml`, added with `--configfile config/config.yaml <file>`.

This page is generated from the schema (`epeflow config --docs > config/README.md`); a test keeps it
in sync.
"""


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        merged = {**schema["definitions"][name], **{k: v for k, v in node.items() if k != "$ref"}}
        return merged
    return node


def _type_of(node: dict[str, Any]) -> str:
    if "anyOf" in node:
        return " or ".join(_type_of(option) for option in node["anyOf"])
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    kind = node.get("type", "object")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"list of {node.get('items', {}).get('type', 'values')}"
    return str(kind)


def _default(node: dict[str, Any]) -> str:
    if "default" not in node or isinstance(node["default"], dict):
        return ""
    value = node["default"]
    return "`null`" if value is None else f"`{value}`".replace("True", "true").replace("False", "false")


def _rows(schema: dict[str, Any], node: dict[str, Any], prefix: str) -> list[str]:
    rows: list[str] = []
    given = node.get("default") if isinstance(node.get("default"), dict) else {}
    for name, child in node.get("properties", {}).items():
        child = _resolve(schema, child)
        if "default" not in child and name in given:  # an object's default entry sets its keys' (`resources.*`)
            child = {**child, "default": given[name]}
        key = f"{prefix}.{name}" if prefix else name
        desc = " ".join(str(child.get("description", "")).split())
        rows.append(f"| `{key}` | {_type_of(child)} | {_default(child)} | {desc} |")
        if "properties" in child:
            rows.extend(_rows(schema, child, key))
    return rows


def _section(schema: dict[str, Any], title: str, node: dict[str, Any], prefix: str) -> str:
    header = "| key | type | default | meaning |\n|---|---|---|---|\n"
    return f"## {title}\n\n" + header + "\n".join(_rows(schema, node, prefix)) + "\n"


def render_config_docs() -> str:
    schema = load_schema()
    top = {"properties": {k: v for k, v in schema["properties"].items() if k not in ("datasets", "experiments")}}
    parts = [
        INTRO,
        _section(schema, "Top level", top, ""),
        _section(schema, "Datasets (`datasets.<name>`)", schema["definitions"]["dataset"], "datasets.<name>"),
        _section(schema, "Experiments (`experiments.<name>`)", schema["definitions"]["experiment"],
                 "experiments.<name>"),
    ]
    return "\n".join(parts)

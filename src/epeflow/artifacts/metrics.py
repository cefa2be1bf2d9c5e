"""metrics.json: an experiment's metrics, each with the provenance needed to reproduce it."""

from __future__ import annotations

from typing import Any

from epeflow.errors import EpeflowError
from epeflow.io import PathLike, read_json, write_json


def write_metrics(path: PathLike, doc: dict[str, Any]) -> None:
    write_json(path, doc)


def read_metrics(path: PathLike) -> dict[str, Any]:
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise EpeflowError(f"{path} is not a metrics document (a JSON object); rerun `epeflow evaluate`")
    return doc

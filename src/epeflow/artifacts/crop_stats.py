"""crop_stats.json: a dataset's RGB mean / std (3 numbers each) that normalise VGG16's input for crop features."""

from __future__ import annotations

from typing import Any

from epeflow.errors import EpeflowError
from epeflow.io import PathLike, read_json, write_json


def write_crop_stats(path: PathLike, stats: dict[str, Any]) -> None:
    write_json(path, stats)


def read_crop_stats(path: PathLike) -> dict[str, Any]:
    stats = read_json(path)
    for key in ("mean", "std"):
        value = stats.get(key) if isinstance(stats, dict) else None
        if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int | float) for v in value)):
            raise EpeflowError(f"{path}: `{key}` must be a list of 3 numbers; rerun `epeflow crop-stats`")
    if min(stats["std"]) <= 0:
        raise EpeflowError(f"{path}: `std` must be positive (are all frames one flat colour?)")
    return stats

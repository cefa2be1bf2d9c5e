"""enhanced/: one PNG per enhanced frame (`<id>.png`) and `index.parquet` listing them with their sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from epeflow.errors import EpeflowError
from epeflow.io import PathLike, read_table, read_table_meta, write_table

INDEX = "index.parquet"
INDEX_COLUMNS = ("frame", "id", "source_path", "enhanced_path", "height", "width")


def frame_path(directory: PathLike, frame_id: str) -> Path:
    return Path(directory) / f"{frame_id}.png"


def write_index(directory: PathLike, index: pd.DataFrame, meta: dict[str, Any]) -> None:
    write_table(Path(directory) / INDEX, index[list(INDEX_COLUMNS)], meta)


def read_index(directory: PathLike, allow_empty: bool = False) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(index, metadata) of an enhanced folder; a frame listed twice (or none, unless allowed) is an error."""
    index_path = Path(directory) / INDEX
    index, meta = read_table(index_path)
    if "id" not in index.columns:
        raise EpeflowError(f"{index_path} lacks column `id`; rerun `epeflow enhance` to rewrite it")
    if index.empty and not allow_empty:
        raise EpeflowError(
            f"{index_path} lists no enhanced frames; check config keys `enhance.split` and `enhance.max_frames`"
        )
    if index["id"].duplicated().any():
        dup = index.loc[index["id"].duplicated(), "id"].iloc[0]
        raise EpeflowError(f"{index_path} lists frame id {dup!r} twice; rerun `epeflow enhance`")
    return index, meta


def read_index_meta(directory: PathLike) -> dict[str, Any]:
    return read_table_meta(Path(directory) / INDEX)

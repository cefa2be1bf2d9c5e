"""weights.parquet: one sampling weight per matched pair (column `weight`, row i = matches row i)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from epeflow.errors import EpeflowError
from epeflow.io import PathLike, read_table, write_table


def write_weights(out: PathLike, weights: np.ndarray, meta: dict[str, Any]) -> None:
    write_table(out, pd.DataFrame({"weight": weights}), meta)


def read_weights(path: PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """(weights float64 (M,), metadata)."""
    table, meta = read_table(path)
    if "weight" not in table.columns:
        raise EpeflowError(f"{path} has no `weight` column; rerun `epeflow weights`")
    return table["weight"].to_numpy(np.float64), meta

"""The manifest columns the crop and matching stages read, checked against the contract."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from epeflow.errors import EpeflowError
from epeflow.io import PathLike, read_table

BASE_COLUMNS = ("frame", "id", "path", "height", "width")


def read_frames(path: PathLike, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Manifest rows (frame, id, path, height, width + `extra`), indexed by row = frame id."""
    path = Path(path)
    df, _ = read_table(path)
    wanted = list(dict.fromkeys([*BASE_COLUMNS, *extra]))
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise EpeflowError(f"manifest {path} lacks column(s) {', '.join(missing)}; rebuild it with `epeflow manifest`")
    df = df[wanted].reset_index(drop=True)
    if not np.array_equal(df["frame"].to_numpy(), np.arange(len(df))):
        raise EpeflowError(f"manifest {path}: column `frame` must equal the row number 0..N-1; rebuild it")
    return df

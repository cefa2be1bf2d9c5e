"""Row-chunked zarr arrays: streaming writes in whole chunks, and a completeness check on read.

Crop, feature and k-NN stores all hold arrays that share their first dimension (one row per crop).
Writers fill them front to back through a buffer that is flushed in whole chunks, so memory stays flat
in the number of rows and every chunk is written exactly once. zarr returns fill values for chunk files
that are missing, so readers count chunk files to tell a complete store from a damaged one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from epeflow.errors import EpeflowError


def create_rows_array(
    group: zarr.Group, name: str, rows: int, width: int | None, dtype: str, chunk_rows: int
) -> zarr.Array:
    """An array of `rows` rows (1-D when width is None), chunked by rows; every chunk is written, even
    all-zero ones, so that a missing chunk file always means damage."""
    shape: tuple[int, ...] = (rows,) if width is None else (rows, width)
    chunks: tuple[int, ...] = (max(1, chunk_rows),) if width is None else (max(1, chunk_rows), width)
    return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, config={"write_empty_chunks": True})


class RowWriter:
    """Append rows to several arrays of the same length; writes happen in whole chunks.

    `append(frame=..., box=...)` takes one block per array (same number of rows); `close()` flushes the
    last partial chunk and checks that exactly the declared number of rows arrived. `start` (a whole
    number of chunks) continues a store whose first rows a killed run wrote.
    """

    def __init__(self, arrays: Mapping[str, zarr.Array], start: int = 0) -> None:
        self.arrays = dict(arrays)
        lengths = {a.shape[0] for a in self.arrays.values()}
        chunk_rows = {a.chunks[0] for a in self.arrays.values()}
        if len(lengths) != 1 or len(chunk_rows) != 1:
            raise ValueError("RowWriter needs arrays with one length and one row chunking")
        self.rows = lengths.pop()
        self.chunk_rows = chunk_rows.pop()
        if start % self.chunk_rows or not 0 <= start <= self.rows:
            raise ValueError(f"RowWriter: start row {start} is not a chunk boundary within {self.rows} rows")
        self.written = start
        self._buffer: dict[str, list[np.ndarray]] = {name: [] for name in self.arrays}
        self._buffered = 0

    @property
    def buffered(self) -> int:
        """Rows received but not yet written: fewer than one chunk after every `append`."""
        return self._buffered

    def append(self, **blocks: np.ndarray) -> None:
        if set(blocks) != set(self.arrays):
            raise ValueError(f"RowWriter.append needs blocks for {sorted(self.arrays)}, got {sorted(blocks)}")
        n = {len(b) for b in blocks.values()}
        if len(n) != 1:
            raise ValueError("RowWriter.append: blocks have different numbers of rows")
        count = n.pop()
        if self.written + self._buffered + count > self.rows:
            raise ValueError(f"RowWriter: more than the declared {self.rows} rows")
        for name, block in blocks.items():
            self._buffer[name].append(np.asarray(block))
        self._buffered += count
        if self._buffered >= self.chunk_rows:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        whole = self._buffered if final else (self._buffered // self.chunk_rows) * self.chunk_rows
        if whole == 0:
            return
        for name, parts in self._buffer.items():
            data = np.concatenate(parts) if len(parts) > 1 else parts[0]
            self.arrays[name][self.written : self.written + whole] = data[:whole]
            rest = data[whole:]
            self._buffer[name] = [rest] if len(rest) else []
        self.written += whole
        self._buffered -= whole

    def close(self) -> None:
        self._flush(final=True)
        if self.written != self.rows:
            raise ValueError(f"RowWriter: {self.written} rows written, {self.rows} declared")


def open_group_checked(path: str | Path, what: str, rerun: str) -> zarr.Group:
    """Open a zarr group for reading; a missing or unreadable one is an error naming it."""
    path = Path(path)
    if not path.exists():
        raise EpeflowError(f"{what} {path} does not exist; {rerun}")
    try:
        return zarr.open_group(str(path), mode="r")
    except Exception as e:  # zarr raises several kinds for damaged metadata
        raise EpeflowError(f"{what} {path} cannot be opened ({e}); delete it and {rerun}") from e


def check_arrays(
    group: zarr.Group,
    path: str | Path,
    what: str,
    rerun: str,
    specs: Mapping[str, tuple[Sequence[int | None], Sequence[str]]],
) -> dict[str, zarr.Array]:
    """Check that arrays exist with the given shapes (None = any, shared first dimension) and dtypes,
    and that every chunk file is present; returns the arrays by name."""
    arrays: dict[str, zarr.Array] = {}
    for name, (shape, dtypes) in specs.items():
        try:
            arr = group[name]
        except KeyError:
            raise EpeflowError(f"{what} {path} has no `{name}` array (incomplete or not a {what}); {rerun}") from None
        if not isinstance(arr, zarr.Array):
            raise EpeflowError(f"{what} {path}: `{name}` is not an array; {rerun}")
        wrong_rank = len(arr.shape) != len(shape)
        if wrong_rank or any(s is not None and s != a for s, a in zip(shape, arr.shape, strict=True)):
            raise EpeflowError(
                f"{what} {path}: `{name}` has shape {tuple(arr.shape)}, expected "
                f"{tuple('*' if s is None else s for s in shape)}; {rerun}"
            )
        if str(arr.dtype) not in dtypes:
            raise EpeflowError(f"{what} {path}: `{name}` has dtype {arr.dtype}, expected {' or '.join(dtypes)}")
        arrays[name] = arr
    lengths = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise EpeflowError(f"{what} {path}: arrays have different lengths {lengths} (incomplete store); {rerun}")
    for name, arr in arrays.items():
        if arr.nchunks_initialized != arr.nchunks:
            raise EpeflowError(
                f"{what} {path}: `{name}` has {arr.nchunks_initialized} of {arr.nchunks} chunks "
                f"(incomplete or damaged store); delete it and {rerun}"
            )
    return arrays


def read_rows(arr: zarr.Array, start: int, stop: int, path: str | Path, what: str) -> np.ndarray:
    """Read rows [start, stop); a corrupt chunk is an error naming the store."""
    try:
        return np.asarray(arr[start:stop])
    except Exception as e:  # codec errors surface as RuntimeError/ValueError depending on the codec
        raise EpeflowError(
            f"{what} {path}: rows {start}..{stop} cannot be read ({e}); the store is damaged, delete it and "
            "rerun the stage that writes it"
        ) from e


def plain_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in dict(attrs).items()}

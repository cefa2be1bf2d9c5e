"""manifest.parquet + skipped.tsv: one checked row per frame, the index every later stage uses.

Row i is frame i (`frame` = row number). This module is the only one that opens these files: the datasets
stage builds the table and writes it here, every other stage reads it here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epeflow import io
from epeflow.errors import EpeflowError

COMPANIONS = ("robust_label_path", "gbuffer_path", "gt_label_path")  # per-frame files beside the image
MANIFEST_COLUMNS = ("frame", "id", "path", "height", "width", "sequence", "frame_index", "split",
                    *COMPANIONS, "size", "mtime")
DTYPES = {"frame": "int64", "height": "int64", "width": "int64", "frame_index": "int64", "size": "int64",
          "mtime": "float64"}
BASE_COLUMNS = ("frame", "id", "path", "height", "width")
DIGEST = "digest"  # per-frame content digest (epeflow.datasets.fingerprint); manifests made by hand may lack it
_REBUILD = "rebuild it with `epeflow manifest` (the `manifest` rule)"


def write_skipped(path: io.PathLike, skipped: pd.DataFrame) -> None:
    """skipped.tsv: header `path<TAB>reason`, one line per skipped frame (header only when none)."""
    lines = ["path\treason"]
    for p, reason in zip(skipped["path"], skipped["reason"], strict=True):
        lines.append(f"{p}\t{' '.join(str(reason).split())}")
    with io.atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def write_manifest(frames: pd.DataFrame, meta: dict[str, Any], out: io.PathLike, skipped: pd.DataFrame,
                   skipped_path: io.PathLike) -> None:
    write_skipped(skipped_path, skipped)
    io.write_table(out, frames, meta)


def _check_rows(df: pd.DataFrame, path: Path) -> None:
    if not np.array_equal(df["frame"].to_numpy(), np.arange(len(df))):
        raise EpeflowError(f"{path}: column `frame` is not the row number 0..N-1; {_REBUILD}")


def load_manifest(path: io.PathLike) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The whole manifest: (frames, metadata). Optional path columns hold None where a frame has no such file."""
    path = Path(path)
    df, meta = io.read_table(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing or "dataset" not in meta:
        raise EpeflowError(f"{path} is not an epeflow manifest (missing {', '.join(missing) or 'its metadata'}); "
                           f"{_REBUILD}")
    _check_rows(df, path)
    for column in ("id", "path", "sequence", "split"):
        df[column] = df[column].astype(object)
    for column in [*COMPANIONS, *(c for c in df.columns if c.startswith("mod_"))]:
        values = df[column].astype(object)
        df[column] = values.where(values.notna(), None)
    return df, meta


def frame_digests(frames: pd.DataFrame) -> list[str]:
    """Each frame's content digest; without the column (a manifest made by hand), its image's path, size and
    mtime stand in (where present), so resume checks and fingerprints still see a replaced file."""
    if DIGEST in frames.columns:
        return [str(d) for d in frames[DIGEST]]
    facts = [frames[c] if c in frames.columns else [None] * len(frames) for c in ("path", "size", "mtime")]
    return [f"{p}:{s}:{m}" for p, s, m in zip(*facts, strict=True)]


def content_digest(frames: pd.DataFrame) -> str:
    """One digest of a manifest's frames: ids, sizes and content digests in frame order (what every later
    stage's output depends on), for fingerprints of runs that read the frames."""
    h = hashlib.sha256()
    for row, digest in zip(frames[["id", "height", "width"]].itertuples(index=False), frame_digests(frames),
                           strict=True):
        h.update(f"{row.id}\t{row.height}\t{row.width}\t{digest}\n".encode())
    return h.hexdigest()


def read_content_digest(path: io.PathLike) -> str:
    """`content_digest` of the manifest at `path`."""
    df, _ = io.read_table(path)
    return content_digest(df)


def read_frames(path: io.PathLike, extra: Sequence[str] = ()) -> pd.DataFrame:
    """The columns most stages need (frame, id, path, height, width + `extra`), indexed by row = frame id."""
    path = Path(path)
    df, _ = io.read_table(path)
    wanted = list(dict.fromkeys([*BASE_COLUMNS, *extra]))
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise EpeflowError(f"manifest {path} lacks column(s) {', '.join(missing)}; {_REBUILD}")
    df = df[wanted].reset_index(drop=True)
    _check_rows(df, path)
    return df


def read_manifest_meta(path: io.PathLike) -> dict[str, Any]:
    """The manifest's metadata (dataset name, role, provenance) without reading its rows."""
    return io.read_table_meta(path)


def manifest_columns(path: io.PathLike) -> list[str]:
    return io.table_columns(path)


def read_manifest_table(path: io.PathLike) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(rows, metadata) as stored, for stages that pick their own columns."""
    return io.read_table(path)

"""manifest.parquet + skipped.tsv: one checked row per frame, the index every later stage uses.

Row i is frame i (`frame` = row number). This module is the only one that opens these files: the datasets
stage builds the table and writes it here, every other stage reads it here.

Frame paths (the image, its companions and video modalities) are stored relative to the dataset root,
which the metadata records once: absolute (`root`) and relative to the manifest's folder
(`root_from_manifest`). Readers join them back to absolute paths, trying the relative root first, so a
results folder moved to another machine together with its data (same layout) still finds every frame;
one moved alone finds them where they were. Manifests without `paths: relative` (older ones, hand-made
ones) hold absolute paths and are read as they are.
"""

from __future__ import annotations

import hashlib
import os
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
RELATIVE = "relative"  # meta `paths`: path columns are relative to the dataset root


def path_columns(columns: Sequence[str]) -> list[str]:
    """The columns of a manifest that hold file paths: the image, its companions, video modalities."""
    return [c for c in columns if c == "path" or c in COMPANIONS or c.startswith("mod_")]


def _missing(value: Any) -> bool:
    return not isinstance(value, str) and (value is None or bool(pd.isna(value)))


def _relative(value: Any, root: str) -> Any:
    return value if _missing(value) else os.path.relpath(value, root)


def relative_paths(frames: pd.DataFrame, meta: dict[str, Any], out: io.PathLike) -> tuple[pd.DataFrame, dict]:
    """(frames with path columns relative to meta `root`, meta recording the root once) as written to `out`."""
    root = os.path.abspath(meta["root"])
    frames = frames.copy()
    for column in path_columns(frames.columns):
        frames[column] = [_relative(v, root) for v in frames[column].astype(object)]
    here = os.path.dirname(os.path.abspath(out))
    return frames, {**meta, "root": root, "root_from_manifest": os.path.relpath(root, here), "paths": RELATIVE}


def data_root(meta: dict[str, Any], path: io.PathLike) -> str:
    """The folder a relative manifest's paths start from: the recorded root as seen from the manifest's
    folder (results and data moved together), else the recorded absolute root (results moved alone)."""
    candidates = []
    if meta.get("root_from_manifest") is not None:
        here = os.path.dirname(os.path.abspath(path))
        candidates.append(os.path.normpath(os.path.join(here, meta["root_from_manifest"])))
    candidates.append(str(meta["root"]))
    for candidate in candidates:
        if os.path.isdir(candidate):
            return candidate
    raise EpeflowError(
        f"{path}: the dataset root of its frames is gone (looked in {' and '.join(dict.fromkeys(candidates))}); "
        f"move the data back beside the results folder as it was (same relative layout), or {_REBUILD}"
    )


def _absolute(value: Any, root: str) -> Any:
    return value if _missing(value) else os.path.normpath(os.path.join(root, value))


def resolve_paths(df: pd.DataFrame, meta: dict[str, Any], path: io.PathLike) -> pd.DataFrame:
    """`df` (read from manifest `path`) with relative path columns joined to its data root."""
    columns = path_columns(df.columns)
    if meta.get("paths") != RELATIVE or not columns:
        return df
    root = data_root(meta, path)
    for column in columns:
        df[column] = [_absolute(v, root) for v in df[column].astype(object)]
    return df


def _read(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    df, meta = io.read_table(path)
    return resolve_paths(df, meta, path), meta


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
    if meta.get("root") is not None:
        frames, meta = relative_paths(frames, meta, out)
    io.write_table(out, frames, meta)


def _check_rows(df: pd.DataFrame, path: Path) -> None:
    if not np.array_equal(df["frame"].to_numpy(), np.arange(len(df))):
        raise EpeflowError(f"{path}: column `frame` is not the row number 0..N-1; {_REBUILD}")


def load_manifest(path: io.PathLike) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The whole manifest: (frames, metadata). Optional path columns hold None where a frame has no such file."""
    path = Path(path)
    df, meta = _read(path)
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
    df, _ = _read(path)
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
    """(rows, metadata) with absolute frame paths, for stages that pick their own columns."""
    return _read(Path(path))

"""The manifest: one checked row per frame, the index every later stage uses (`frame` = row number).

`build_manifest` lists a dataset (`sources.py`), checks every frame in parallel (`checks.py`), drops or
reports bad frames (`on_bad_frame`), assigns deterministic splits (`split.py`) and returns the table;
`write_manifest` stores it with its `skipped.tsv`; `load_manifest` reads it back for other stages.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epeflow import io
from epeflow.config import validate_dataset
from epeflow.datasets.checks import FrameInfo, check_frames
from epeflow.datasets.sources import COMPANIONS, list_frames
from epeflow.datasets.split import SPLIT_NAMES, assign_splits
from epeflow.errors import EpeflowError
from epeflow.provenance import stamp

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("frame", "id", "path", "height", "width", "sequence", "frame_index", "split",
                    "robust_label_path", "gbuffer_path", "gt_label_path", "size", "mtime")
_DTYPES = {"frame": "int64", "height": "int64", "width": "int64", "frame_index": "int64", "size": "int64",
           "mtime": "float64"}


@dataclass
class Manifest:
    frames: pd.DataFrame  # MANIFEST_COLUMNS (+ mod_* for videos)
    skipped: pd.DataFrame  # path, reason
    meta: dict[str, Any]


def _unique_ids(df: pd.DataFrame) -> None:
    dup = df["id"].duplicated(keep=False)
    if dup.any():
        first = df.loc[dup].sort_values("id").head(2)
        a, b = first["path"].tolist()
        raise EpeflowError(f"frames {a} and {b} get the same id {first['id'].iloc[0]!r} (ids are paths without "
                           "extension); rename or remove one of them")


def build_manifest(name: str, spec: Mapping[str, Any], demo_dir: str | os.PathLike[str] | None = None,
                   threads: int = 1) -> Manifest:
    """List, check and split the frames of dataset `name` (its config entry `spec`)."""
    spec = validate_dataset(spec, name)
    listing = list_frames(spec, name, demo_dir)
    df = listing.frames
    if spec["max_frames"] is not None:
        df = df.iloc[: spec["max_frames"]].reset_index(drop=True)
    if df.empty:
        raise EpeflowError(f"dataset {name!r} has no frames in {listing.root} (config key `datasets.{name}."
                           f"{listing.kind}`; extensions {', '.join(spec['extensions'])})")
    _unique_ids(df)
    modalities = [c for c in df.columns if c.startswith("mod_")]
    gbuffer_key = listing.extra.get("gbuffer_key", spec["gbuffer_key"])
    rows = df.to_dict("records")
    infos: list[FrameInfo | None] = []
    skipped: list[tuple[str, str]] = []
    for row, result in zip(rows, check_frames(rows, gbuffer_key, modalities, threads, desc=f"checking {name}"),
                           strict=True):
        if isinstance(result, FrameInfo):
            infos.append(result)
            continue
        if spec["on_bad_frame"] == "error":
            hint = "" if "on_bad_frame" in result else " (or set `on_bad_frame: skip` to leave such frames out)"
            raise EpeflowError(f"dataset {name!r}: {result}{hint}")
        log.warning("skipping frame %s: %s", row["path"], result)
        skipped.append((row["path"], result))
        infos.append(None)
    keep = np.array([info is not None for info in infos], bool)
    df = df.loc[keep].reset_index(drop=True)
    if df.empty:
        raise EpeflowError(f"dataset {name!r}: all {len(rows)} frames are bad (see the warnings above); nothing "
                           "left to use")
    good = [info for info in infos if info is not None]
    for field in FrameInfo._fields:
        df[field] = [getattr(info, field) for info in good]
    df["frame"] = np.arange(len(df), dtype=np.int64)

    if df["split"].notna().all():  # split folders of a video dataset
        split_by = "folders"
        df["split"] = df["split"].astype(str)
    else:
        split_by = "sequence" if (df["sequence"] != "").all() else "id"
        s = spec["split"]
        df["split"] = assign_splits(df[split_by].tolist(), s["val"], s["test"], s["seed"])
    df = df[list(MANIFEST_COLUMNS) + modalities].astype(_DTYPES)
    for column in ("id", "path", "sequence", "split"):
        df[column] = df[column].astype(object)
    counts = df["split"].value_counts()
    meta = {
        "dataset": name,
        "role": spec["role"],
        "kind": listing.kind,
        "root": str(listing.root),
        "num_frames": len(df),
        "num_skipped": len(skipped),
        "splits": {s: int(counts.get(s, 0)) for s in SPLIT_NAMES},
        "split_by": split_by,
        "split_settings": spec["split"],
        "gbuffer_key": gbuffer_key,
        "max_frames": spec["max_frames"],
        **listing.extra,
        **stamp(False),
    }
    if spec["split"]["test"] > 0 and meta["splits"]["test"] == 0:
        log.warning("dataset %r: the test split is empty (too few %s values to split)", name, split_by)
    log.info("dataset %r: %d frames (%s), %d skipped", name, len(df),
             ", ".join(f"{k} {v}" for k, v in meta["splits"].items()), len(skipped))
    return Manifest(df, pd.DataFrame(skipped, columns=["path", "reason"]), meta)


def write_skipped(path: str | os.PathLike[str], skipped: pd.DataFrame) -> None:
    """skipped.tsv: header `path<TAB>reason`, one line per skipped frame (header only when none)."""
    lines = ["path\treason"]
    for p, reason in zip(skipped["path"], skipped["reason"], strict=True):
        lines.append(f"{p}\t{' '.join(str(reason).split())}")
    with io.atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def write_manifest(manifest: Manifest, out: str | os.PathLike[str], skipped: str | os.PathLike[str]) -> None:
    write_skipped(skipped, manifest.skipped)
    io.write_table(out, manifest.frames, manifest.meta)


def load_manifest(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a manifest written by `epeflow manifest`: (frames, metadata). Optional path columns hold None
    where a frame has no such file."""
    path = Path(path)
    df, meta = io.read_table(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing or "dataset" not in meta:
        raise EpeflowError(f"{path} is not an epeflow manifest (missing {', '.join(missing) or 'its metadata'}); "
                           "rebuild it with `epeflow manifest` (the `manifest` rule)")
    if not np.array_equal(df["frame"].to_numpy(), np.arange(len(df))):
        raise EpeflowError(f"{path}: column `frame` is not the row number 0..N-1; rebuild it with `epeflow manifest`")
    for column in ("id", "path", "sequence", "split"):
        df[column] = df[column].astype(object)
    for column in [*COMPANIONS, *(c for c in df.columns if c.startswith("mod_"))]:
        values = df[column].astype(object)
        df[column] = values.where(values.notna(), None)
    return df, meta

"""The manifest: one checked row per frame, the index every later stage uses (`frame` = row number).

`build_manifest` lists a dataset (`sources.py`), checks every frame in parallel (`checks.py`), drops or
reports bad frames (`on_bad_frame`), assigns deterministic splits (`split.py`) and returns the table;
`write_manifest` stores it with its `skipped.tsv` through `epeflow.artifacts.manifest`, which every other
stage reads it with.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from epeflow.artifacts import manifest as manifest_file
from epeflow.artifacts.manifest import DIGEST, DTYPES, MANIFEST_COLUMNS
from epeflow.config import validate_dataset
from epeflow.datasets.checks import FrameInfo, check_frames
from epeflow.datasets.sources import Listing, list_frames
from epeflow.datasets.split import SPLIT_NAMES, assign_splits
from epeflow.errors import EpeflowError
from epeflow.provenance import stamp

log = logging.getLogger(__name__)


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


def listed_frames(spec: Mapping[str, Any], name: str, demo_dir: str | os.PathLike[str] | None = None) -> Listing:
    """The candidate frames the manifest checks: the listing, cut to `max_frames` (`spec` validated)."""
    listing = list_frames(spec, name, demo_dir)
    if spec["max_frames"] is not None:
        listing.frames = listing.frames.iloc[: spec["max_frames"]].reset_index(drop=True)
    return listing


def build_manifest(name: str, spec: Mapping[str, Any], demo_dir: str | os.PathLike[str] | None = None,
                   threads: int = 1) -> Manifest:
    """List, check and split the frames of dataset `name` (its config entry `spec`)."""
    spec = validate_dataset(spec, name, stage="manifest")
    listing = listed_frames(spec, name, demo_dir)
    df = listing.frames
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
    df = df[[*MANIFEST_COLUMNS, DIGEST, *modalities]].astype(DTYPES)
    for column in ("id", "path", "sequence", "split", DIGEST):
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


def write_manifest(manifest: Manifest, out: str | os.PathLike[str], skipped: str | os.PathLike[str]) -> None:
    manifest_file.write_manifest(manifest.frames, manifest.meta, out, manifest.skipped, skipped)


def run_manifest(name: str, spec: Mapping[str, Any], out: str | os.PathLike[str], skipped: str | os.PathLike[str],
                 demo_dir: str | os.PathLike[str] | None = None, threads: int = 1) -> Manifest:
    """`epeflow manifest`: build the manifest of dataset `name` and write it with its skipped.tsv."""
    manifest = build_manifest(name, spec, demo_dir=demo_dir, threads=threads)
    write_manifest(manifest, out, skipped)
    return manifest

"""Cheap fingerprints of a dataset's files, so data changes rerun what depends on them.

`listing_fingerprint` is what Snakemake compares: the manifest rule takes it as a param, computed when the
workflow plans, from the relative path, size and modification time of every file the manifest would read
(each frame's image and companions, in listing order). Adding, removing, replacing or editing a frame
changes it, so the manifest and what follows rerun; an untouched dataset plans nothing. Nothing is decoded.

`frame_digest` is the per-frame content digest the manifest records while it reads each image anyway: the
image's bytes, and the size and modification time of its companions (labels, G-buffers, video modalities;
the stages that read those check them). Later stages resume and fingerprint by it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from epeflow.artifacts.manifest import COMPANIONS
from epeflow.datasets.walk import walk_once
from epeflow.errors import EpeflowError

_CHUNK = 1 << 20


def file_stats(path: str) -> Iterator[tuple[str, int, int]]:
    """(path, size, mtime_ns) of a file, or of every file under a folder (per-frame G-buffer folders);
    a missing path yields size -1 (the manifest reports it)."""
    if os.path.isdir(path):
        for dirpath, _, filenames in walk_once(path):
            for name in filenames:
                yield from file_stats(os.path.join(dirpath, name))
        return
    try:
        st = os.stat(path)
    except OSError:
        yield path, -1, 0
        return
    yield path, st.st_size, st.st_mtime_ns


def _companions(row: Mapping[str, Any]) -> list[str]:
    """Companion columns of a manifest / listing row that name a file, in a fixed order."""
    columns = [*COMPANIONS, *sorted(c for c in row if c.startswith("mod_"))]
    return [c for c in columns if row.get(c)]


def frame_digest(row: Mapping[str, Any]) -> str:
    """blake2b of the image's bytes and of each companion's size and mtime (see the module docstring)."""
    h = hashlib.blake2b(digest_size=16)
    with open(row["path"], "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    for column in _companions(row):
        for path, size, mtime in file_stats(row[column]):
            h.update(f"\n{column}\t{os.path.basename(path)}\t{size}\t{mtime}".encode())
    return h.hexdigest()


def _stats_digest(rows: Iterable[Mapping[str, Any]], root: str) -> tuple[int, str]:
    h = hashlib.blake2b(digest_size=16)
    n = 0
    for row in rows:
        n += 1
        for column in ("path", *_companions(row)):
            for path, size, mtime in file_stats(row[column]):
                h.update(f"{column}\t{os.path.relpath(path, root)}\t{size}\t{mtime}\n".encode())
    return n, h.hexdigest()


def listing_fingerprint(spec: Mapping[str, Any], name: str) -> str:
    """`"<n> frames <digest>"` for a dataset entry read in place (images, filelist, video); "" for a generated
    demo (its folder is a rule output, which Snakemake tracks itself). A dataset that cannot be listed
    gives the reason, so its manifest job runs and reports it."""
    from epeflow.config import validate_dataset
    from epeflow.datasets.manifest import listed_frames

    try:
        spec = validate_dataset(spec, name, stage="manifest")
        if "demo" in spec:
            return ""
        listing = listed_frames(spec, name)
    except EpeflowError as e:
        return f"cannot be listed: {e}"
    n, digest = _stats_digest(listing.frames.to_dict("records"), str(listing.root))
    return f"{n} frames {digest}"


def planned_frames(spec: Mapping[str, Any], listing: str) -> int:
    """Frames a dataset is expected to have when Snakemake plans, for its shard count: a demo's configured
    count, else the count in its `listing_fingerprint` (before bad frames are skipped; 1 when it cannot be
    listed, so the manifest job runs and reports why)."""
    if "demo" in spec:
        frames = int(spec["demo"].get("frames", 48))
        return min(frames, spec["max_frames"]) if spec.get("max_frames") else frames
    head = listing.split(" ", 2)
    return int(head[0]) if len(head) > 1 and head[0].isdigit() and head[1] == "frames" else 1

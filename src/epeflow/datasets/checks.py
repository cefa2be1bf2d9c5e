"""Per-frame checks of a listing: every image decodes fully, every companion exists and has its size; each
frame's content digest is recorded on the way (the image's bytes are read anyway).

Images are decoded completely (a truncated PNG only fails at its last row); labels, G-buffers and video
modalities are only sized from their headers (an .npz member's .npy header is read without inflating
the array), which keeps a 25K-frame manifest fast. A check raises EpeflowError naming the file.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from epeflow import io
from epeflow.datasets.fingerprint import frame_digest
from epeflow.errors import EpeflowError
from epeflow.log import progress

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class FrameInfo(NamedTuple):
    height: int
    width: int
    size: int  # bytes of the image file
    mtime: float
    digest: str  # content digest of the frame (image bytes, companions' size and mtime): fingerprint.frame_digest


def image_header_size(path: str | os.PathLike[str], what: str) -> tuple[int, int]:
    """(height, width) of an image from its header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except FileNotFoundError:
        raise EpeflowError(f"{what} {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise EpeflowError(f"{what} {path} is not a readable image ({e})") from e
    return h, w


def npy_shape(stream) -> tuple[int, ...]:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, _, _ = np.lib.format.read_array_header_1_0(stream)
    else:
        shape, _, _ = np.lib.format.read_array_header_2_0(stream)
    return tuple(shape)


def gbuffer_shape(path: str | os.PathLike[str], key: str) -> tuple[int, ...] | None:
    """Array shape of a G-buffer file from its header (.npz member `key`, .npy, image); None when the
    format has no cheap header (.exr, per-frame folders) and is checked by `epeflow gbuffers` instead."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if path.is_dir() or suffix == ".exr":
            if not path.exists():
                raise FileNotFoundError(path)
            return None
        if suffix in _IMAGE_SUFFIXES:
            return image_header_size(path, "G-buffer file")
        if suffix == ".npy":
            with open(path, "rb") as f:
                return npy_shape(f)
        with zipfile.ZipFile(path) as zf:
            member = f"{key}.npy"
            if member not in zf.namelist():
                have = ", ".join(n.removesuffix(".npy") for n in zf.namelist())
                raise EpeflowError(f"G-buffer file {path} has no array {key!r} (it has: {have}); set config key "
                                   "`gbuffer_key` to the right one")
            with zf.open(member) as f:
                return npy_shape(f)
    except FileNotFoundError:
        raise EpeflowError(f"G-buffer file {path} does not exist") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise EpeflowError(f"G-buffer file {path} is corrupt or truncated ({e})") from e


def check_frame(row: Mapping[str, Any], gbuffer_key: str, modalities: list[str]) -> FrameInfo:
    """Validate one listed frame; returns its size facts or raises EpeflowError naming the bad file."""
    if row.get("problem"):
        raise EpeflowError(row["problem"])
    path = row["path"]
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise EpeflowError(f"image {path} does not exist") from None
    h, w = io.read_image(path).shape[:2]
    for column, what in (("robust_label_path", "robust label"), ("gt_label_path", "GT label")):
        label = row.get(column)
        if label is None:
            continue
        lh, lw = image_header_size(label, what)
        if (lh, lw) != (h, w):
            raise EpeflowError(f"{what} {label} is {lw}x{lh} but its image {path} is {w}x{h}")
    gbuffer = row.get("gbuffer_path")
    if gbuffer is not None:
        shape = gbuffer_shape(gbuffer, gbuffer_key)
        if shape is not None and (len(shape) not in (2, 3) or tuple(shape[:2]) != (h, w)):
            raise EpeflowError(f"G-buffer file {gbuffer} holds shape {shape} but its image {path} is {w}x{h} "
                               f"(expected (H, W, C) = ({h}, {w}, C))")
    for column in modalities:
        other = row.get(column)
        if other is not None and Path(other).suffix.lower() in _IMAGE_SUFFIXES:
            what = f"{column.removeprefix('mod_')} file"
            oh, ow = image_header_size(other, what)
            if (oh, ow) != (h, w):
                raise EpeflowError(f"{what} {other} is {ow}x{oh} but its frame {path} is {w}x{h}")
    return FrameInfo(h, w, stat.st_size, stat.st_mtime, frame_digest(row))


def _safe_check(row: Mapping[str, Any], gbuffer_key: str, modalities: list[str]) -> FrameInfo | str:
    try:
        return check_frame(row, gbuffer_key, modalities)
    except EpeflowError as e:
        return str(e)


def check_frames(rows: list[dict[str, Any]], gbuffer_key: str, modalities: list[str], threads: int,
                 desc: str = "checking frames") -> Iterator[FrameInfo | str]:
    """Check frames on `threads` threads (decoding releases the GIL); yields, in order, a FrameInfo or the
    reason a frame is bad."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = pool.map(lambda r: _safe_check(r, gbuffer_key, modalities), rows)
        try:
            yield from progress(results, desc=desc, total=len(rows), unit="frame")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

"""Atomic outputs and readers that fail with a message naming the file.

Every output is written to a temporary sibling and renamed at the end, so a killed job never leaves a
half-written file behind that a later run would trust. Work that should survive a kill (per-frame
labels, training checkpoints) goes to a `.partial` sibling that Snakemake does not know about and
therefore does not delete before a rerun.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import struct
import uuid
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from epeflow.errors import EpeflowError

PathLike = str | os.PathLike[str]
_META_KEY = b"epeflow"


log = logging.getLogger(__name__)
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}$")


def real_path(path: PathLike) -> str:
    """`path` with every temporary component of `atomic_path` (`.name.tmp-<pid>-<hex>`) replaced by the
    output it becomes, so messages name the file the user asked for, not a hidden temporary."""
    parts = [m["name"] if (m := _TMP_NAME.match(part)) else part for part in Path(path).parts]
    return str(Path(*parts)) if parts else str(path)


# Errors of the machine rather than of the code: the message names the output and what to do, no traceback.
_SYSTEM_ERRORS = {
    errno.ENOSPC: "free disk space (or point the output at a bigger disk) and rerun",
    errno.EDQUOT: "free space within your disk quota and rerun",
    errno.EFBIG: "the file is larger than this system allows (ulimit -f); raise the limit and rerun",
    errno.EACCES: "make the folder writable (or readable) for you and rerun",
    errno.EPERM: "make the folder writable for you and rerun",
    errno.EROFS: "the disk is mounted read-only: write the outputs elsewhere and rerun",
}


def system_error_message(error: OSError) -> str | None:
    """One line for a disk-full / permission / read-only error, naming the real path; None for other errors."""
    hint = _SYSTEM_ERRORS.get(error.errno) if error.errno is not None else None
    if hint is None:
        return None
    reason = error.strerror or str(error)
    where = real_path(error.filename) if error.filename else "an output"
    verb = "cannot access" if error.errno in (errno.EACCES, errno.EPERM) else "cannot write"
    return f"{verb} {where}: {reason} ({errno.errorcode.get(error.errno, error.errno)}); {hint}"


def _tmp_sibling(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (this process counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process
        return True
    return True


def remove_stale_temporaries(folder: PathLike, name: str | None = None) -> int:
    """Delete the temporaries `atomic_path` made in `folder` (for the output `name` only, when given) whose
    writing process is gone: what a killed writer leaves behind. Returns how many were removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for entry in folder.iterdir():
        match = _TMP_NAME.match(entry.name)
        if match and (name is None or match["name"] == name) and not process_alive(int(match["pid"])):
            _remove(entry)
            removed += 1
    if removed:
        log.warning("removed %d temporary file(s) left in %s by a killed writer", removed, folder)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(final: PathLike, sweep: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `final`; on success rename it to `final` (file or directory).

    `sweep`: first delete the temporaries of `final` that killed writers left (worth a folder listing for
    large outputs such as zarr stores; not for one of many small files in a folder).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if sweep:
        remove_stale_temporaries(final.parent, final.name)
    tmp = _tmp_sibling(final)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written to {tmp} for {final}")
        if final.exists():
            _remove(final)
        os.replace(tmp, final)
    except OSError as e:
        _remove(tmp)
        if e.errno in _SYSTEM_ERRORS and not e.filename:  # e.g. a full disk under PIL or zarr: name the output
            raise OSError(e.errno, e.strerror or str(e), str(final)) from e
        raise
    except BaseException:
        _remove(tmp)
        raise


def partial_dir(final: PathLike) -> Path:
    """Where resumable work for `final` accumulates (kept across killed runs)."""
    final = Path(final)
    path = final.with_name(final.name + ".partial")
    path.mkdir(parents=True, exist_ok=True)
    return path


def link_or_copy(src: PathLike, dst: PathLike) -> None:
    """`dst` as a hard link of `src` (merging shard folders costs no copy), a copy across file systems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def finalize_dir(partial: PathLike, final: PathLike) -> None:
    """Move a finished `.partial` directory into place."""
    partial, final = Path(partial), Path(final)
    if final.exists():
        _remove(final)
    os.replace(partial, final)


def write_json(path: PathLike, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def read_json(path: PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise EpeflowError(f"{path} does not exist; run the stage that writes it first") from None
    except json.JSONDecodeError as e:
        raise EpeflowError(f"{path} is not valid JSON ({e}); delete it and rerun its stage") from e


def write_table(path: PathLike, df: pd.DataFrame, meta: Mapping[str, Any] | None = None) -> None:
    """Write a parquet table atomically, with a JSON dict of metadata (provenance, settings)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[_META_KEY] = json.dumps(dict(meta or {}), default=_json_default).encode()
    table = table.replace_schema_metadata(schema_meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_table(path: PathLike, columns: list[str] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a parquet table written by `write_table`; returns (frame, metadata)."""
    path = Path(path)
    if not path.exists():
        raise EpeflowError(f"{path} does not exist; run the stage that writes it first")
    try:
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as e:
        raise EpeflowError(f"{path} is not a readable parquet file ({e}); delete it and rerun its stage") from e
    raw = (table.schema.metadata or {}).get(_META_KEY)
    meta = json.loads(raw) if raw else {}
    return table.to_pandas(), meta


def _read_schema(path: PathLike) -> pa.Schema:
    path = Path(path)
    if not path.exists():
        raise EpeflowError(f"{path} does not exist; run the stage that writes it first")
    try:
        return pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise EpeflowError(f"{path} is not a readable parquet file ({e}); delete it and rerun its stage") from e


def read_table_meta(path: PathLike) -> dict[str, Any]:
    raw = (_read_schema(path).metadata or {}).get(_META_KEY)
    return json.loads(raw) if raw else {}


def table_columns(path: PathLike) -> list[str]:
    """Column names of a parquet table, read from its footer only."""
    return list(_read_schema(path).names)


def load_torch_file(path: PathLike, what: str, missing: str, unreadable: str) -> Any:
    """`torch.load` (weights_only, CPU) of one of our files; errors name `what` and the file and say what to do."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise EpeflowError(f"{what} {path} does not exist; {missing}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for foreign or truncated files
        raise EpeflowError(f"{what} {path} {_torch_file_state(path)}: not a readable torch checkpoint "
                           f"({type(e).__name__}: {e}); {unreadable}") from e


def _torch_file_state(path: Path) -> str:
    """What is wrong with a file torch cannot load, as far as its bytes tell: empty, cut short, or foreign."""
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes: its writer was stopped before writing anything)"
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":  # torch.save's zip container without its end: a copy or write cut short
        return f"is truncated ({size} bytes, the end of the archive is missing)"
    return "cannot be read"


# Pillow's integer grey modes whose samples are 16 bits wide: `convert("RGB")` would clip them at 255
# (a near-white frame), so they are scaled to 8 bits here instead.
_WIDE_GREY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def read_image(path: PathLike) -> np.ndarray:
    """Decode an image fully as uint8 RGB (H, W, 3); corrupt or truncated files are an error naming them.

    The one reader of frames: 16-bit images (grey or RGB) keep their look (the high byte of each sample),
    floating-point or wider-than-16-bit images are refused rather than clipped.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in _WIDE_GREY_MODES:
                return _wide_grey_to_rgb(np.asarray(im), path)
            if im.mode == "F":
                raise EpeflowError(f"image {path} holds floating-point samples; save frames as 8- or 16-bit "
                                   "PNG or as JPEG")
            rgb = im.convert("RGB")
    except FileNotFoundError:
        raise EpeflowError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise EpeflowError(f"image {path} is corrupt or truncated ({e}); replace it or set on_bad_frame: skip") from e
    return np.asarray(rgb, dtype=np.uint8)


def _wide_grey_to_rgb(grey: np.ndarray, path: Path) -> np.ndarray:
    if grey.min(initial=0) < 0 or grey.max(initial=0) > 65535:
        raise EpeflowError(f"image {path} holds samples outside 0..65535 (a 32-bit image); save frames as 8- or "
                           "16-bit PNG or as JPEG")
    eight = (grey.astype(np.uint32) >> 8).astype(np.uint8)  # (H, W), same scaling Pillow uses for 16-bit RGB
    return np.repeat(eight[:, :, None], 3, axis=2)


def read_label(path: PathLike) -> np.ndarray:
    """Decode a single-channel label PNG as uint8 (H, W)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P", "I", "I;16"):
                raise EpeflowError(f"label map {path} has mode {im.mode}; expected a single-channel PNG of class ids")
            arr = np.asarray(im)
    except FileNotFoundError:
        raise EpeflowError(f"label map {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise EpeflowError(f"label map {path} is corrupt or truncated ({e})") from e
    if arr.max(initial=0) > 255:
        raise EpeflowError(f"label map {path} has ids above 255; expected uint8 ids")
    return arr.astype(np.uint8)


def write_png(path: PathLike, array: np.ndarray) -> None:
    """Write a uint8 or uint16 (H, W) or (H, W, 3) array as an 8- or 16-bit PNG, atomically."""
    array = np.ascontiguousarray(array)
    rgb_or_grey = array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)
    if array.dtype not in (np.uint8, np.uint16) or not rgb_or_grey:
        raise ValueError(f"write_png expects uint8 or uint16 (H, W) or (H, W, 3), got {array.dtype} {array.shape}")
    path = Path(path)
    with atomic_path(path) as tmp:
        if array.dtype == np.uint8:
            Image.fromarray(array).save(tmp, format="PNG")
        else:
            tmp.write_bytes(_png16(array))


def _png16(array: np.ndarray) -> bytes:
    """16-bit grey or RGB PNG bytes (Pillow writes 16 bits only for grey), rows with the `sub` filter."""
    h, w = array.shape[:2]
    channels = 1 if array.ndim == 2 else 3
    raw = array.astype(">u2").view(np.uint8).reshape(h, w * channels * 2)  # big-endian samples
    step = channels * 2  # bytes per pixel
    sub = raw.copy()
    sub[:, step:] = raw[:, step:] - raw[:, :-step]  # uint8 arithmetic wraps, as the filter wants
    rows = np.concatenate([np.ones((h, 1), np.uint8), sub], axis=1)  # filter type 1 before each row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, 0 if channels == 1 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


def safe_id(text: str) -> str:
    """A frame id usable as a file name: relative path without extension, separators replaced."""
    stem = text.rsplit(".", 1)[0] if "." in Path(text).name else text
    return stem.replace("\\", "/").strip("/").replace("/", "__")

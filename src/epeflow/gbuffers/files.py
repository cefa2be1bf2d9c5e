"""Readers of per-frame G-buffer files exported from a game or renderer.

Supported layouts (the manifest's `gbuffer_path` names one of them per frame):
- `.npz` with an (H, W, C) or (H, W) array under `gbuffer_key`, optionally a `names` array of C strings;
- `.npy` with an (H, W, C) or (H, W) array;
- an image file (`.png`, 8 or 16 bit, 1-4 channels), values scaled to [0, 1];
- `.exr` (needs the `OpenEXR` package), channel names from the file;
- a folder of `.png` / `.exr` files, one per buffer (e.g. `depth.png`, `normal.png`), concatenated in file
  name order; a buffer's channels are named after its file (`depth`, `normal_r`, `normal_g`, ...).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from epeflow.errors import EpeflowError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
_RGBA = "rgba"


def read_gbuffer_file(path: Path, key: str = "data") -> tuple[np.ndarray, list[str] | None]:
    """Decode one frame's G-buffers as (H, W, C) float32 and the channel names the file carries (or None)."""
    path = Path(path)
    if path.is_dir():
        return _read_folder(path)
    if not path.is_file():
        raise EpeflowError(f"G-buffer file {path} does not exist; check `gbuffer_dir` or the file list")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path, key)
    if suffix == ".npy":
        return _as_hwc(_load_npy(path), path), None
    if suffix in IMAGE_SUFFIXES:
        return _read_image(path), None
    if suffix == ".exr":
        return _read_exr(path)
    raise EpeflowError(
        f"G-buffer file {path}: unsupported type {suffix!r}; use .npz, .npy, .png, .exr or a folder of them"
    )


def _as_hwc(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise EpeflowError(f"G-buffer file {path} holds an array of shape {array.shape}; expected (H, W, C)")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise EpeflowError(f"G-buffer file {path} holds {array.dtype} values; expected numbers")
    return array.astype(np.float32, copy=False)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise EpeflowError(f"G-buffer file {path} cannot be read ({e}); export it again") from e


def _read_npz(path: Path, key: str) -> tuple[np.ndarray, list[str] | None]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if key not in data.files:
                raise EpeflowError(
                    f"G-buffer file {path} has no array {key!r} (it has: {', '.join(data.files)}); "
                    "set config key `gbuffer_key` to the right one"
                )
            array = _as_hwc(data[key], path)
            names = [str(n) for n in data["names"].tolist()] if "names" in data.files else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise EpeflowError(f"G-buffer file {path} cannot be read ({e}); export it again") from e
    if names is not None and len(names) != array.shape[2]:
        raise EpeflowError(f"G-buffer file {path} names {len(names)} channels but holds {array.shape[2]}")
    return array, names


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            array = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise EpeflowError(f"G-buffer file {path} is corrupt or truncated ({e}); export it again") from e
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    scale = float(np.iinfo(array.dtype).max) if np.issubdtype(array.dtype, np.integer) else 1.0
    if array.dtype == np.int32:  # PIL's 16-bit grayscale mode "I"
        scale = 65535.0
    return _as_hwc(array, path) / np.float32(scale)


def _read_exr(path: Path) -> tuple[np.ndarray, list[str]]:
    try:
        import OpenEXR
    except ImportError:
        raise EpeflowError(
            f"G-buffer file {path} is OpenEXR, which needs the `OpenEXR` package: pip install OpenEXR"
        ) from None
    try:
        with OpenEXR.File(str(path), separate_channels=True) as f:
            channels = f.channels()
            names = list(channels)
            planes = [np.asarray(channels[n].pixels, dtype=np.float32) for n in names]
    except Exception as e:  # the bindings raise plain RuntimeError / OSError for bad files
        raise EpeflowError(f"G-buffer file {path} cannot be read as OpenEXR ({e}); export it again") from e
    return np.stack(planes, axis=2), names


def _read_folder(path: Path) -> tuple[np.ndarray, list[str]]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (*IMAGE_SUFFIXES, ".exr"))
    if not files:
        raise EpeflowError(f"G-buffer folder {path} holds no .png or .exr files")
    arrays: list[np.ndarray] = []
    names: list[str] = []
    for f in files:
        if f.suffix.lower() == ".exr":
            array, exr_names = _read_exr(f)
            names += [f"{f.stem}.{n}" for n in exr_names]
        else:
            array = _read_image(f)
            c = array.shape[2]
            names += [f.stem] if c == 1 else [f"{f.stem}_{_RGBA[i]}" for i in range(c)]
        if arrays and array.shape[:2] != arrays[0].shape[:2]:
            raise EpeflowError(
                f"G-buffer file {f} is {array.shape[0]}x{array.shape[1]}, but {files[0]} is "
                f"{arrays[0].shape[0]}x{arrays[0].shape[1]}; all buffers of a frame must have one size"
            )
        arrays.append(array)
    return np.concatenate(arrays, axis=2), names

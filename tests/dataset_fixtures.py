"""Tiny dataset files for the datasets / labels tests: images, label maps and G-buffers on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_rgb(path: Path, height: int = 12, width: int = 16, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def write_label(path: Path, height: int = 12, width: int = 16, values: tuple[int, ...] = (7, 23)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    label = np.zeros((height, width), np.uint8)
    for i, v in enumerate(values):
        label[i * height // len(values):] = v
    Image.fromarray(label).save(path)
    return path


def write_gbuffer(path: Path, height: int = 12, width: int = 16, channels: int = 4, key: str = "data") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{key: np.ones((height, width, channels), np.float16)})
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file short, as an interrupted copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


DEMO_SPEC = {"demo": {"frames": 6, "height": 32, "width": 48, "seed": 0, "sequences": 3}}

"""Tiny generated datasets for the G-buffer tests: frames as PNGs, G-buffers as .npz, a manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from epeflow import io

NAMES = ["albedo_r", "albedo_g", "albedo_b", "depth", "normal_x", "normal_y", "normal_z", "shadow", "emission"]


def write_dataset(
    root: Path,
    sizes: list[tuple[int, int]],
    channels: int = len(NAMES),
    names: list[str] | None = NAMES,
    seed: int = 0,
) -> tuple[Path, list[np.ndarray]]:
    """Frames of the given sizes with (H, W, C) G-buffers; returns (manifest path, G-buffer arrays)."""
    rng = np.random.default_rng(seed)
    rows, arrays = [], []
    for i, (h, w) in enumerate(sizes):
        image = root / "images" / f"f{i:03d}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        io.write_png(image, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        gb = (rng.standard_normal((h, w, channels)) * (1 + np.arange(channels)) + np.arange(channels)).astype(
            np.float32
        )
        gpath = root / "gbuffers" / f"f{i:03d}.npz"
        gpath.parent.mkdir(parents=True, exist_ok=True)
        extra = {"names": np.array(names)} if names is not None else {}
        np.savez_compressed(gpath, data=gb, **extra)
        arrays.append(gb)
        rows.append(_row(i, image, h, w, gpath))
    manifest = root / "manifest.parquet"
    io.write_table(manifest, pd.DataFrame(rows), {"dataset": "tiny", "role": "synthetic", "kind": "images"})
    return manifest, arrays


def _row(i: int, image: Path, h: int, w: int, gpath: Path | None) -> dict:
    return {
        "frame": i, "id": f"f{i:03d}", "path": str(image), "height": h, "width": w, "sequence": "",
        "frame_index": i, "split": "train", "robust_label_path": None,
        "gbuffer_path": None if gpath is None else str(gpath), "gt_label_path": None,
        "size": image.stat().st_size, "mtime": image.stat().st_mtime,
    }

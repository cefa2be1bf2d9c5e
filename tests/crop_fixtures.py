"""Tiny generated datasets for the crop and matching tests: PNG frames + a manifest per the contract."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from epeflow.io import safe_id, write_png, write_table


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random but spatially smooth RGB image (uint8), so crops at different places differ."""
    coarse = rng.random((max(2, height // 8), max(2, width // 8), 3))
    rows = np.linspace(0, coarse.shape[0] - 1, height).round().astype(int)
    cols = np.linspace(0, coarse.shape[1] - 1, width).round().astype(int)
    noise = rng.random((height, width, 3)) * 0.2
    return (np.clip(coarse[rows][:, cols] * 0.8 + noise, 0, 1) * 255).astype(np.uint8)


def make_dataset(
    root: Path,
    name: str,
    sizes: Sequence[tuple[int, int]],
    seed: int = 0,
    role: str = "synthetic",
) -> Path:
    """Write one PNG per entry of `sizes` ((height, width)) and results-style manifest.parquet; returns it."""
    rng = np.random.default_rng(seed)
    images = root / name / "images"
    rows = []
    for i, (h, w) in enumerate(sizes):
        rel = f"seq{i % 2}/frame_{i:03d}.png"
        path = images / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_png(path, smooth_image(rng, h, w))
        rows.append(
            {
                "frame": i,
                "id": safe_id(rel),
                "path": str(path),
                "height": h,
                "width": w,
                "sequence": f"seq{i % 2}",
                "frame_index": i // 2,
                "split": "train",
                "robust_label_path": None,
                "gbuffer_path": None,
                "gt_label_path": None,
                "size": path.stat().st_size,
                "mtime": path.stat().st_mtime,
            }
        )
    df = pd.DataFrame(rows).astype({"frame": "int64", "height": "int64", "width": "int64", "frame_index": "int64"})
    manifest = root / name / "manifest.parquet"
    write_table(manifest, df, {"dataset": name, "role": role, "kind": "images"})
    return manifest


def crop_attrs(**overrides) -> dict:
    """Attributes of a crop store as `epeflow crops` writes them (tiny settings)."""
    attrs = {
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "crop_size": 8,
        "per_image": 3,
        "seed": 0,
        "padding": "zero",
        "feature": "vgg16_relu5_3",
        "random_weights": True,
        "num_frames": 4,
        "chunk_size": 5,
    }
    attrs.update(overrides)
    return attrs


def make_crop_store(
    path: Path, frame: np.ndarray, box: np.ndarray, features: np.ndarray, chunk_rows: int = 5, **attrs
) -> Path:
    """A complete crops.zarr with the given arrays (written the way `epeflow crops` writes them)."""
    from epeflow.artifacts.crops import create_crop_store, mark_complete

    group, writer = create_crop_store(path, len(frame), chunk_rows, crop_attrs(**attrs), dim=features.shape[1])
    writer.append(
        frame=np.asarray(frame, np.int32), box=np.asarray(box, np.int32), features=features.astype(np.float16)
    )
    mark_complete(group, writer)
    return path


def random_crop_store(
    path: Path,
    frames: int,
    per_image: int,
    size: tuple[int, int],
    seed: int,
    dim: int = 512,
    chunk_rows: int = 5,
    **attrs,
) -> Path:
    """A crop store of random boxes inside (height, width) frames and random non-negative features."""
    rng = np.random.default_rng(seed)
    frame = np.repeat(np.arange(frames), per_image)
    crop = attrs.pop("crop_size", 8)
    r0 = rng.integers(0, size[0] - crop + 1, len(frame))
    c0 = rng.integers(0, size[1] - crop + 1, len(frame))
    box = np.stack([r0, r0 + crop, c0, c0 + crop], axis=1)
    features = np.abs(rng.standard_normal((len(frame), dim)))
    return make_crop_store(
        path, frame, box, features, chunk_rows, crop_size=crop, per_image=per_image, num_frames=frames, **attrs
    )


def make_crop_store_pair(root: Path) -> dict[str, tuple[Path, Path]]:
    """Two tiny datasets ("syn", "real": 3 frames of 40x48) with 4 crops of 16 px a frame: (manifest, crops)."""
    out = {}
    for name, seed in (("syn", 1), ("real", 2)):
        manifest = make_dataset(root, name, [(40, 48)] * 3, seed=seed)
        rng = np.random.default_rng(seed)
        frame = np.repeat(np.arange(3), 4)
        r0, c0 = rng.integers(0, 25, 12), rng.integers(0, 33, 12)
        box = np.stack([r0, r0 + 16, c0, c0 + 16], axis=1)
        crops = make_crop_store(
            root / f"{name}.zarr", frame, box, np.abs(rng.standard_normal((12, 512))), crop_size=16, num_frames=3
        )
        out[name] = (manifest, crops)
    return out

"""Tiny generated experiments for the evaluate and report tests: manifests, frames and an enhanced folder.

Frames are smooth random scenes in one of two looks; an "enhanced" frame is its source scene rendered in
the real look, so a working metric sees enhanced frames closer to the real ones than their sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from epeflow.common.taxonomy import universal_id
from epeflow.io import safe_id, write_json, write_png, write_table
from epeflow.provenance import stamp

SIZE = (48, 64)
_LOOKS = {"synthetic": (np.array([0.45, 0.55, 1.0]), 0.0), "real": (np.array([1.0, 0.8, 0.5]), 0.25)}


def scene(seed: int, look: str, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A smooth random scene (content from `seed`) with a colour cast and grain that depend on `look`."""
    h, w = size
    rng = np.random.default_rng(seed)
    coarse = rng.random((max(2, h // 8), max(2, w // 8), 1)) * 0.7 + rng.random(3) * 0.3
    rows = np.linspace(0, coarse.shape[0] - 1, h).round().astype(int)
    cols = np.linspace(0, coarse.shape[1] - 1, w).round().astype(int)
    tint, grain = _LOOKS[look]
    image = coarse[rows][:, cols] * tint + np.random.default_rng(seed + 10_000).normal(0, grain, (h, w, 3))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_manifest(root: Path, name: str, images: list[np.ndarray], splits: list[str], role: str) -> Path:
    """PNG frames plus manifest.parquet per the contract; returns the manifest path."""
    rows = []
    for i, (image, split) in enumerate(zip(images, splits, strict=True)):
        rel = f"seq/frame_{i:03d}.png"
        path = root / name / "images" / rel
        write_png(path, image)
        rows.append({
            "frame": i, "id": safe_id(rel), "path": str(path), "height": image.shape[0], "width": image.shape[1],
            "sequence": "seq", "frame_index": i, "split": split, "robust_label_path": None, "gbuffer_path": None,
            "gt_label_path": None, "size": path.stat().st_size, "mtime": path.stat().st_mtime,
        })
    df = pd.DataFrame(rows).astype({"frame": "int64", "height": "int64", "width": "int64", "frame_index": "int64"})
    manifest = root / name / "manifest.parquet"
    write_table(manifest, df, {"dataset": name, "role": role, "kind": "images"})
    return manifest


def write_enhanced(out: Path, manifest: Path, images: dict[int, np.ndarray], random: bool) -> Path:
    """An enhanced folder for the given source frames: <id>.png + index.parquet (meta with provenance)."""
    src = pd.read_parquet(manifest)
    rows = []
    for frame, image in images.items():
        entry = src.iloc[frame]
        path = out / f"{entry['id']}.png"
        write_png(path, image)
        rows.append({"frame": frame, "id": entry["id"], "source_path": entry["path"], "enhanced_path": str(path),
                     "height": image.shape[0], "width": image.shape[1]})
    columns = ["frame", "id", "source_path", "enhanced_path", "height", "width"]
    write_table(out / "index.parquet", pd.DataFrame(rows, columns=columns), {"provenance": stamp(random)})
    return out


def street_labels(seed: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A universal-id label map: sky above a horizon row that depends on `seed`, road below, a car box."""
    h, w = size
    rng = np.random.default_rng(seed + 20_000)
    labels = np.full((h, w), universal_id("road"), dtype=np.uint8)
    labels[: int(h * (0.3 + 0.3 * rng.random()))] = universal_id("sky")
    top, left = int(h * 0.55), int(rng.integers(0, w // 2))
    labels[top : top + h // 5, left : left + w // 4] = universal_id("car")
    return labels


def write_label_folder(folder: Path, manifest: Path, seed_offset: int, random: bool = False) -> Path:
    """A finished labels folder for every frame of a manifest: <id>.png (street_labels) + labels.json."""
    frames = pd.read_parquet(manifest)
    for i, (frame_id, h, w) in enumerate(zip(frames["id"], frames["height"], frames["width"], strict=True)):
        write_png(folder / f"{frame_id}.png", street_labels(seed_offset + i, (int(h), int(w))))
    write_json(folder / "labels.json", {"method": "test", "num_frames": len(frames), "num_classes": 194,
                                        "ignore_id": 255, **stamp(random)})
    return folder


@dataclass
class Experiment:
    src_manifest: Path
    dst_manifest: Path
    enhanced: Path
    src_labels: Path
    dst_labels: Path

    @property
    def labels(self) -> tuple[Path, Path]:
        return self.src_labels, self.dst_labels


def make_experiment(
    root: Path, n_src: int = 8, n_real: int = 12, test: tuple[int, ...] = (1, 3, 5, 7), random: bool = True,
    identity: bool = False,
) -> Experiment:
    """Source frames (synthetic look), real frames (real look, half in `val`), and the test frames enhanced.

    `identity`: enhanced frames are copies of their source frames (an enhancer that does nothing).
    """
    sources = [scene(i, "synthetic") for i in range(n_src)]
    src = write_manifest(root, "synth", sources, ["test" if i in test else "train" for i in range(n_src)],
                         "synthetic")
    dst = write_manifest(root, "real", [scene(100 + j, "real") for j in range(n_real)],
                         ["val" if j % 2 else "train" for j in range(n_real)], "real")
    enhanced = {i: sources[i] if identity else scene(i, "real") for i in test}
    return Experiment(src, dst, write_enhanced(root / "exp" / "enhanced", src, enhanced, random),
                      write_label_folder(root / "synth" / "labels", src, 0),
                      write_label_folder(root / "real" / "labels", dst, 100))

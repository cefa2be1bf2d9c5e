"""A tiny experiment on disk for the train / enhance tests, in the contract layouts of the earlier stages.

Source frames (PNG) with Cityscapes-id GT labels and real G-buffer files (imported into gbuffers.zarr
through `epeflow.gbuffers.run_gbuffers`), robust label folders with labels.json, a target dataset, and
matched pairs with sampling weights.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from crop_fixtures import make_crop_store

from epeflow.common.lpips import LPIPS_CHANNELS, lin_key
from epeflow.common.vgg16 import VGG16
from epeflow.io import write_json, write_png, write_table
from epeflow.provenance import stamp
from epeflow.train import TrainInputs

CITYSCAPES_IDS = np.array([0, 1, 7, 8, 11, 17, 20, 21, 22, 23, 24, 26], dtype=np.uint8)
TINY_TRAIN = {
    "iterations": 4, "batch_size": 2, "generator_width": 0.125, "generator_stages": 2, "gbuffer_layers": 1,
    "discriminator_width": 0.125, "discriminator_max_dim": 64, "discriminator_num_layers": 2,
    "checkpoint_every": 2, "log_every": 1, "num_workers": 0, "keep_checkpoints": 2,
}


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from intra-op threads, and spinning threads slow down a busy 2-core runner."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def random_batches(seed: int = 0, b: int = 2, size: int = 24, channels: int = 3) -> Iterator[dict]:
    """Endless training batches of random tensors, as the loader gives them (for loop-level tests)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        yield {
            "image": torch.rand(b, 3, size, size, generator=g),
            "gbuffers": torch.randn(b, channels, size, size, generator=g),
            "materials": torch.nn.functional.one_hot(torch.randint(0, 12, (b, size, size), generator=g), 12)
            .permute(0, 3, 1, 2).float(),
            "labels": torch.randint(0, 256, (b, size, size), generator=g),
            "real": torch.rand(b, 3, size, size, generator=g),
            "real_labels": torch.randint(0, 256, (b, size, size), generator=g),
        }


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float) -> list[str]:
    """Read `proc`'s stderr up to a line containing `text` (a running training's progress); the lines read."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    proc.kill()
    raise AssertionError(f"no line with {text!r} within {timeout} s:\n{''.join(lines)}")


@dataclass(frozen=True)
class Experiment:
    root: Path
    src_manifest: Path
    dst_manifest: Path
    src_labels: Path
    dst_labels: Path
    gbuffers: Path
    matches: Path
    pair_weights: Path
    src_crops: Path
    dst_crops: Path

    def train_args(self, out: Path | None = None, checkpoints: Path | None = None) -> dict:
        inputs = TrainInputs(
            src_manifest=self.src_manifest, dst_manifest=self.dst_manifest, src_labels=self.src_labels,
            dst_labels=self.dst_labels, gbuffers=self.gbuffers, matches=self.matches, pair_weights=self.pair_weights,
            src_crops=self.src_crops, dst_crops=self.dst_crops,
        )
        return dict(inputs=inputs, checkpoints=checkpoints or self.root / "checkpoints",
                    out=out or self.root / "model.pt")


def _blobby(rng: np.random.Generator, h: int, w: int, values: np.ndarray) -> np.ndarray:
    """A label-like map: random values on a coarse grid, blown up to (h, w) blocks."""
    coarse = rng.choice(values, size=(h // 8 + 1, w // 8 + 1))
    return np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)[:h, :w]


def _dataset(root: Path, name: str, n: int, size: tuple[int, int], seed: int, synthetic: bool,
             channels: int, splits: list[str], random_labels: bool) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    h, w = size
    labels = root / name / "labels"
    labels.mkdir(parents=True)
    rows = []
    for i in range(n):
        fid = f"seq__frame_{i:03d}"
        image = root / name / "images" / f"frame_{i:03d}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        write_png(image, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        write_png(labels / f"{fid}.png", _blobby(rng, h, w, np.array([0, 13, 98, 142, 191, 255], np.uint8)))
        gt = gbuf = None
        if synthetic:
            gt = root / name / "gt" / f"frame_{i:03d}.png"
            gt.parent.mkdir(parents=True, exist_ok=True)
            write_png(gt, _blobby(rng, h, w, CITYSCAPES_IDS))
            gbuf = root / name / "gbuffers" / f"frame_{i:03d}.npz"
            gbuf.parent.mkdir(parents=True, exist_ok=True)
            np.savez(gbuf, data=rng.standard_normal((h, w, channels)).astype(np.float32) * 2 + 1)
        rows.append({
            "frame": i, "id": fid, "path": str(image), "height": h, "width": w, "sequence": "seq",
            "frame_index": i, "split": splits[i % len(splits)], "robust_label_path": None,
            "gbuffer_path": None if gbuf is None else str(gbuf), "gt_label_path": None if gt is None else str(gt),
            "size": image.stat().st_size, "mtime": image.stat().st_mtime,
        })
    write_json(labels / "labels.json", {"method": "given", "num_frames": n, **stamp(random_labels)})
    manifest = root / name / "manifest.parquet"
    write_table(manifest, pd.DataFrame(rows), {"dataset": name, "role": "synthetic" if synthetic else "real",
                                               "kind": "images"})
    return manifest, labels


def _boxes(rng: np.random.Generator, m: int, size: tuple[int, int], crop: int) -> np.ndarray:
    r0 = rng.integers(0, size[0] - crop + 1, m)
    c0 = rng.integers(0, size[1] - crop + 1, m)
    return np.stack([r0, r0 + crop, c0, c0 + crop], axis=1).astype(np.int32)


def make_experiment(
    root: Path, *, frames: int = 4, size: tuple[int, int] = (40, 56), crop: int = 24, channels: int = 3,
    pairs: int = 12, seed: int = 0, random_labels: bool = False, random_matches: bool = False,
) -> Experiment:
    from epeflow.gbuffers import run_gbuffers

    rng = np.random.default_rng(seed)
    src_manifest, src_labels = _dataset(root, "synth", frames, size, seed + 1, True, channels,
                                        ["train", "test"], random_labels)
    dst_manifest, dst_labels = _dataset(root, "real", frames, size, seed + 2, False, channels, ["train"], False)
    gbuffers = root / "synth" / "gbuffers.zarr"
    run_gbuffers(src_manifest, gbuffers, {"role": "synthetic", "gbuffers": "real"})

    src_box, dst_box = _boxes(rng, pairs, size, crop), _boxes(rng, pairs, size, crop)
    src_frame, dst_frame = rng.integers(0, frames, pairs), rng.integers(0, frames, pairs)
    # one crop a pair in each store (features unused by training: 8 zeros a crop)
    crop_stores = [
        make_crop_store(root / f"{name}_crops.zarr", frame, box, np.zeros((pairs, 8)), crop_size=crop,
                        num_frames=frames)
        for name, frame, box in (("synth", src_frame, src_box), ("real", dst_frame, dst_box))
    ]
    matches = pd.DataFrame({
        "src_crop": np.arange(pairs, dtype=np.int64), "dst_crop": np.arange(pairs, dtype=np.int64),
        "dist": rng.random(pairs).astype(np.float32),
    })
    matches_path = root / "matching" / "matches.parquet"
    write_table(matches_path, matches, {"max_dist": 1.0, "num_source_crops": pairs, "num_target_crops": pairs,
                                        **stamp(random_matches)})
    weights_path = root / "matching" / "weights.parquet"
    write_table(weights_path, pd.DataFrame({"weight": rng.random(pairs) + 0.1}), {"provenance": stamp(random_matches)})
    return Experiment(root, src_manifest, dst_manifest, src_labels, dst_labels, gbuffers, matches_path,
                      weights_path, *crop_stores)


def pretrained_weight_files(folder: Path) -> dict:
    """Weight files in the official layouts (random values), so stages believe they have real weights."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    vgg = {f"features.{k}": v.half() for k, v in VGG16().features.state_dict().items()}
    torch.save(vgg, folder / "vgg16.pth")
    lins = {lin_key(i): torch.rand(1, c, 1, 1) / c for i, c in enumerate(LPIPS_CHANNELS)}
    torch.save(lins, folder / "lpips.pth")
    return {"vgg16": {"path": str(folder / "vgg16.pth")}, "lpips": {"path": str(folder / "lpips.pth")}}

"""The embedded demo datasets: procedural street sequences in a "rendered" or a "photographed" look.

`epeflow demo OUT_DIR --spec JSON` writes, for the dataset entry in the spec (its `role` picks the look):
  images/<name>.png     uint8 RGB frames, names `s<seq>_f<index>` (sequence and position recoverable)
  gt_labels/<name>.png  uint8 Cityscapes ids
  gbuffers/<name>.npz   (synthetic only) key `data` (H, W, C) float16, key `names` the channel names
  demo.json             what was generated; preview.png a contact sheet
Everything is a deterministic function of the spec, byte for byte, so a rerun reproduces the data.
"""

from __future__ import annotations

import io as _io
import json
import logging
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from epeflow import io
from epeflow.common.taxonomy import colorize, universal_from_cityscapes
from epeflow.config import validate_dataset
from epeflow.demo.looks import (
    CHANNEL_GROUPS,
    GBUFFER_NAMES,
    NoiseTexture,
    gbuffers,
    shade_real,
    shade_synthetic,
    to_uint8,
)
from epeflow.demo.preview import contact_sheet
from epeflow.demo.render import render
from epeflow.demo.scene import MAX_SPEED, VIEW_DEPTH, City, camera_path, make_scene
from epeflow.errors import EpeflowError
from epeflow.log import progress

log = logging.getLogger(__name__)

DEMO_FORMAT = "epeflow-demo/1"
GBUFFER_KEY = "data"


def frame_name(sequence: int, index: int) -> str:
    return f"s{sequence:02d}_f{index:04d}"


def sequence_lengths(frames: int, sequences: int) -> list[int]:
    """Frames per sequence, as even as possible (the first ones get the remainder)."""
    if sequences > frames:
        raise EpeflowError(f"demo settings: `demo.sequences` ({sequences}) exceeds `demo.frames` ({frames}); "
                           "every sequence needs at least one frame")
    base, extra = divmod(frames, sequences)
    return [base + (1 if s < extra else 0) for s in range(sequences)]


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """A compressed .npz like np.savez_compressed, but with fixed zip timestamps so bytes are reproducible."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            buf = _io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def _save_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path, format="PNG", compress_level=4)


def render_frames(spec: Mapping[str, Any]):
    """Yield (name, sequence, index, image (H,W,3) uint8, gt (H,W) uint8, gbuffers (H,W,C) f16 | None)."""
    demo, look = spec["demo"], spec["role"]
    h, w, seed = demo["height"], demo["width"], demo["seed"]
    noise = NoiseTexture(seed)
    for s, n in enumerate(sequence_lengths(demo["frames"], demo["sequences"])):
        rng = np.random.default_rng([seed, s])
        scene = make_scene(rng, look, z_start=-10.0, z_end=MAX_SPEED * n + VIEW_DEPTH)
        for i, cam in enumerate(camera_path(rng, scene, n, h, w)):
            surf = render(scene, cam, h, w)
            if look == "synthetic":
                image, gbuf = shade_synthetic(surf), gbuffers(surf)
            else:
                image, gbuf = shade_real(surf, noise, np.random.default_rng([seed, s, i, 1])), None
            yield frame_name(s, i), s, i, to_uint8(image), surf.label, gbuf


def run_demo(out_dir: str | Path, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Generate the demo dataset described by a dataset config entry into `out_dir` (atomically)."""
    spec = validate_dataset(spec, stage="demo")
    if "demo" not in spec:
        raise EpeflowError("demo settings: the dataset spec has no `demo:` block; `epeflow demo` only generates "
                           "demo datasets")
    demo, role = spec["demo"], spec["role"]
    lengths = sequence_lengths(demo["frames"], demo["sequences"])
    synthetic = role == "synthetic"
    names: list[str] = []
    previews: list[np.ndarray] = []
    counts = np.zeros(256, np.int64)
    with io.atomic_path(out_dir) as tmp:
        for sub in ("images", "gt_labels") + (("gbuffers",) if synthetic else ()):
            (tmp / sub).mkdir(parents=True)
        frames = render_frames(spec)
        for name, _, index, image, gt, gbuf in progress(frames, desc=f"demo {role}", total=demo["frames"],
                                                        unit="frame"):
            _save_png(tmp / "images" / f"{name}.png", image)
            _save_png(tmp / "gt_labels" / f"{name}.png", gt)
            if gbuf is not None:
                write_npz(tmp / "gbuffers" / f"{name}.npz", {GBUFFER_KEY: gbuf, "names": np.array(GBUFFER_NAMES)})
            counts += np.bincount(gt.ravel(), minlength=256)
            if index == 0 and len(previews) < 8:
                previews.append(np.concatenate([image, colorize(universal_from_cityscapes(gt))], 0))
            names.append(name)
        info = {
            "format": DEMO_FORMAT,
            "role": role,
            "look": role,
            "seed": demo["seed"],
            "frames": demo["frames"],
            "height": demo["height"],
            "width": demo["width"],
            "sequences": [{"name": f"s{s:02d}", "frames": n} for s, n in enumerate(lengths)],
            "names": names,
            "label_ids": "cityscapes",
            "class_fractions": {int(k): round(float(counts[k] / counts.sum()), 6) for k in np.flatnonzero(counts)},
            "gbuffers": {"key": GBUFFER_KEY, "names": list(GBUFFER_NAMES), "groups": CHANNEL_GROUPS}
            if synthetic else None,
            "classes": {v: k.lower() for k, v in vars(City).items() if k.isupper()},
        }
        (tmp / "demo.json").write_text(json.dumps(info, indent=2) + "\n")
        _save_png(tmp / "preview.png", contact_sheet(previews, columns=min(4, len(previews))))
    log.info("wrote %d %s demo frames to %s", len(names), role, out_dir)
    return info


def read_demo_info(demo_dir: str | Path) -> dict[str, Any]:
    """demo.json of a generated demo folder, with a clear error when it is not one."""
    path = Path(demo_dir) / "demo.json"
    if not path.is_file():
        raise EpeflowError(f"{path} does not exist: {demo_dir} is not a generated demo dataset; "
                           "run `epeflow demo` (the `demo_data` rule) first")
    info = io.read_json(path)
    if info.get("format") != DEMO_FORMAT:
        raise EpeflowError(f"{path} has format {info.get('format')!r}, expected {DEMO_FORMAT!r}; regenerate it")
    return info

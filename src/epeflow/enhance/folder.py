"""`epeflow enhance --images DIR`: a trained model on a folder of frames, outside the pipeline.

Frames are found recursively (.png / .jpg / .jpeg); each frame's companions are matched by its path
relative to the folder, with another suffix:
- G-buffers: `<gbuffers>/<rel>.npz` (array `data`, (H, W, C), optional `names`) or `<rel>.npy` (H, W, C),
  at the frame's size. Channels are picked by the names the model was trained on when the file names its
  channels, else taken in order (their count must match). Not needed for an image-only model.
- materials: `<labels>/<rel>.png`, a label map of Cityscapes ids (what PfD's and Cityscapes' `labelIds`
  files hold, and what a game's semantic stencil converts to), or one material for the whole frame.
Each frame is written as `<out>/<id>.png` (id: the relative path without suffix, `/` replaced by `__`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from epeflow.artifacts.gbuffers import normalize_gbuffers
from epeflow.common.runtime import Runtime
from epeflow.common.taxonomy import MATERIAL_NAMES, NUM_MATERIALS, materials_from_cityscapes, read_cityscapes_label
from epeflow.enhance.engine import Enhancer, EnhanceSettings, FrameInputs, enhance_each, to_png_array
from epeflow.errors import EpeflowError
from epeflow.gbuffers.files import read_gbuffer_file
from epeflow.io import read_image, safe_id, write_png
from epeflow.models.load import load_generator

log = logging.getLogger(__name__)

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
GBUFFER_SUFFIXES = (".npz", ".npy")


def list_frames(images: Path) -> list[Path]:
    """Frames under `images`, relative to it, sorted."""
    if not images.is_dir():
        raise EpeflowError(f"--images {images} is not a folder")
    frames = sorted(p.relative_to(images) for p in images.rglob("*") if p.suffix.lower() in FRAME_SUFFIXES)
    if not frames:
        raise EpeflowError(f"--images {images} holds no {' / '.join(FRAME_SUFFIXES)} frames")
    return frames


def companion(folder: Path, rel: Path, suffixes: tuple[str, ...], what: str) -> Path:
    """`folder/rel` with one of `suffixes`; an error naming what was looked for when there is none."""
    for suffix in suffixes:
        path = folder / rel.with_suffix(suffix)
        if path.is_file():
            return path
    tried = ", ".join(str(folder / rel.with_suffix(s)) for s in suffixes)
    raise EpeflowError(f"no {what} for frame {rel}: looked for {tried}")


def pick_channels(array: np.ndarray, names: list[str] | None, trained: Mapping[str, Any], path: Path) -> np.ndarray:
    """(H, W, C_file) -> (C, H, W) in the order the model was trained on."""
    wanted = list(trained["names"])
    if names is not None:
        missing = [n for n in wanted if n not in names]
        if missing:
            raise EpeflowError(f"G-buffer file {path} lacks channels {missing} the model was trained on ({wanted})")
        array = array[:, :, [names.index(n) for n in wanted]]
    elif array.shape[2] != len(wanted):
        raise EpeflowError(
            f"G-buffer file {path} has {array.shape[2]} unnamed channels, the model reads {len(wanted)} ({wanted}); "
            "save exactly those, in that order, or name them (`names` array in the .npz)"
        )
    return np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)


def enhance_folder(
    model_path: Path, images: Path, out_dir: Path, gbuffers: Path | None = None, labels: Path | None = None,
    material: str | None = None, spec: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Enhance every frame under `images` into `out_dir`; returns the written PNGs."""
    settings = EnhanceSettings.from_spec(spec)
    model_path, images, out_dir = Path(model_path), Path(images), Path(out_dir)
    generator, model = load_generator(model_path)
    image_only = generator.config.gbuffer_mode == "img"
    trained = model.get("gbuffers") or {}
    if not image_only:
        _check_folder_inputs(model_path, trained, gbuffers, labels, material)
    elif gbuffers is not None or labels is not None or material is not None:
        log.warning("%s is an image-only model: --gbuffers / --labels / --material are not used", model_path)
    mean = np.asarray(trained.get("mean", []), dtype=np.float32)
    std = np.asarray(trained.get("std", []), dtype=np.float32)

    runtime = Runtime.detect(bool(model.get("train", {}).get("amp", True)), settings.device)
    enhancer = Enhancer(runtime.prepare(generator), runtime, settings)
    frames = list_frames(images)[: settings.max_frames]
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("enhancing %d frames of %s on %s", len(frames), images, runtime.device)

    def read(rel: Path) -> FrameInputs:
        image = read_image(images / rel)
        if image_only:
            return FrameInputs(image, None, None)
        size = image.shape[:2]
        path = companion(gbuffers, rel, GBUFFER_SUFFIXES, "G-buffer file")
        array, names = read_gbuffer_file(path)
        if array.shape[:2] != size:
            raise EpeflowError(f"G-buffer file {path} is {array.shape[0]}x{array.shape[1]}, but frame {rel} is "
                               f"{size[0]}x{size[1]}; export G-buffers at the frame's resolution")
        g = normalize_gbuffers(pick_channels(array, names, trained, path), mean, std)
        return FrameInputs(image, g, _materials(rel, size, labels, material))

    written: list[Path] = []

    def write(rel: Path, enhanced: np.ndarray) -> None:
        path = out_dir / f"{safe_id(str(rel))}.png"
        write_png(path, to_png_array(enhanced, settings.png_bits))
        written.append(path)

    enhance_each(enhancer, frames, read, write, settings.batch_size)
    log.info("wrote %d enhanced frames to %s", len(written), out_dir)
    return written


def _check_folder_inputs(model_path: Path, trained: Mapping[str, Any], gbuffers: Path | None, labels: Path | None,
                         material: str | None) -> None:
    if trained.get("mode") == "fake":
        raise EpeflowError(
            f"{model_path} was trained on `fake` G-buffers (VGG16 features of the source dataset's frames, "
            "normalised with that dataset's colour statistics), which a folder of frames does not have: enhance "
            "through the pipeline (`epeflow gbuffers`, then `epeflow enhance MODEL MANIFEST GBUFFERS OUT`)"
        )
    if gbuffers is None:
        raise EpeflowError(
            f"{model_path} reads {len(trained['names'])} G-buffer channels ({', '.join(trained['names'])}): pass "
            "--gbuffers DIR with one .npz / .npy file per frame"
        )
    if not gbuffers.is_dir():
        raise EpeflowError(f"--gbuffers {gbuffers} is not a folder")
    if (labels is None) == (material is None):
        raise EpeflowError(
            f"{model_path} needs material maps: pass either --labels DIR (Cityscapes-id label PNGs named like the "
            f"frames) or --material NAME (one of {', '.join(MATERIAL_NAMES)}) for the whole frame, not both"
        )
    if material is not None and material not in MATERIAL_NAMES:
        raise EpeflowError(f"--material {material!r} is not one of {', '.join(MATERIAL_NAMES)}")


def _materials(rel: Path, size: tuple[int, int], labels: Path | None, material: str | None) -> np.ndarray:
    """(12, H, W) one-hot materials from the frame's label map, or one material everywhere."""
    if labels is None:
        one = np.zeros((NUM_MATERIALS, *size), np.float32)
        one[MATERIAL_NAMES.index(material)] = 1
        return one
    path = companion(labels, rel, (".png",), "label map")
    label = read_cityscapes_label(path)
    if label.shape != tuple(size):
        raise EpeflowError(f"label map {path} is {label.shape[0]}x{label.shape[1]}, but frame {rel} is "
                           f"{size[0]}x{size[1]}")
    return materials_from_cityscapes(label)

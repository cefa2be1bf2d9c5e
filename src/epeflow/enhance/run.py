"""`epeflow enhance` in the pipeline: the trained generator on held-out frames of the source dataset, one
PNG per frame (whole frames when they fit `enhance.memory_mb`, else blended tiles: `engine`).

Frames accumulate in `<out>.partial` (each PNG written atomically), so a killed job continues where it
stopped; a marker with the model's digest makes sure frames of an older model are not mixed in. At the
end `index.parquet` lists the frames and the folder is moved into place.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from epeflow.artifacts import enhanced as enhanced_files
from epeflow.artifacts.gbuffers import normalize_gbuffers
from epeflow.artifacts.manifest import read_manifest_table
from epeflow.common.runtime import Runtime
from epeflow.common.shards import shard_range
from epeflow.enhance.engine import Enhancer, EnhanceSettings, FrameInputs, enhance_each, to_png_array
from epeflow.errors import EpeflowError
from epeflow.io import finalize_dir, link_or_copy, partial_dir, read_image, read_label, write_png
from epeflow.models.ienet import IENet
from epeflow.provenance import any_random, marked_random, stamp
from epeflow.weights import sha256_of

log = logging.getLogger(__name__)

MODEL_MARKER = ".model.sha256"


def select_frames(manifest: pd.DataFrame, split: str, max_frames: int | None) -> pd.DataFrame:
    """Manifest rows of `split` ('all' for every frame), in frame order, at most `max_frames`."""
    rows = manifest if split == "all" else manifest[manifest["split"] == split]
    rows = rows.sort_values("frame")
    return rows.head(max_frames) if max_frames is not None else rows


@torch.no_grad()
def enhance_frame(
    generator: IENet, image: np.ndarray, gbuffers: np.ndarray, materials: np.ndarray, runtime: Runtime
) -> np.ndarray:
    """(H, W, 3) uint8 frame, (C, H, W) normalised G-buffers, (12, H, W) materials -> (H, W, 3) uint8, the
    whole frame in one forward pass (what tiled enhancement is measured against)."""
    x = runtime.tensor(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float() / 255)
    g = runtime.tensor(torch.from_numpy(np.ascontiguousarray(gbuffers, dtype=np.float32))[None])
    m = runtime.tensor(torch.from_numpy(np.ascontiguousarray(materials, dtype=np.float32))[None])
    with runtime.autocast():
        y = generator(x, g, m)  # (1, 3, H, W) in [0, 1]
    y = (y[0].float().clamp(0, 1) * 255).round().to(torch.uint8)
    return y.permute(1, 2, 0).cpu().numpy()


def check_gbuffers(model: Mapping[str, Any], store: Any, model_path: Path) -> None:
    """The store must have the channels the generator was trained on, in the same order."""
    trained = model["gbuffers"]
    if int(trained["channels"]) != store.channels or list(trained["names"]) != list(store.names):
        raise EpeflowError(
            f"{store.path} has G-buffer channels {store.names}, but {model_path} was trained on "
            f"{trained['names']}; enhance with the G-buffers the model was trained with, or retrain"
        )


def _claim_partial(partial: Path, digest: str) -> None:
    """Keep finished frames only if they were made by this model."""
    marker = partial / MODEL_MARKER
    old = marker.read_text().strip() if marker.exists() else None
    stale = [p for p in partial.iterdir() if p.suffix in (".png", ".parquet")]
    if old != digest and stale:
        log.warning("removing %d frames from %s: they were made by another model", len(stale), partial)
        for p in stale:
            p.unlink()
    marker.write_text(digest + "\n")


def open_gbuffers(generator: IENet, model: Mapping[str, Any], gbuffers_path: Path | None, model_path: Path) -> Any:
    """The G-buffer store the generator reads, checked against the model; None for an image-only model."""
    from epeflow.artifacts.gbuffers import GBufferStore

    if generator.config.gbuffer_mode == "img":
        return None
    if gbuffers_path is None:
        raise EpeflowError(f"{model_path} was trained with G-buffers ({generator.config.gbuffer_mode}); pass the "
                           "source dataset's gbuffers.zarr")
    store = GBufferStore(gbuffers_path)
    check_gbuffers(model, store, model_path)
    return store


def run_enhance(
    model_path: Path, manifest_path: Path, gbuffers_path: Path | None, out_dir: Path, spec: Mapping[str, Any],
    labels: Path | None = None, shard: int | None = None, num_shards: int = 1,
) -> pd.DataFrame:
    """Enhance the configured split of the source dataset into `out_dir`; returns the index table.

    `gbuffers_path` None: an image-only model (`train.image_only`). `labels`: the source dataset's robust
    label folder, whose MSeg ids give the materials of frames without a GT label map. With `shard`, only
    that shard of the selected frames (`common.shards.shard_range`), into a shard folder for
    `merge_enhanced_shards`.
    """
    from epeflow.common.taxonomy import materials_from_cityscapes, materials_from_universal, read_cityscapes_label
    from epeflow.models import load_generator

    settings = EnhanceSettings.from_spec(spec)
    model_path, out_dir = Path(model_path), Path(out_dir)
    manifest, manifest_meta = read_manifest_table(manifest_path)
    frames = select_frames(manifest, settings.split, settings.max_frames)
    if frames.empty:  # an empty result would look like success and be evaluated on nothing
        counts = ", ".join(f"{k} {v}" for k, v in manifest["split"].value_counts().sort_index().items())
        name = manifest_meta.get("dataset", "<dataset>")
        raise EpeflowError(
            f"dataset {name!r} ({manifest_path}) has no frames in split {settings.split!r} (it has: "
            f"{counts or 'no frames'}); set config key `enhance.split` to a split with frames, or give the "
            f"dataset a test split (`datasets.{name}.split.test`)"
        )
    shard_meta: dict[str, Any] = {}
    if shard is not None:
        try:
            part = shard_range(len(frames), shard, num_shards)
        except ValueError as e:
            raise EpeflowError(f"--shard/--num-shards: {e}") from None
        shard_meta = {"shard_frames": [part.start, part.stop], "shard": shard, "num_shards": num_shards,
                      "selected_frames": len(frames)}
        frames = frames.iloc[part.start:part.stop]
    generator, model = load_generator(model_path)
    runtime = Runtime.detect(bool(model.get("train", {}).get("amp", True)), settings.device)
    enhancer = Enhancer(runtime.prepare(generator), runtime, settings)
    store = open_gbuffers(generator, model, gbuffers_path, model_path)
    mean = np.asarray(model["gbuffers"]["mean"], dtype=np.float32)
    std = np.asarray(model["gbuffers"]["std"], dtype=np.float32)

    partial = partial_dir(out_dir)
    _claim_partial(partial, sha256_of(model_path))
    todo = [row for row in frames.itertuples(index=False) if not enhanced_files.frame_path(partial, row.id).exists()]
    log.info("enhancing %d of %d frames on %s (%d done before)", len(todo), len(frames), runtime.device,
             len(frames) - len(todo))

    def materials(row: Any) -> np.ndarray:
        if not pd.isna(row.gt_label_path):
            return materials_from_cityscapes(read_cityscapes_label(row.gt_label_path))
        if labels is None:
            raise EpeflowError(f"{manifest_path}: frame {row.frame} ({row.path}) has no ground-truth label; the "
                               "generator needs material maps: pass the dataset's robust labels (--labels)")
        return materials_from_universal(read_label(Path(labels) / f"{row.id}.png"))

    def inputs(row: Any) -> FrameInputs:
        image = read_image(row.path)
        size = (int(row.height), int(row.width))
        if image.shape[:2] != size:
            raise EpeflowError(f"image {row.path} is {image.shape[0]}x{image.shape[1]}, but {manifest_path} says "
                               f"{size[0]}x{size[1]}; rerun the dataset's stages")
        if store is None:  # image-only generator
            return FrameInputs(image, None, None)
        gbuffers = normalize_gbuffers(store.read(int(row.frame), size=size, normalize=False), mean, std)
        return FrameInputs(image, gbuffers, materials(row))

    def write(row: Any, enhanced: np.ndarray) -> None:
        write_png(enhanced_files.frame_path(partial, row.id), to_png_array(enhanced, settings.png_bits))

    enhance_each(enhancer, todo, inputs, write, settings.batch_size)

    index = pd.DataFrame({
        "frame": frames["frame"].to_numpy(np.int64),
        "id": frames["id"].astype(str).to_numpy(),
        "source_path": frames["path"].astype(str).to_numpy(),
        "enhanced_path": [str(enhanced_files.frame_path(out_dir, i)) for i in frames["id"]],
        "height": frames["height"].to_numpy(np.int64),
        "width": frames["width"].to_numpy(np.int64),
    })
    random_weights = any_random(marked_random(model), store is not None and store.random_weights)
    meta = _index_meta(random_weights, str(model_path), settings.split, len(index), settings.png_bits)
    enhanced_files.write_index(partial, index, {**meta, **shard_meta})
    wanted = {f"{i}.png" for i in index["id"]}
    for extra in [p for p in partial.glob("*.png") if p.name not in wanted]:  # frames of an earlier selection
        extra.unlink()
    (partial / MODEL_MARKER).unlink()
    finalize_dir(partial, out_dir)
    log.info("wrote %d enhanced frames to %s", len(index), out_dir)
    return index


def _index_meta(random_weights: bool, model: str, split: str, frames: int, png_bits: int) -> dict[str, Any]:
    """index.parquet's metadata, the same for one job and for merged shards."""
    return stamp(random_weights, model=model, split=split, frames=frames, png_bits=png_bits)


def merge_enhanced_shards(shards: Sequence[Path], out_dir: Path) -> pd.DataFrame:
    """One enhanced folder from the folders of `run_enhance(..., shard=i)` jobs (PNGs hard-linked, copied
    across file systems); PNGs and index.parquet equal one job's."""
    parts = []
    for folder in shards:
        index, meta = enhanced_files.read_index(folder, allow_empty=True)
        if "shard_frames" not in meta:
            raise EpeflowError(f"{folder} is not an enhancement shard (no `shard_frames` in its index); pass the "
                               "folders of `epeflow enhance --shard` jobs")
        parts.append((Path(folder), index, meta))
    parts.sort(key=lambda part: tuple(part[2]["shard_frames"]))
    first = parts[0][2]
    expected = 0
    for folder, _, meta in parts:
        keys = ("model", "split", "png_bits", "random_weights", "selected_frames")
        differing = [k for k in keys if meta.get(k) != first.get(k)]
        if differing:
            raise EpeflowError(f"enhancement shard {folder} differs from {parts[0][0]} in {', '.join(differing)}; "
                               "delete the shards and rerun them with one model and config")
        start, stop = meta["shard_frames"]
        if start != expected:
            what = "overlaps the previous shard" if start < expected else f"leaves frames {expected}..{start - 1} out"
            raise EpeflowError(f"enhancement shard {folder} (selected frames {start}..{stop - 1}) {what}")
        expected = stop
    if expected != first["selected_frames"]:
        raise EpeflowError(f"enhancement shards cover selected frames 0..{expected - 1} of {first['selected_frames']}; "
                           "a shard is missing")
    out_dir = Path(out_dir)
    partial = partial_dir(out_dir)
    for stale in partial.iterdir():
        stale.unlink()
    for folder, index, _ in parts:
        for frame_id in index["id"]:
            link_or_copy(enhanced_files.frame_path(folder, frame_id), enhanced_files.frame_path(partial, frame_id))
    index = pd.concat([index for _, index, _ in parts], ignore_index=True)
    index["enhanced_path"] = [str(enhanced_files.frame_path(out_dir, i)) for i in index["id"]]
    meta = _index_meta(marked_random(first), first["model"], first["split"], len(index), first["png_bits"])
    enhanced_files.write_index(partial, index, meta)
    finalize_dir(partial, out_dir)
    log.info("merged %d enhancement shards: %d frames -> %s", len(parts), len(index), out_dir)
    return index

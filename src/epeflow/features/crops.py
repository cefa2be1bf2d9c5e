"""Random crops per frame and their VGG16 relu5_3 features (the reference's collect_crops, sharded).

Frames are decoded by DataLoader workers; crops from several frames share one VGG16 forward of
`batch_size` crops; features stream into a crops.zarr shard chunk by chunk, so memory is flat in the
number of frames. Crop positions come from a per-frame generator (`boxes.sample_boxes`), so a config
gives the same crops whatever the sharding or batching.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from epeflow.artifacts.chunk_progress import ChunkProgress, digest
from epeflow.artifacts.crop_stats import read_crop_stats
from epeflow.artifacts.crops import FEATURE_NAME, create_crop_store, mark_complete, reopen_crop_store
from epeflow.artifacts.manifest import frame_digests, manifest_columns, read_frames
from epeflow.common.device import select_device
from epeflow.common.shards import shard_range
from epeflow.common.vgg16 import VGG16, build_vgg16
from epeflow.config import check_crop_fits_vgg, property_defaults, settings_from_spec
from epeflow.errors import EpeflowError
from epeflow.features.boxes import sample_boxes
from epeflow.features.crop_stats import check_frames_fit
from epeflow.io import PathLike, read_image, remove_stale_temporaries
from epeflow.log import progress
from epeflow.provenance import stamp
from epeflow.weights import weights_sha256

log = logging.getLogger(__name__)

FLOAT16_MAX = float(np.finfo(np.float16).max)


_DEFAULTS = property_defaults("crops")
DIGEST_COLUMNS = ("digest", "size", "mtime")  # what `frame_digests` reads, where the manifest has it


@dataclass(frozen=True)
class CropSettings:
    """The `crops` config section; defaults are the schema's."""

    per_image: int = _DEFAULTS["per_image"]
    size: int = _DEFAULTS["size"]
    padding: str = _DEFAULTS["padding"]
    seed: int = _DEFAULTS["seed"]
    batch_size: int = _DEFAULTS["batch_size"]
    num_workers: int = _DEFAULTS["num_workers"]
    chunk_size: int = _DEFAULTS["chunk_size"]
    stats_frames: int = _DEFAULTS["stats_frames"]
    shards: int = _DEFAULTS["shards"]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> CropSettings:
        where = ("crops",)
        settings = settings_from_spec(cls, "crops", spec, where)
        if problem := check_crop_fits_vgg({"size": settings.size, "padding": settings.padding}, ".".join(where)):
            raise EpeflowError(problem)
        return settings


@torch.no_grad()
def crop_features(model: VGG16, crops: torch.Tensor, device: torch.device) -> np.ndarray:
    """relu5_3 features of uint8 crops (B, S, S, 3), averaged over space; float32 (B, 512).

    Without padding a 196 crop gives one 1x1x512 vector (the reference); with zero padding the map
    is larger and its mean is the crop's descriptor. bf16 autocast and channels_last on CUDA.
    """
    x = crops.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, S, S) in [0, 1]
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            fmap = model(x)["relu5_3"]
    else:
        fmap = model(x)["relu5_3"]  # (B, 512, h, w)
    return fmap.float().mean(dim=(2, 3)).cpu().numpy()  # (B, 512)


class FrameCrops(Dataset):
    """One item per frame: its id, crop boxes (P, 4) and crops (P, S, S, 3) uint8.

    Errors come back as an `error` message instead of an exception, so the user sees the file name and
    not a worker traceback.
    """

    def __init__(self, frames: pd.DataFrame, size: int, per_image: int, seed: int) -> None:
        self.frames = frames.reset_index(drop=True)
        self.size, self.per_image, self.seed = size, per_image, seed

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.frames.iloc[i]
        frame, height, width = int(row["frame"]), int(row["height"]), int(row["width"])
        try:
            image = read_image(row["path"])  # (H, W, 3) uint8
        except EpeflowError as e:
            return {"frame": frame, "error": str(e)}
        if image.shape[:2] != (height, width):
            return {
                "frame": frame,
                "error": f"image {row['path']} is {image.shape[0]}x{image.shape[1]} but the manifest says "
                f"{height}x{width}; rebuild the manifest",
            }
        boxes = sample_boxes(frame, height, width, self.size, self.per_image, self.seed)
        crops = np.stack([image[r0:r1, c0:c1] for r0, r1, c0, c1 in boxes])  # (P, S, S, 3)
        return {"frame": frame, "error": None, "boxes": boxes, "crops": torch.from_numpy(crops)}


def iter_crop_batches(
    loader: Iterator[dict[str, Any]] | DataLoader, batch_size: int, skip: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray, torch.Tensor]]:
    """Regroup per-frame items into batches of exactly `batch_size` crops (the last may be smaller):
    (frame ids (B,), boxes (B, 4), crops (B, S, S, 3)). The first `skip` crops are dropped (a resumed
    run starts at the first frame of a batch and drops that frame's crops of the batch before)."""
    ids: list[np.ndarray] = []
    boxes: list[np.ndarray] = []
    crops: list[torch.Tensor] = []
    buffered = 0
    for item in loader:
        if item["error"]:
            raise EpeflowError(item["error"])
        b, c = np.asarray(item["boxes"]), item["crops"]
        if skip:
            dropped = min(skip, len(b))
            b, c, skip = b[dropped:], c[dropped:], skip - dropped
        ids.append(np.full(len(b), int(item["frame"]), dtype=np.int32))
        boxes.append(b)
        crops.append(c)
        buffered += len(b)
        while buffered >= batch_size:
            all_ids, all_boxes, all_crops = np.concatenate(ids), np.concatenate(boxes), torch.cat(crops)
            yield all_ids[:batch_size], all_boxes[:batch_size], all_crops[:batch_size]
            ids, boxes, crops = [all_ids[batch_size:]], [all_boxes[batch_size:]], [all_crops[batch_size:]]
            buffered -= batch_size
    if buffered:
        yield np.concatenate(ids), np.concatenate(boxes), torch.cat(crops)


def extract_crops(
    frames: pd.DataFrame,
    settings: CropSettings,
    model: VGG16,
    device: torch.device,
    writer: Any,
    progress_desc: str = "crops",
    on_write: Callable[[int], None] | None = None,
) -> None:
    """Crops and features of `frames` (manifest rows) into `writer` (a RowWriter of a crop store).

    A writer that starts at row `writer.written` > 0 (a resumed run) gets the rows from there on, from the
    same batches an uninterrupted run forms (batches start at multiples of `batch_size` crops), so the
    features are the same bits. `on_write(rows)` is called whenever the writer has written more rows.
    """
    check_frames_fit(frames, settings.size)
    start_row = int(writer.written)
    batch_start = start_row // settings.batch_size * settings.batch_size  # first row of the batch to redo
    first_frame = batch_start // settings.per_image
    skip = batch_start - first_frame * settings.per_image
    frames = frames.iloc[first_frame:]
    dataset = FrameCrops(frames, settings.size, settings.per_image, settings.seed)
    loader = DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=settings.num_workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if settings.num_workers > 0 else None,
    )
    batches = iter_crop_batches(progress(loader, progress_desc, total=len(dataset), unit="frame"),
                                settings.batch_size, skip)
    row = batch_start
    for ids, boxes, crops in batches:
        feats = crop_features(model, crops, device)  # (B, 512) float32
        feats = np.clip(feats, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16)
        keep = max(0, start_row - row)  # rows of the first batch a killed run wrote already
        row += len(ids)
        if keep >= len(ids):
            continue
        written = writer.written
        writer.append(frame=ids[keep:], box=boxes[keep:], features=feats[keep:])
        if on_write is not None and writer.written > written:
            on_write(writer.written)


def build_crop_model(
    stats: Mapping[str, Any], padding: str, weights: Mapping[str, Any], allow_random: bool, device: torch.device
) -> tuple[VGG16, bool]:
    """VGG16 normalised with the dataset's RGB mean/std; returns (model, random_weights)."""
    model, random_weights = build_vgg16(weights.get("vgg16"), allow_random, padding=padding)  # type: ignore[arg-type]
    model.set_normalization(stats["mean"], stats["std"])
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model, random_weights


def run_crops(
    manifest: PathLike,
    stats_path: PathLike,
    out: PathLike,
    shard: int,
    num_shards: int,
    spec: Mapping[str, Any],
    weights: Mapping[str, Any],
    allow_random: bool,
    threads: int = 1,
) -> None:
    """`epeflow crops`: one shard (a contiguous range of frames) into its own crops.zarr."""
    settings = CropSettings.from_spec(spec)
    torch.set_num_threads(max(1, threads))
    frames_all = read_frames(manifest, [c for c in DIGEST_COLUMNS if c in manifest_columns(manifest)])
    try:
        frame_range = shard_range(len(frames_all), shard, num_shards)
    except ValueError as e:
        raise EpeflowError(f"--shard/--num-shards: {e}") from None
    start, stop = frame_range.start, frame_range.stop
    frames = frames_all.iloc[start:stop]
    stats = read_crop_stats(stats_path)
    device = select_device()
    model, random_weights = build_crop_model(stats, settings.padding, weights, allow_random, device)
    rows = len(frames) * settings.per_image
    attrs = {
        "mean": [float(v) for v in stats["mean"]],
        "std": [float(v) for v in stats["std"]],
        "crop_size": settings.size,
        "per_image": settings.per_image,
        "seed": settings.seed,
        "padding": settings.padding,
        "feature": FEATURE_NAME,
        "random_weights": bool(random_weights),
        "num_frames": len(frames_all),
        "chunk_size": settings.chunk_size,
        "frames": [start, stop],
        "shard": shard,
        "num_shards": num_shards,
        "provenance": stamp(random_weights, device=str(device)),
    }
    log.info("shard %d of %d: frames %d..%d, %d crops on %s", shard, num_shards, start, stop - 1, rows, device)
    remove_stale_temporaries(Path(out).parent, Path(out).name)  # of writers before resumable crops
    fingerprint = {
        "store": {k: v for k, v in attrs.items() if k != "provenance"},
        "provenance": attrs["provenance"],
        "batch_size": settings.batch_size,
        "vgg16_sha256": weights_sha256("vgg16", weights.get("vgg16"), allow_random),
        "frames": digest([str(frames["id"].tolist()), frame_digests(frames)]),
    }
    job = ChunkProgress(out, fingerprint, "crop store")
    done = job.start()
    if done:
        group, writer = reopen_crop_store(job.store, min(rows, done * settings.chunk_size))
    else:
        group, writer = create_crop_store(job.store, rows, settings.chunk_size, attrs)
    extract_crops(frames, settings, model, device, writer, progress_desc=f"crops {shard}/{num_shards}",
                  on_write=lambda written: job.mark_done(written // settings.chunk_size))
    mark_complete(group, writer)
    job.finish()

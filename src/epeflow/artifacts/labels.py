"""The one resumable writer of robust label maps, shared by every labelling method.

A method is a function `frames (DataFrame of manifest rows) -> iterable of (H, W) uint8 maps`, one per
row in order (MSeg batches inside its function; per-frame methods are wrapped by `per_frame`). Maps are
written one by one as `<id>.png` into `OUT_DIR.partial`, each recorded after it is written with the content
digest of its frame (the manifest's `digest`); a rerun after a kill keeps the maps of frames whose content is
unchanged and makes the others again, and the finished folder is renamed to OUT_DIR with its `labels.json`.
The partial folder remembers which method and method settings (e.g. MSeg's scales) it was started for and
starts over when they changed (label maps placed there by hand, without that record, are adopted as
finished). `labels.json` records the settings and a digest of the maps' bytes (`content`), which training
fingerprints.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epeflow import io
from epeflow.artifacts.manifest import frame_digests
from epeflow.common.taxonomy import NUM_UNIVERSAL_CLASSES, UNLABELED
from epeflow.errors import EpeflowError
from epeflow.log import progress
from epeflow.provenance import marked_random, stamp

log = logging.getLogger(__name__)

LabelMethod = Callable[[pd.DataFrame], Iterable[np.ndarray]]
STATE_FILE = "_labels_state.json"
DONE_FILE = "_labels_done.tsv"  # one line per finished map: id, content digest of the frame it was made from


def per_frame(fn: Callable[[Mapping[str, Any]], np.ndarray], threads: int = 1) -> LabelMethod:
    """A method from a function of one manifest row, run on `threads` threads, results in order."""

    def method(frames: pd.DataFrame) -> Iterator[np.ndarray]:
        rows = frames.to_dict("records")
        window = max(1, threads) * 4  # bounded look-ahead: memory stays small on huge datasets
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for start in range(0, len(rows), window):
                yield from pool.map(fn, rows[start:start + window])

    return method


def _read_done(partial: Path) -> dict[str, str]:
    """id -> content digest of the frame each recorded map was made from (the last record of an id wins)."""
    path = partial / DONE_FILE
    if not path.exists():
        return {}
    records = (line.split("\t") for line in path.read_text().splitlines())
    return {fields[0]: fields[1] for fields in records if len(fields) == 2}


def _prepare_partial(out_dir: Path, state: dict[str, Any], digests: dict[str, str]) -> tuple[Path, set[str]]:
    """The partial folder for `out_dir` and the ids of the maps in it that stay: it is emptied when started
    with another method or settings; a map whose frame changed (content digest), left the manifest, or was
    not recorded as finished is removed, so old maps never mix with new ones."""
    partial = io.partial_dir(out_dir)
    state_path = partial / STATE_FILE
    adopt = False
    if state_path.exists():
        try:
            previous = io.read_json(state_path)
        except EpeflowError:
            previous = None
        if previous != state:
            log.warning("%s was started with another method or settings; starting over", partial)
            shutil.rmtree(partial)
            partial = io.partial_dir(out_dir)
    elif any(partial.glob("*.png")):
        log.warning("%s holds label maps but no %s: adopting them as finished frames", partial, STATE_FILE)
        adopt = True
    for stale in partial.glob(".*.tmp-*"):  # temporaries of a write that was killed midway
        stale.unlink(missing_ok=True)
    done = {i: digests.get(i) for i in digests} if adopt else _read_done(partial)
    kept, dropped = set(), 0
    for png in partial.glob("*.png"):
        if png.stem in digests and done.get(png.stem) == digests[png.stem]:
            kept.add(png.stem)
        else:
            png.unlink()
            dropped += 1
    if dropped:
        log.warning("%s: removed %d label map(s) whose frame changed or is gone; they are made again", partial,
                    dropped)
    io.write_json(state_path, state)
    with io.atomic_path(partial / DONE_FILE) as tmp:
        tmp.write_text("".join(f"{i}\t{digests[i]}\n" for i in sorted(kept)))
    return partial, kept


def maps_digest(folder: Path, ids: Iterable[str]) -> str:
    """sha256 over the label PNGs' ids and bytes in frame order: the content later stages fingerprint."""
    h = hashlib.sha256()
    for i in ids:
        h.update(f"{i}\t{hashlib.blake2b((folder / f'{i}.png').read_bytes(), digest_size=16).hexdigest()}\n".encode())
    return h.hexdigest()


def check_label_map(label: np.ndarray, frame: Mapping[str, Any], source: str) -> np.ndarray:
    """A method's output must be (H, W) uint8 of the frame's size with universal ids (0..193, 255)."""
    label = np.asarray(label)
    if label.shape != (frame["height"], frame["width"]):
        raise EpeflowError(f"label map {source} is {label.shape[1] if label.ndim > 1 else '?'}x{label.shape[0]} but "
                           f"its image {frame['path']} is {frame['width']}x{frame['height']}")
    if label.dtype != np.uint8:
        raise EpeflowError(f"label map {source} has dtype {label.dtype}; expected uint8 universal ids")
    bad = (label >= NUM_UNIVERSAL_CLASSES) & (label != UNLABELED)
    if bad.any():
        raise EpeflowError(f"label map {source} has ids {sorted(set(np.unique(label[bad]).tolist()))[:5]} that are "
                           f"not MSeg universal ids (0..{NUM_UNIVERSAL_CLASSES - 1}, {UNLABELED} = unlabeled)")
    return label


def _info(method_name: str, num_frames: int, settings: Any, content: str, random_weights: bool) -> dict[str, Any]:
    """labels.json of a finished folder (the same for one job and for merged shards)."""
    return {"method": method_name, "num_frames": num_frames, "num_classes": NUM_UNIVERSAL_CLASSES,
            "ignore_id": UNLABELED, "taxonomy": "mseg-universal", "settings": settings, "content": content,
            **stamp(random_weights)}


def write_labels(frames: pd.DataFrame, out_dir: str | os.PathLike[str], method: LabelMethod, method_name: str,
                 random_weights: bool = False, settings: Mapping[str, Any] | None = None,
                 shard: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write `<id>.png` for every frame (resuming a killed run) and `labels.json`; returns the latter.

    `settings`: what decides the method's maps (JSON-serialisable); a partial folder started with other
    settings is not resumed, and `labels.json` records them under "settings". `shard` (frames [start, stop),
    shard, num_shards) marks the folder as one shard of a dataset, for `merge_label_shards`.
    """
    out_dir = Path(out_dir)
    settings = json.loads(json.dumps(dict(settings or {})))  # as read back from the state file: tuples -> lists
    state = {"method": method_name, "settings": settings, "random_weights": bool(random_weights)}
    digests = dict(zip(frames["id"], frame_digests(frames), strict=True))
    partial, done = _prepare_partial(out_dir, state, digests)
    todo = frames.loc[~frames["id"].isin(done)].reset_index(drop=True)
    if len(todo) < len(frames):
        log.info("resuming: %d of %d label maps already written in %s", len(frames) - len(todo), len(frames), partial)
    rows = todo.to_dict("records")
    produced = 0
    with open(partial / DONE_FILE, "a") as record:
        for row, label in progress(zip(rows, method(todo), strict=False), desc=f"labels ({method_name})",
                                   total=len(rows), unit="frame"):
            io.write_png(partial / f"{row['id']}.png", check_label_map(label, row, f"for {row['path']}"))
            record.write(f"{row['id']}\t{digests[row['id']]}\n")  # after the map: a kill between leaves it unrecorded
            record.flush()
            produced += 1
    if produced != len(rows):
        raise RuntimeError(f"label method {method_name!r} produced {produced} maps for {len(rows)} frames")
    info = _info(method_name, len(frames), settings, maps_digest(partial, frames["id"]), random_weights)
    if shard is not None:
        info.update({**dict(shard), "ids": [str(i) for i in frames["id"]]})
    (partial / STATE_FILE).unlink()
    (partial / DONE_FILE).unlink()
    io.write_json(partial / "labels.json", info)
    io.finalize_dir(partial, out_dir)
    log.info("wrote %d label maps (%s) to %s", len(frames), method_name, out_dir)
    return info


SHARD_KEYS = ("frames", "shard", "num_shards")


def merge_label_shards(shards: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """One labels folder from shard folders of the same dataset and settings (hard links, copies across
    file systems); its maps and `labels.json` (provenance aside) equal one job's."""
    infos = []
    for folder in shards:
        path = Path(folder) / "labels.json"
        if not path.is_file():
            raise EpeflowError(f"{path} does not exist; rerun the `epeflow labels --shard` job for {folder}")
        info = io.read_json(path)
        if any(k not in info for k in (*SHARD_KEYS, "ids", "dataset_frames")):
            raise EpeflowError(f"{folder} is not a labels shard (no frame range in labels.json); pass shard folders")
        infos.append((Path(folder), info))
    infos.sort(key=lambda item: tuple(item[1]["frames"]))
    first = infos[0][1]
    expected = 0
    for folder, info in infos:
        keys = ("method", "settings", "random_weights", "dataset_frames")
        differing = [k for k in keys if info.get(k) != first.get(k)]
        if differing:
            raise EpeflowError(f"labels shard {folder} differs from {infos[0][0]} in {', '.join(differing)}; "
                               "delete the shards and rerun them with one config")
        start, stop = info["frames"]
        if start != expected:
            what = "overlaps the previous shard" if start < expected else f"leaves frames {expected}..{start - 1} out"
            raise EpeflowError(f"labels shard {folder} (frames {start}..{stop - 1}) {what}; pass every shard once")
        expected = stop
    if expected != first["dataset_frames"]:
        raise EpeflowError(f"labels shards cover frames 0..{expected - 1} of {first['dataset_frames']}; a shard is "
                           "missing")
    partial = io.partial_dir(out_dir)
    for stale in partial.iterdir():
        _remove_path(stale)
    ids: list[str] = []
    for folder, info in infos:
        for i in info["ids"]:
            io.link_or_copy(folder / f"{i}.png", partial / f"{i}.png")
        ids.extend(info["ids"])
    merged = _info(first["method"], len(ids), first["settings"], maps_digest(partial, ids), marked_random(first))
    io.write_json(partial / "labels.json", merged)
    io.finalize_dir(partial, out_dir)
    log.info("merged %d label shards: %d maps -> %s", len(infos), len(ids), out_dir)
    return merged


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def read_labels_info(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """What matters of a finished labels folder's labels.json: method, frame and class counts, the maps'
    content digest, random flag."""
    path = Path(folder) / "labels.json"
    if not path.is_file():
        raise EpeflowError(f"{path} does not exist; run `epeflow labels` for {folder} first")
    info = io.read_json(path)
    return {"method": info.get("method"), "num_frames": info.get("num_frames"), "num_classes": info.get("num_classes"),
            "content": info.get("content") or _stat_digest(Path(folder)), "random_weights": marked_random(info)}


def label_map_path(folder: str | os.PathLike[str], frame_id: str) -> Path:
    """Where a finished labels folder keeps the map of one frame."""
    return Path(folder) / f"{frame_id}.png"


def read_label_map(folder: str | os.PathLike[str], frame_id: str) -> np.ndarray:
    """The (H, W) uint8 universal-id label map of one frame from a finished labels folder."""
    path = label_map_path(folder, frame_id)
    if not path.is_file():
        raise EpeflowError(f"label map {path} of frame {frame_id!r} is missing; rerun `epeflow labels` for {folder}")
    return io.read_label(path)


def _stat_digest(folder: Path) -> str:
    """For a labels folder whose labels.json records no digest (made by hand or by an older epeflow): the maps'
    names, sizes and modification times, so a replaced map is still seen without reading every map."""
    h = hashlib.sha256()
    for png in sorted(folder.glob("*.png")):
        st = png.stat()
        h.update(f"{png.name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return "stat:" + h.hexdigest()

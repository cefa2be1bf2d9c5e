"""Finding a dataset's frames: image folders, EPE file lists, video sequences and generated demos.

Each lister returns a `Listing`: one row per candidate frame with its image path, id, sequence, position
and companion files (labels, G-buffers, video modalities). Nothing is decoded here; `checks.py` does
that. A companion that should exist but does not is recorded in `problem`, so the frame can be skipped
(`on_bad_frame: skip`) or reported like any other bad frame.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from epeflow.artifacts.manifest import COMPANIONS
from epeflow.datasets.walk import unique_files, walk_once
from epeflow.errors import EpeflowError
from epeflow.io import safe_id

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_DEMO_NAME = re.compile(r"^s(\d+)_f(\d+)$")


@dataclass
class Listing:
    """Candidate frames of a dataset (see module docstring); `frames` columns: path, id, sequence,
    frame_index, split (preset or None), robust_label_path, gbuffer_path, gt_label_path, problem, mod_*."""

    kind: str
    root: Path
    frames: pd.DataFrame
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific facts for the manifest's metadata


def source_kind(spec: Mapping[str, Any]) -> str:
    kinds = [k for k in ("images", "filelist", "video", "demo") if k in spec]
    if len(kinds) != 1:
        raise EpeflowError(f"dataset settings: give exactly one of images, filelist, video, demo (found "
                           f"{', '.join(kinds) or 'none'})")
    return kinds[0]


def _abs(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.path.expanduser(path))


def walk_files(folder: Path, extensions: Iterable[str] | None) -> list[str]:
    """Absolute paths of files under `folder` (recursive, hidden entries skipped) whose extension is one
    of `extensions` (case-insensitive; None takes every file), sorted; symlinks are followed, each real
    folder entered once and each real file listed once (`walk.unique_files`)."""
    exts = None if extensions is None else {"." + e.lower().lstrip(".") for e in extensions}
    found = unique_files(folder, lambda f: exts is None or os.path.splitext(f)[1].lower() in exts)
    return sorted(_abs(p) for p in found)


def _require_dir(path: Path, key: str) -> Path:
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a folder"
        raise EpeflowError(f"{path} {what} (config key `{key}`); point it at the dataset's folder")
    return path


def _stem_key(path: str, root: str) -> str:
    return os.path.splitext(os.path.relpath(path, root))[0].replace(os.sep, "/")


class StemIndex:
    """Files of a companion folder (G-buffers, GT labels) looked up by a frame's relative path without
    extension, or by its bare file stem when that is unique in the folder. With `folders`, sub-folders
    count as entries too (G-buffers exported as one folder of images per frame)."""

    def __init__(self, folder: Path, extensions: Iterable[str], key: str, folders: bool = False):
        self.folder = _require_dir(folder, key)
        root = str(folder.absolute())
        files = walk_files(folder, extensions)
        dirs = sorted(_abs(os.path.join(d, n)) for d, names, _ in walk_once(folder) for n in names) if folders else []
        self.by_rel: dict[str, str] = {}
        self.by_stem: dict[str, list[str]] = {}
        for p in files:
            self.by_rel[_stem_key(p, root)] = p
            self.by_stem.setdefault(Path(p).stem, []).append(p)
        for p in dirs:  # a file wins over a folder of the same name
            self.by_rel.setdefault(os.path.relpath(p, root).replace(os.sep, "/"), p)
            self.by_stem.setdefault(Path(p).name, []).append(p)

    def find(self, rel_stem: str, by_stem: bool = True) -> str | None:
        """The entry for a frame; `by_stem=False` when the frame's own stem is not unique in its dataset."""
        if rel_stem in self.by_rel:
            return self.by_rel[rel_stem]
        candidates = self.by_stem.get(rel_stem.rsplit("/", 1)[-1], []) if by_stem else []
        return candidates[0] if len(candidates) == 1 else None


GBUFFER_EXTENSIONS = ("npz", "npy", "png", "tif", "tiff", "exr")


def _attach_dirs(df: pd.DataFrame, spec: Mapping[str, Any], root: str, name: str) -> None:
    """Fill gbuffer_path / gt_label_path from `gbuffer_dir` / `gt_label_dir` where still empty. A frame
    matches the entry at its relative path, else one with its file stem when both stems are unique."""
    rels = [_stem_key(p, root) for p in df["path"].tolist()]
    stem_count = Counter(r.rsplit("/", 1)[-1] for r in rels)
    for column, key, exts, what in (("gbuffer_path", "gbuffer_dir", GBUFFER_EXTENSIONS, "G-buffer"),
                                    ("gt_label_path", "gt_label_dir", ("png",), "GT label")):
        folder = spec.get(key)
        if not folder:
            continue
        index = StemIndex(Path(folder), exts, f"datasets.{name}.{key}", folders=column == "gbuffer_path")
        values, problems = df[column].tolist(), df["problem"].tolist()
        for i, (path, rel) in enumerate(zip(df["path"].tolist(), rels, strict=True)):
            if values[i] is not None:
                continue
            values[i] = index.find(rel, by_stem=stem_count[rel.rsplit("/", 1)[-1]] == 1)
            if values[i] is None and problems[i] is None:
                problems[i] = (f"no {what} file for frame {path} in {folder} (looked for {rel}.* or a unique "
                               f"{Path(rel).name}.*)")
        df[column] = pd.Series(values, dtype=object)
        df["problem"] = pd.Series(problems, dtype=object)


def _frame_table(paths: list[str], root: str, **columns: list[Any]) -> pd.DataFrame:
    """The listing's table; `columns` override the defaults (no sequence, position order, nothing attached)."""
    n = len(paths)
    data: dict[str, Any] = {
        "path": paths,
        "id": [safe_id(os.path.relpath(p, root).replace(os.sep, "/")) for p in paths],
        "sequence": [""] * n,
        "frame_index": list(range(n)),
        "split": [None] * n,
        **{c: [None] * n for c in COMPANIONS},
        "problem": [None] * n,
    }
    data.update(columns)
    # object columns keep None for "no such file" (pandas would turn None into NaN in a string column)
    return pd.DataFrame({c: pd.Series(v, dtype="int64" if c == "frame_index" else object) for c, v in data.items()})


def list_images(spec: Mapping[str, Any], name: str) -> Listing:
    root = _require_dir(Path(spec["images"]), f"datasets.{name}.images")
    paths = walk_files(root, spec["extensions"])
    df = _frame_table(paths, _abs(root))
    _attach_dirs(df, spec, _abs(root), name)
    return Listing("images", Path(_abs(root)), df)


def read_filelist(path: Path, key: str) -> list[list[str | None]]:
    """Rows of an EPE file list, `image[,robust_label[,gbuffer[,gt_label]]]`; relative paths are taken
    relative to the list's folder; empty fields are None. Blank lines and `#` comments are ignored."""
    if not path.is_file():
        raise EpeflowError(f"file list {path} does not exist (config key `{key}`)")
    base = path.absolute().parent
    rows, seen = [], {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) > 4 or not fields[0]:
            raise EpeflowError(f"file list {path}, line {lineno}: expected `image[,robust_label[,gbuffer"
                               f"[,gt_label]]]`, got {line!r}")
        row = [_abs(base / f) if f else None for f in fields] + [None] * (4 - len(fields))
        real = os.path.realpath(row[0])
        if real in seen:
            also = "" if row[0] == seen[real][1] else f" as {seen[real][1]}, the same file through a symlink"
            raise EpeflowError(f"file list {path}, line {lineno}: image {row[0]} is listed twice "
                               f"(also on line {seen[real][0]}{also}); remove one")
        seen[real] = (lineno, row[0])
        rows.append(row)
    return rows


def list_filelist(spec: Mapping[str, Any], name: str) -> Listing:
    path = Path(spec["filelist"])
    rows = read_filelist(path, f"datasets.{name}.filelist")
    base = str(path.absolute().parent)
    images = [r[0] for r in rows]
    inside = all(not os.path.relpath(p, base).startswith("..") for p in images)
    root = base if inside or not images else os.path.commonpath([os.path.dirname(p) for p in images])
    df = _frame_table(images, root, robust_label_path=[r[1] for r in rows], gbuffer_path=[r[2] for r in rows],
                      gt_label_path=[r[3] for r in rows])
    _attach_dirs(df, spec, root, name)
    return Listing("filelist", Path(root), df, {"filelist": _abs(path)})


def _modality_column(name: str) -> str:
    return "mod_" + re.sub(r"[^0-9A-Za-z_]", "_", name)


def list_video(spec: Mapping[str, Any], name: str) -> Listing:
    """`<root>/[<split>/]<video>/frames/*` with sibling modality folders holding files of the same stems."""
    root = _require_dir(Path(spec["video"]), f"datasets.{name}.video")
    split_dirs = [s for s in SPLITS if (root / s).is_dir()]
    containers = [(root / s, s) for s in split_dirs] if split_dirs else [(root, None)]
    if split_dirs:
        others = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in SPLITS)
        if others:
            log.warning("%s: ignoring folders outside the split folders %s: %s", root, split_dirs, others)
    records: list[dict[str, Any]] = []
    modalities: set[str] = set()
    for container, split in containers:
        videos = sorted(p for p in container.iterdir() if p.is_dir() and (p / "frames").is_dir())
        for video in videos:
            mods = sorted(p.name for p in video.iterdir() if p.is_dir() and p.name != "frames"
                          and not p.name.startswith("."))
            modalities.update(mods)
            indexes = {m: {Path(f).stem: f for f in walk_files(video / m, None)} for m in mods}
            for k, frame in enumerate(walk_files(video / "frames", spec["extensions"])):
                stem = Path(frame).stem
                rec = {"path": frame, "sequence": video.name, "frame_index": k, "split": split}
                rec.update({_modality_column(m): indexes[m].get(stem) for m in mods})
                records.append(rec)
    records.sort(key=lambda r: r["path"])
    if not records:
        raise EpeflowError(f"no video frames under {root}: expected `<video>/frames/*.png` folders (optionally "
                           f"inside train/ val/ test/) (config key `datasets.{name}.video`)")
    mod_columns = {m: _modality_column(m) for m in sorted(modalities)}
    problems = []
    for rec in records:
        missing = [m for m, c in mod_columns.items() if rec.get(c) is None]
        frame = Path(rec["path"])
        expected = frame.parent.parent / missing[0] / frame.stem if missing else None
        problems.append(f"video frame {frame} has no {missing[0]} file {expected}.*" if missing else None)
    names = ("path", "sequence", "frame_index", "split", *mod_columns.values())
    columns = {c: [r.get(c) for r in records] for c in names}
    df = _frame_table(columns.pop("path"), _abs(root), problem=problems, **columns)
    _attach_dirs(df, spec, _abs(root), name)
    return Listing("video", Path(_abs(root)), df, {"modalities": sorted(modalities), "split_folders": bool(split_dirs)})


def list_demo(spec: Mapping[str, Any], name: str, demo_dir: str | os.PathLike[str] | None) -> Listing:
    """Frames of a generated demo (`epeflow demo`): images, gt_labels and gbuffers named `s<seq>_f<index>`."""
    from epeflow.demo.generate import GBUFFER_KEY, read_demo_info

    if demo_dir is None:
        raise EpeflowError(f"dataset {name!r} is a generated demo: pass --demo-dir with the folder that "
                           "`epeflow demo` wrote")
    demo_dir = Path(demo_dir)
    info = read_demo_info(demo_dir)
    images = _require_dir(demo_dir / "images", f"datasets.{name}.demo")
    paths = walk_files(images, ("png",))
    seq, index = [], []
    for p in paths:
        match = _DEMO_NAME.match(Path(p).stem)
        if not match:
            raise EpeflowError(f"{p} is not a demo frame name (s<sequence>_f<index>.png); regenerate {demo_dir}")
        seq.append(f"s{int(match.group(1)):02d}")
        index.append(int(match.group(2)))
    stems = [Path(p).stem for p in paths]
    gt = [demo_dir / "gt_labels" / f"{stem}.png" for stem in stems]
    gb = [demo_dir / "gbuffers" / f"{stem}.npz" for stem in stems] if info.get("gbuffers") else [None] * len(stems)
    problems = [f"demo GT label {g} does not exist" if not g.is_file()
                else f"demo G-buffer {b} does not exist" if b is not None and not b.is_file() else None
                for g, b in zip(gt, gb, strict=True)]
    df = _frame_table(paths, _abs(images), sequence=seq, frame_index=index, problem=problems,
                      gt_label_path=[_abs(g) for g in gt], gbuffer_path=[b and _abs(b) for b in gb])
    extra: dict[str, Any] = {"demo_dir": _abs(demo_dir), "gbuffer_key": GBUFFER_KEY}
    if info.get("gbuffers"):
        extra["gbuffer_names"] = info["gbuffers"]["names"]
        extra["gbuffer_groups"] = info["gbuffers"]["groups"]
    return Listing("demo", Path(_abs(images)), df, extra)


def list_frames(spec: Mapping[str, Any], name: str, demo_dir: str | os.PathLike[str] | None = None) -> Listing:
    """Candidate frames of the dataset described by `spec` (a validated dataset config entry)."""
    kind = source_kind(spec)
    if kind == "images":
        return list_images(spec, name)
    if kind == "filelist":
        return list_filelist(spec, name)
    if kind == "video":
        return list_video(spec, name)
    return list_demo(spec, name, demo_dir)

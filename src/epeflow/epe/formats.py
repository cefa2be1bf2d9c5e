"""The reference's matching files, read and written as its scripts do, and moved to / from our stores.

Reference formats (isl-org/PhotorealismEnhancement, code/epe/matching):
- crop features: npz with `crops` [N, 512] float16; crop list: csv `id,path,r0,r1,c0,c1` (LF lines);
- k-NN: npz with `ind` [Ns, k] int64 and `dist` [Ns, k] float32 (squared L2 of normalised features);
- matched crops: csv `src_path,src_r0,src_r1,src_c0,src_c1,dst_path,dst_r0,dst_r1,dst_c0,dst_c1`
  written by csv.DictWriter (CRLF lines), rows row-major over (source crop, neighbour rank);
- sampling weights: npz with `w` [N, 1] float64;
- file lists: one frame a line, `image[,robust_label[,gbuffer[,gt_label]]]`.
npz outputs get `.npz` appended when the name lacks it, as np.savez_compressed does for the reference.
Our exports add one key, `epeflow_attrs` (JSON of the store's attributes), which the reference ignores
and our imports use to restore the store exactly.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epeflow.artifacts.crops import FEATURE_DIM, FEATURE_NAME, CropStore, create_crop_store, mark_complete
from epeflow.artifacts.knn import METRIC, KnnStore, create_knn_store
from epeflow.artifacts.manifest import manifest_columns, read_frames, read_manifest_meta
from epeflow.artifacts.matches import BOX, MATCH_COLUMNS, read_pair_boxes, write_matches
from epeflow.artifacts.weights import read_weights, write_weights
from epeflow.errors import EpeflowError
from epeflow.io import PathLike, atomic_path
from epeflow.matching.coverage_weights import frame_weights
from epeflow.matching.knn import KnnSettings, knn_search
from epeflow.provenance import stamp

log = logging.getLogger(__name__)

CROP_CSV_HEADER = ("id", "path", "r0", "r1", "c0", "c1")
MATCHED_CSV_HEADER = tuple(f"{side}_{c}" for side in ("src", "dst") for c in ("path", *BOX))
ATTRS_KEY = "epeflow_attrs"
FILELIST_COLUMNS = {
    "image": "path",
    "robust_label": "robust_label_path",
    "gbuffer": "gbuffer_path",
    "gt_label": "gt_label_path",
}


# ---- reference files -------------------------------------------------------------------------------------


def npz_name(path: PathLike) -> Path:
    """The file np.savez_compressed writes for `path` (it appends .npz when missing)."""
    text = os.fspath(path)
    return Path(text if text.endswith(".npz") else text + ".npz")


def write_npz(path: PathLike, attrs: dict[str, Any] | None = None, **arrays: np.ndarray) -> Path:
    """np.savez_compressed, atomically; `attrs` go into the extra `epeflow_attrs` key. Returns the file."""
    final = npz_name(path)
    if attrs is not None:
        arrays[ATTRS_KEY] = np.asarray(json.dumps(attrs))
    with atomic_path(final) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    return final


def read_npz(path: PathLike, keys: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
    """Arrays `keys` of an npz file and its epeflow attrs (None for reference files)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise EpeflowError(f"{path} has no key(s) {', '.join(missing)} (found: {', '.join(data.files)})")
            arrays = {k: data[k] for k in keys}
            attrs = json.loads(str(data[ATTRS_KEY])) if ATTRS_KEY in data.files else None
    except FileNotFoundError:
        raise EpeflowError(f"{path} does not exist") from None
    except (OSError, ValueError) as e:
        raise EpeflowError(f"{path} is not a readable npz file ({e})") from e
    return arrays, attrs


def _read_csv(path: PathLike, header: Sequence[str], path_columns: Sequence[str]) -> pd.DataFrame:
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={c: str for c in path_columns}, keep_default_na=False, na_filter=False)
    except FileNotFoundError:
        raise EpeflowError(f"{path} does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise EpeflowError(f"{path} is not a readable csv file ({e})") from e
    missing = [c for c in header if c not in df.columns]
    if missing:
        raise EpeflowError(f"{path} lacks column(s) {', '.join(missing)}; expected header {','.join(header)}")
    for c in header:
        if c not in path_columns and not pd.api.types.is_integer_dtype(df[c]):
            raise EpeflowError(f"{path}: column `{c}` must hold integers")
    return df


def read_crop_csv(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(paths (N,) str, boxes (N, 4) int64 r0, r1, c0, c1) of a reference crop list, in file order."""
    df = _read_csv(path, CROP_CSV_HEADER, ["path"])
    return df["path"].to_numpy(dtype=object), df[list(BOX)].to_numpy(np.int64)


def write_crop_csv(path: PathLike, paths: Sequence[str] | np.ndarray, boxes: np.ndarray) -> None:
    """A crop list as collect_crops.py writes it (ids 0..N-1, LF lines)."""
    boxes = np.asarray(boxes, dtype=np.int64)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CROP_CSV_HEADER)
        writer.writerows(zip(range(len(boxes)), list(paths), *boxes.T.tolist(), strict=True))


def read_matched_csv(path: PathLike) -> pd.DataFrame:
    """A matched-crops csv as a frame with the reference's columns."""
    return _read_csv(path, MATCHED_CSV_HEADER, ["src_path", "dst_path"])[list(MATCHED_CSV_HEADER)]


def write_matched_csv(
    path: PathLike, src_paths: np.ndarray, src_boxes: np.ndarray, dst_paths: np.ndarray, dst_boxes: np.ndarray
) -> None:
    """A matched-crops csv exactly as filter.py's csv.DictWriter writes it (CRLF lines)."""
    src_boxes, dst_boxes = np.asarray(src_boxes, np.int64), np.asarray(dst_boxes, np.int64)
    columns = [list(src_paths), *src_boxes.T.tolist(), list(dst_paths), *dst_boxes.T.tolist()]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MATCHED_CSV_HEADER)
        writer.writerows(zip(*columns, strict=True))


# ---- drop-in replacements of the reference scripts ------------------------------------------------------


def find_knn_files(src_npz: PathLike, dst_npz: PathLike, out: PathLike, k: int = 5, chunk_size: int = 65536) -> Path:
    """find_knn.py: exact k-NN of normalised source features among target features -> npz (ind, dist)."""
    src = read_npz(src_npz, ["crops"])[0]["crops"]
    dst = read_npz(dst_npz, ["crops"])[0]["crops"]
    if src.ndim != 2 or dst.ndim != 2 or src.shape[1] != dst.shape[1]:
        raise EpeflowError(f"feature shapes differ: {src_npz} {src.shape}, {dst_npz} {dst.shape}")
    log.info("%d source and %d target crops", len(src), len(dst))
    dist, ind = knn_search(src, dst, KnnSettings(k=k, chunk_size=chunk_size))  # normalises as the reference
    return write_npz(out, ind=ind, dist=dist)


def filter_files(knn_npz: PathLike, src_csv: PathLike, dst_csv: PathLike, max_dist: float, out_csv: PathLike) -> int:
    """filter.py: pairs with dist < max_dist as a matched-crops csv; returns the number of pairs."""
    arrays, _ = read_npz(knn_npz, ["ind", "dist"])
    ind, dist = arrays["ind"], arrays["dist"]
    src_paths, src_boxes = read_crop_csv(src_csv)
    dst_paths, dst_boxes = read_crop_csv(dst_csv)
    if len(ind) > len(src_paths):
        raise EpeflowError(f"{knn_npz} has {len(ind)} source crops but {src_csv} lists {len(src_paths)}")
    rows, ranks = np.nonzero(dist < max_dist)  # the reference keeps -1 slots too (they never pass in practice)
    dst = ind[rows, ranks]
    if len(dst) and dst.max() >= len(dst_paths):
        raise EpeflowError(f"{knn_npz} points at target crop {dst.max()} but {dst_csv} lists {len(dst_paths)}")
    write_matched_csv(out_csv, src_paths[rows], src_boxes[rows], dst_paths[dst], dst_boxes[dst])
    log.info("%d pairs below %s", len(rows), max_dist)
    return len(rows)


def compute_weights_file(matched_csv: PathLike, height: int, width: int, out: PathLike) -> Path:
    """compute_weights.py: one density map of the given frame size -> npz `w` (N, 1) float64."""
    df = read_matched_csv(matched_csv)
    boxes = df[[f"src_{b}" for b in BOX]].to_numpy(np.int64)
    weights = frame_weights(boxes, height, width)
    return write_npz(out, w=weights.reshape(-1, 1))


# ---- between reference files and our stores -------------------------------------------------------------


def frames_of_paths(paths: Sequence[str] | np.ndarray, frames: pd.DataFrame, manifest: PathLike) -> np.ndarray:
    """Frame ids of image paths: by exact path, then absolute normalised path, then unique file stem
    (the reference's own key); int64 (N,). Unknown paths are an error naming them."""
    paths = np.asarray(paths, dtype=object)
    distinct, inverse = np.unique(paths.astype(str), return_inverse=True)
    exact = dict(zip(frames["path"].astype(str), frames["frame"].astype(np.int64), strict=True))
    absolute = {os.path.abspath(p): f for p, f in exact.items()}
    stems = pd.Series(frames["frame"].to_numpy(np.int64), index=[Path(p).stem for p in frames["path"].astype(str)])
    unique_stems = stems[~stems.index.duplicated(keep=False)].to_dict()
    found = np.empty(len(distinct), dtype=np.int64)
    unknown = []
    for i, p in enumerate(distinct):
        f = exact.get(p)
        f = absolute.get(os.path.abspath(p)) if f is None else f
        f = unique_stems.get(Path(p).stem) if f is None else f
        if f is None:
            unknown.append(p)
        else:
            found[i] = f
    if unknown:
        raise EpeflowError(
            f"{len(unknown)} image path(s) are not frames of {manifest}: {', '.join(unknown[:3])}; "
            "import with the manifest of the dataset these files were made from"
        )
    return found[inverse.reshape(-1)]


def export_crops(crops: PathLike, manifest: PathLike, out_csv: PathLike, out_npz: PathLike) -> Path:
    """crops.zarr + manifest -> crop csv (frame paths from the manifest) + feature npz `crops`."""
    store = CropStore(crops)
    frames = read_frames(manifest)
    if len(store) and store.frame.max() >= len(frames):
        raise EpeflowError(f"{crops} refers to frame {store.frame.max()} but {manifest} has {len(frames)} frames")
    paths = frames["path"].to_numpy(dtype=object)[store.frame]
    features = np.empty((len(store), store.dim), dtype=np.float16)
    for start, block in store.iter_chunks(store.chunk_rows, dtype=np.float16):
        features[start : start + len(block)] = block
    write_crop_csv(out_csv, paths, store.box)
    return write_npz(out_npz, attrs={**store.attrs, "chunk_rows": store.chunk_rows}, crops=features)


def _crop_attrs(boxes: np.ndarray, frame: np.ndarray, num_frames: int, source: str) -> dict[str, Any]:
    """Settings of reference crops, as far as the files tell (mean/std and seed are not recorded)."""
    sizes = np.unique(np.concatenate([boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]]))
    counts = np.unique(np.bincount(frame)[np.unique(frame)]) if len(frame) else np.array([0])
    return {
        "mean": None,
        "std": None,
        "crop_size": int(sizes[0]) if len(sizes) == 1 else None,
        "per_image": int(counts[0]) if len(counts) == 1 else None,
        "seed": None,
        "padding": "none",
        "feature": FEATURE_NAME,
        "random_weights": False,
        "num_frames": num_frames,
        "provenance": stamp(False, imported_from=source),
    }


def import_crops(
    crop_csv: PathLike, features_npz: PathLike, manifest: PathLike, out: PathLike, chunk_rows: int = 4096
) -> None:
    """crop csv + feature npz (+ the dataset's manifest) -> crops.zarr."""
    paths, boxes = read_crop_csv(crop_csv)
    arrays, attrs = read_npz(features_npz, ["crops"])
    features = arrays["crops"]
    if features.ndim != 2 or features.shape[1] != FEATURE_DIM:
        raise EpeflowError(f"{features_npz}: `crops` has shape {features.shape}, expected (N, {FEATURE_DIM})")
    if len(features) != len(paths):
        raise EpeflowError(f"{features_npz} has {len(features)} features but {crop_csv} lists {len(paths)} crops")
    frames = read_frames(manifest)
    frame = frames_of_paths(paths, frames, manifest).astype(np.int32)
    if attrs is None:
        attrs = _crop_attrs(boxes, frame, len(frames), str(crop_csv))
    else:
        chunk_rows = int(attrs.pop("chunk_rows", chunk_rows))
        attrs.pop("complete", None)
    with atomic_path(out) as tmp:
        group, writer = create_crop_store(tmp, len(paths), chunk_rows, attrs)
        for start in range(0, len(paths), chunk_rows):
            stop = start + chunk_rows
            writer.append(
                frame=frame[start:stop], box=boxes[start:stop].astype(np.int32), features=features[start:stop]
            )
        mark_complete(group, writer)


def export_knn(knn: PathLike, out_npz: PathLike) -> Path:
    """knn.zarr -> npz `ind`, `dist`."""
    store = KnnStore(knn)
    ind, dist = store.read(0, len(store))
    return write_npz(out_npz, attrs={**store.attrs, "chunk_rows": store.chunk_rows}, ind=ind, dist=dist)


def import_knn(knn_npz: PathLike, out: PathLike, chunk_rows: int = 65536) -> None:
    """npz `ind`, `dist` -> knn.zarr."""
    arrays, attrs = read_npz(knn_npz, ["ind", "dist"])
    ind, dist = arrays["ind"].astype(np.int64), arrays["dist"].astype(np.float32)
    if ind.ndim != 2 or ind.shape != dist.shape:
        raise EpeflowError(f"{knn_npz}: `ind` {ind.shape} and `dist` {dist.shape} must be equal 2-D shapes")
    if attrs is None:
        attrs = {
            "k": ind.shape[1],
            "index": "flat",
            "metric": METRIC,
            "num_source": len(ind),
            "random_weights": False,
            "provenance": stamp(False, imported_from=str(knn_npz)),
        }
    else:
        chunk_rows = int(attrs.pop("chunk_rows", chunk_rows))
        attrs.pop("complete", None)
    with atomic_path(out) as tmp:
        group, writer = create_knn_store(tmp, len(ind), ind.shape[1], min(chunk_rows, max(1, len(ind))), attrs)
        writer.append(index=ind, dist=dist)
        writer.close()
        group.attrs["complete"] = True


def export_matches(
    matches: PathLike,
    src_crops: PathLike,
    src_manifest: PathLike,
    dst_crops: PathLike,
    dst_manifest: PathLike,
    out_csv: PathLike,
) -> None:
    """matches.parquet + both crop stores (boxes) + both manifests (frame paths) -> matched-crops csv."""
    df, boxes, _ = read_pair_boxes(matches, src_crops, dst_crops)
    src_paths = read_frames(src_manifest)["path"].to_numpy(dtype=object)
    dst_paths = read_frames(dst_manifest)["path"].to_numpy(dtype=object)
    sides = ((boxes.src_frame, src_paths, src_manifest), (boxes.dst_frame, dst_paths, dst_manifest))
    for frame, paths, manifest in sides:
        if len(frame) and frame.max() >= len(paths):
            raise EpeflowError(f"{matches} refers to frame {frame.max()} but {manifest} has {len(paths)} frames")
    write_matched_csv(out_csv, src_paths[boxes.src_frame], boxes.src_box, dst_paths[boxes.dst_frame], boxes.dst_box)


def crop_ids(frame: np.ndarray, boxes: np.ndarray, store: CropStore, source: PathLike) -> np.ndarray:
    """Crop ids of (frame, box) rows in a crop store (the first crop when a box repeats); int64 (N,)."""
    keys = ["frame", *BOX]
    table = pd.DataFrame(np.column_stack([store.frame, store.box]).astype(np.int64), columns=keys)
    table["crop"] = np.arange(len(store), dtype=np.int64)
    table = table.drop_duplicates(keys, keep="first")
    rows = pd.DataFrame(np.column_stack([frame, boxes]).astype(np.int64), columns=keys)
    merged = rows.merge(table, on=keys, how="left", sort=False)
    if merged["crop"].isna().any():
        i = int(np.flatnonzero(merged["crop"].isna().to_numpy())[0])
        raise EpeflowError(
            f"{source} row {i}: crop {boxes[i].tolist()} of frame {frame[i]} is not in {store.path}; "
            "import the crops these matches were made from first"
        )
    return merged["crop"].to_numpy(np.int64)


def import_matches(
    matched_csv: PathLike,
    knn: PathLike,
    src_crops: PathLike,
    src_manifest: PathLike,
    dst_crops: PathLike,
    dst_manifest: PathLike,
    out: PathLike,
    max_dist: float | None = None,
) -> pd.DataFrame:
    """matched-crops csv (+ the crop stores, manifests and knn.zarr it came from) -> matches.parquet.

    Crop ids come from (frame, box) in the crop stores; the distance from the k-NN store.
    """
    df = read_matched_csv(matched_csv)
    knn_store, src_store, dst_store = KnnStore(knn), CropStore(src_crops), CropStore(dst_crops)
    src_frame = frames_of_paths(df["src_path"].to_numpy(), read_frames(src_manifest), src_manifest)
    dst_frame = frames_of_paths(df["dst_path"].to_numpy(), read_frames(dst_manifest), dst_manifest)
    src_boxes = df[[f"src_{b}" for b in BOX]].to_numpy(np.int64)
    dst_boxes = df[[f"dst_{b}" for b in BOX]].to_numpy(np.int64)
    src = crop_ids(src_frame, src_boxes, src_store, matched_csv)
    dst = crop_ids(dst_frame, dst_boxes, dst_store, matched_csv)
    index, dist = knn_store.read(0, len(knn_store))
    if len(src) and src.max() >= len(index):
        raise EpeflowError(f"{knn} has {len(index)} rows but the matches use source crop {src.max()}")
    hit = index[src] == dst[:, None]  # (N, k)
    if not hit.any(axis=1).all():
        i = int(np.flatnonzero(~hit.any(axis=1))[0])
        raise EpeflowError(f"{matched_csv} row {i}: pair ({src[i]}, {dst[i]}) is not among the k-NN in {knn}")
    rank = hit.argmax(axis=1)
    cols = {"src_crop": src, "dst_crop": dst, "dist": dist[src, rank]}
    matches = pd.DataFrame({name: np.asarray(cols[name]).astype(dtype) for name, dtype in MATCH_COLUMNS.items()})
    random_weights = bool(knn_store.random_weights or src_store.random_weights or dst_store.random_weights)
    write_matches(
        out,
        matches,
        {
            "max_dist": max_dist,
            "k": knn_store.k,
            "num_source_crops": len(src_store),
            "num_target_crops": len(dst_store),
            "imported_from": str(matched_csv),
            "random_weights": random_weights,
            "provenance": stamp(random_weights),
        },
    )
    return matches


def export_weights(weights: PathLike, out_npz: PathLike) -> Path:
    """weights.parquet -> npz `w` (N, 1) float64."""
    w, meta = read_weights(weights)
    return write_npz(out_npz, attrs=meta, w=w.reshape(-1, 1))


def import_weights(weights_npz: PathLike, out: PathLike) -> None:
    """npz `w` -> weights.parquet."""
    arrays, meta = read_npz(weights_npz, ["w"])
    w = arrays["w"].astype(np.float64).reshape(-1)
    if meta is None:
        meta = {"random_weights": False, "provenance": stamp(False, imported_from=str(weights_npz))}
    write_weights(out, w, meta)


def export_filelist(
    manifest: PathLike,
    out: PathLike,
    columns: Sequence[str] | None = None,
    labels_dir: PathLike | None = None,
    split: str = "all",
) -> int:
    """An EPE file list (`image,robust_label,gbuffer,gt_label` for synthetic datasets, `image,robust_label`
    for real ones, or the given columns); robust labels from `labels_dir/<id>.png` when given."""
    meta = read_manifest_meta(manifest)
    present = manifest_columns(manifest)
    frames = read_frames(manifest, extra=[c for c in ("split", *FILELIST_COLUMNS.values()) if c in present])
    if columns is None:
        columns = list(FILELIST_COLUMNS) if meta.get("role") == "synthetic" else ["image", "robust_label"]
    unknown = [c for c in columns if c not in FILELIST_COLUMNS]
    if unknown:
        raise EpeflowError(
            f"--columns: unknown column(s) {', '.join(unknown)} (choose from {', '.join(FILELIST_COLUMNS)})"
        )
    if split != "all":
        frames = frames[frames["split"] == split]
    values = []
    for name in columns:
        if name == "robust_label" and labels_dir is not None:
            col = pd.Series([str(Path(labels_dir) / f"{i}.png") for i in frames["id"]], index=frames.index)
        else:
            key = FILELIST_COLUMNS[name]
            col = frames[key] if key in frames.columns else pd.Series(None, index=frames.index, dtype=object)
        missing = col.isna() | (col.astype(str) == "")
        if missing.any():
            first = frames.loc[missing].iloc[0]
            hint = " (pass --labels-dir results/datasets/<ds>/labels)" if name == "robust_label" else ""
            raise EpeflowError(
                f"{manifest}: frame {first['id']} has no {name} path{hint}; or leave `{name}` out of --columns"
            )
        values.append(col.astype(str).tolist())
    lines = [",".join(row) for row in zip(*values, strict=True)]
    with atomic_path(out) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines))
    return len(lines)

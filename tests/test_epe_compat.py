import csv

import faiss
import numpy as np
import pandas as pd
import pytest
from crop_fixtures import make_crop_store, make_dataset

from epeflow.artifacts.crops import CropStore
from epeflow.artifacts.knn import KnnStore
from epeflow.epe import formats as epe
from epeflow.errors import EpeflowError
from epeflow.io import read_table, write_table
from epeflow.matching.coverage_weights import run_weights
from epeflow.matching.filter import run_filter
from epeflow.matching.knn import run_knn

# ---- the reference scripts, re-implemented from their definitions (no epeflow code) ----------------------


def ref_find_knn(src_npz, dst_npz, k):
    ref = np.load(src_npz)["crops"].astype(np.float32)
    ref = ref / np.sqrt(np.sum(np.square(ref), axis=1, keepdims=True))
    nn = np.load(dst_npz)["crops"].astype(np.float32)
    nn = nn / np.sqrt(np.sum(np.square(nn), axis=1, keepdims=True))
    index = faiss.IndexFlatL2(ref.shape[1])
    index.add(nn)
    dist, ind = index.search(ref, k)
    return ind, dist


def ref_load_crops(path):
    with open(path) as f:
        return [(r["path"], int(r["r0"]), int(r["r1"]), int(r["c0"]), int(r["c1"])) for r in csv.DictReader(f)]


def ref_filter(knn_npz, src_csv, dst_csv, max_dist, out):
    data = np.load(knn_npz)
    src_all, dst_all = ref_load_crops(src_csv), ref_load_crops(dst_csv)
    src_ids, knn = np.nonzero(data["dist"] < max_dist)
    pairs = [(src_all[int(s)], dst_all[int(data["ind"][int(s), int(r)])]) for s, r in zip(src_ids, knn, strict=True)]
    with open(out, "w", newline="") as f:
        names = ["src_path", "src_r0", "src_r1", "src_c0", "src_c1", "dst_path", "dst_r0", "dst_r1", "dst_c0", "dst_c1"]
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        for s, d in pairs:
            writer.writerow(dict(zip(names, [*s, *d], strict=True)))


def ref_compute_weights(matched_csv, height, width):
    with open(matched_csv) as f:
        src = [(int(r["src_r0"]), int(r["src_r1"]), int(r["src_c0"]), int(r["src_c1"])) for r in csv.DictReader(f)]
    d = np.zeros((height, width), dtype=np.int32)
    for r0, r1, c0, c1 in src:
        d[r0:r1, c0:c1] += 1
    w = np.zeros((len(src), 1))
    for i, (r0, r1, c0, c1) in enumerate(src):
        w[i, 0] = np.mean(d[r0:r1, c0:c1])
    return np.max(d) / w


def ref_crop_csv(path, crops):
    with open(path, "w") as log:
        log.write("id,path,r0,r1,c0,c1\n")
        for i, (p, r0, r1, c0, c1) in enumerate(crops):
            log.write(f"{i},{p},{r0},{r1},{c0},{c1}\n")


# ---- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture
def reference_files(tmp_path):
    """Files as the reference's collect_crops.py would leave them for two datasets."""
    rng = np.random.default_rng(0)
    files = {}
    for name, n, seed in (("src", 40, 1), ("dst", 30, 2)):
        r = np.random.default_rng(seed)
        r0, c0 = r.integers(0, 30, n), r.integers(0, 50, n)
        crops = [(f"/data/{name}/img_{i // 5:03d}.png", r0[i], r0[i] + 16, c0[i], c0[i] + 16) for i in range(n)]
        ref_crop_csv(tmp_path / f"crop_{name}.csv", crops)
        features = np.abs(rng.standard_normal((n, 512)) + (seed - 1.5)).astype(np.float16)
        np.savez_compressed(tmp_path / f"crop_{name}", crops=features)
        files[name] = (tmp_path / f"crop_{name}.csv", tmp_path / f"crop_{name}.npz")
    return files


# ---- drop-in commands -------------------------------------------------------------------------------------


def test_find_knn_gives_the_references_file(tmp_path, reference_files):
    src_npz, dst_npz = reference_files["src"][1], reference_files["dst"][1]
    written = epe.find_knn_files(src_npz, dst_npz, tmp_path / "knn", k=4)
    assert written == tmp_path / "knn.npz"  # .npz appended, as np.savez_compressed does
    with np.load(written) as data:
        assert sorted(data.files) == ["dist", "ind"]
        ind, dist = ref_find_knn(src_npz, dst_npz, 4)
        np.testing.assert_array_equal(data["ind"], ind)
        np.testing.assert_array_equal(data["dist"], dist)
        assert data["ind"].dtype == np.int64 and data["dist"].dtype == np.float32


def test_filter_writes_the_same_bytes_as_the_reference(tmp_path, reference_files):
    (src_csv, src_npz), (dst_csv, dst_npz) = reference_files["src"], reference_files["dst"]
    knn = epe.find_knn_files(src_npz, dst_npz, tmp_path / "knn.npz", k=5)
    threshold = float(np.median(np.load(knn)["dist"]))
    n = epe.filter_files(knn, src_csv, dst_csv, threshold, tmp_path / "ours.csv")
    ref_filter(knn, src_csv, dst_csv, threshold, tmp_path / "ref.csv")
    assert n > 0
    assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "ref.csv").read_bytes()


def test_compute_weights_equals_the_reference(tmp_path, reference_files):
    (src_csv, src_npz), (dst_csv, dst_npz) = reference_files["src"], reference_files["dst"]
    knn = epe.find_knn_files(src_npz, dst_npz, tmp_path / "knn.npz", k=3)
    epe.filter_files(knn, src_csv, dst_csv, 4.0, tmp_path / "matched.csv")
    out = epe.compute_weights_file(tmp_path / "matched.csv", 46, 66, tmp_path / "w.npz")
    with np.load(out) as data:
        assert data.files == ["w"] and data["w"].shape == (120, 1) and data["w"].dtype == np.float64
        np.testing.assert_array_equal(data["w"], ref_compute_weights(tmp_path / "matched.csv", 46, 66))


def test_bad_reference_files_are_errors(tmp_path, reference_files):
    np.savez(tmp_path / "other.npz", features=np.zeros((2, 512)))
    with pytest.raises(EpeflowError, match=r"other\.npz has no key\(s\) crops"):
        epe.find_knn_files(reference_files["src"][1], tmp_path / "other.npz", tmp_path / "k")
    with pytest.raises(EpeflowError, match=r"missing\.npz does not exist"):
        epe.find_knn_files(reference_files["src"][1], tmp_path / "missing.npz", tmp_path / "k")
    (tmp_path / "bad.csv").write_text("id,path,r0,r1\n0,a.png,1,2\n")
    with pytest.raises(EpeflowError, match=r"bad\.csv lacks column\(s\) c0, c1"):
        epe.read_crop_csv(tmp_path / "bad.csv")


# ---- reference files <-> our stores ----------------------------------------------------------------------


@pytest.fixture
def pipeline(tmp_path):
    """Our stores for two tiny datasets: manifests, crops, knn, matches, weights."""
    out = {}
    for name, sizes, seed in (("syn", [(40, 48)] * 3 + [(32, 40)] * 2, 1), ("real", [(40, 48)] * 4, 2)):
        manifest = make_dataset(tmp_path, name, sizes, seed=seed, role="synthetic" if name == "syn" else "real")
        rng = np.random.default_rng(seed)
        frame = np.repeat(np.arange(len(sizes)), 3)
        heights = np.array([h for h, _ in sizes])[frame]
        widths = np.array([w for _, w in sizes])[frame]
        r0, c0 = rng.integers(0, heights - 16 + 1), rng.integers(0, widths - 16 + 1)
        box = np.stack([r0, r0 + 16, c0, c0 + 16], axis=1)
        features = np.abs(rng.standard_normal((len(frame), 512)))
        crops = make_crop_store(
            tmp_path / f"{name}.zarr", frame, box, features, chunk_rows=4, crop_size=16, num_frames=len(sizes)
        )
        out[name] = (manifest, crops)
    knn = tmp_path / "knn.zarr"
    run_knn(out["syn"][1], out["real"][1], knn, {"k": 3, "chunk_size": 4})
    matches = tmp_path / "matches.parquet"
    run_filter(knn, out["syn"][1], out["real"][1], matches, 4.0)
    weights = tmp_path / "weights.parquet"
    run_weights(matches, out["syn"][1], out["syn"][0], weights)
    return {**out, "knn": knn, "matches": matches, "weights": weights, "root": tmp_path}


def _same_store(a, b):
    assert a.attrs == b.attrs
    np.testing.assert_array_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.box, b.box)
    np.testing.assert_array_equal(a.features[:], b.features[:])
    assert a.features.chunks == b.features.chunks


def test_crops_round_trip(pipeline):
    root = pipeline["root"]
    manifest, crops = pipeline["syn"]
    epe.export_crops(crops, manifest, root / "crop_syn.csv", root / "crop_syn.npz")
    paths, boxes = epe.read_crop_csv(root / "crop_syn.csv")
    assert (root / "crop_syn.csv").read_text().splitlines()[0] == "id,path,r0,r1,c0,c1"
    store = CropStore(crops)
    np.testing.assert_array_equal(boxes, store.box)
    assert paths[0] == read_table(manifest)[0]["path"][0]
    epe.import_crops(root / "crop_syn.csv", root / "crop_syn.npz", manifest, root / "back.zarr")
    _same_store(store, CropStore(root / "back.zarr"))


def test_crops_from_reference_files_without_our_attrs(pipeline):
    root = pipeline["root"]
    manifest, crops = pipeline["syn"]
    store = CropStore(crops)
    frame_paths = read_table(manifest)[0]["path"]
    # the reference wrote paths relative to somewhere else: matched by unique file stem
    ref_crop_csv(
        root / "ref.csv",
        [
            (f"elsewhere/{frame_paths[f].rsplit('/', 1)[1]}", *b)
            for f, b in zip(store.frame, store.box.tolist(), strict=True)
        ],
    )
    np.savez_compressed(root / "ref.npz", crops=store.features[:])
    epe.import_crops(root / "ref.csv", root / "ref.npz", manifest, root / "imported.zarr")
    imported = CropStore(root / "imported.zarr")
    np.testing.assert_array_equal(imported.frame, store.frame)
    np.testing.assert_array_equal(imported.features[:], store.features[:])
    assert imported.attrs["crop_size"] == 16 and imported.attrs["per_image"] == 3 and imported.attrs["mean"] is None
    ref_crop_csv(root / "bad.csv", [("nowhere/x.png", 0, 16, 0, 16)] * len(store))
    with pytest.raises(EpeflowError, match=r"1 image path\(s\) are not frames of .*: nowhere/x\.png"):
        epe.import_crops(root / "bad.csv", root / "ref.npz", manifest, root / "bad.zarr")


def test_knn_round_trip(pipeline):
    root = pipeline["root"]
    npz = epe.export_knn(pipeline["knn"], root / "knn_out")
    assert npz.name == "knn_out.npz"
    with np.load(npz) as data:
        assert {"ind", "dist"} <= set(data.files)
    epe.import_knn(npz, root / "knn_back.zarr")
    a, b = KnnStore(pipeline["knn"]), KnnStore(root / "knn_back.zarr")
    assert a.attrs == b.attrs and a.index.chunks == b.index.chunks
    np.testing.assert_array_equal(a.index[:], b.index[:])
    np.testing.assert_array_equal(a.dist[:], b.dist[:])


def test_matches_round_trip(pipeline):
    root = pipeline["root"]
    (src_manifest, src_crops), (dst_manifest, dst_crops) = pipeline["syn"], pipeline["real"]
    epe.export_matches(pipeline["matches"], src_crops, src_manifest, dst_crops, dst_manifest, root / "matched.csv")
    lines = (root / "matched.csv").read_bytes().split(b"\r\n")  # csv.DictWriter's line ends
    assert lines[0] == b"src_path,src_r0,src_r1,src_c0,src_c1,dst_path,dst_r0,dst_r1,dst_c0,dst_c1"
    epe.import_matches(
        root / "matched.csv",
        pipeline["knn"],
        src_crops,
        src_manifest,
        dst_crops,
        dst_manifest,
        root / "back.parquet",
        max_dist=4.0,
    )
    original, _ = read_table(pipeline["matches"])
    back, meta = read_table(root / "back.parquet")
    pd.testing.assert_frame_equal(back, original)
    assert meta["max_dist"] == 4.0 and meta["k"] == 3


def test_matched_csv_of_our_pipeline_equals_the_reference_filter_on_exported_files(pipeline):
    root = pipeline["root"]
    (src_manifest, src_crops), (dst_manifest, dst_crops) = pipeline["syn"], pipeline["real"]
    epe.export_crops(src_crops, src_manifest, root / "s.csv", root / "s.npz")
    epe.export_crops(dst_crops, dst_manifest, root / "d.csv", root / "d.npz")
    epe.export_knn(pipeline["knn"], root / "k.npz")
    ref_filter(root / "k.npz", root / "s.csv", root / "d.csv", 4.0, root / "ref.csv")
    epe.export_matches(pipeline["matches"], src_crops, src_manifest, dst_crops, dst_manifest, root / "ours.csv")
    assert (root / "ours.csv").read_bytes() == (root / "ref.csv").read_bytes()


def test_weights_round_trip_and_reference_values(pipeline):
    root = pipeline["root"]
    npz = epe.export_weights(pipeline["weights"], root / "w.npz")
    with np.load(npz) as data:
        assert data["w"].shape[1] == 1
    epe.import_weights(npz, root / "back.parquet")
    a, meta_a = read_table(pipeline["weights"])
    b, meta_b = read_table(root / "back.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert meta_a == meta_b


def test_filelist_export(pipeline):
    root = pipeline["root"]
    manifest = pipeline["syn"][0]
    df, meta = read_table(manifest)
    labels = root / "labels"
    n = epe.export_filelist(manifest, root / "files.txt", ["image", "robust_label"], labels_dir=labels)
    lines = (root / "files.txt").read_text().splitlines()
    assert n == len(df) == len(lines)
    assert lines[0] == f"{df['path'][0]},{labels / (df['id'][0] + '.png')}"
    with pytest.raises(EpeflowError, match=r"has no gbuffer path"):
        epe.export_filelist(manifest, root / "f.txt", labels_dir=labels)  # synthetic: all four columns
    df.loc[:, "gbuffer_path"] = "g.npz"
    df.loc[:, "gt_label_path"] = "gt.png"
    write_table(manifest, df, meta)
    epe.export_filelist(manifest, root / "f.txt", labels_dir=labels, split="train")
    assert (root / "f.txt").read_text().splitlines()[1].endswith(",g.npz,gt.png")
    with pytest.raises(EpeflowError, match="unknown column"):
        epe.export_filelist(manifest, root / "f.txt", ["img"])

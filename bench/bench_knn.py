"""Issue 4: k-NN of crop features, ours (`matching.knn`, `epeflow knn`) vs find_knn.py; and peak memory.

The reference (epe/matching/feature_based/find_knn.py) loads both feature arrays whole from npz, converts
them to float32, L2-normalises them, adds the target to one faiss IndexFlatL2 and searches all source
crops at once. Ours streams both stores in chunks (exact: faiss.knn per block pair merged in a
ResultHeap; or an IVF index trained on a sample), so memory does not grow with the stores.

Three measurements:
1. exact k-NN, in memory, ours (`knn_search`, flat) vs the one-shot IndexFlatL2, at a CPU-feasible size
   (the issue's 500K x 50K x 512 is a GPU size); same neighbours (ties aside) and distances;
2. our IVF index: recall@10 against the exact neighbours, and its speed-up;
3. peak RSS of `epeflow knn` as a subprocess on a source crop store 5x larger on disk than a memory budget
   (must stay under it), vs the reference script on the same features (npz) as a subprocess; and peak RSS
   of `epeflow crops` at two frame counts (must not grow with the frames).
Features are synthetic: non-negative, clustered (as relu5_3 features of similar crops are), float16.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from bench.harness import (
    best_time,
    best_times,
    dir_bytes,
    fmt_s,
    peak_rss_of,
    ratio,
    remove_scratch,
    scratch_dir,
    set_threads,
    write_frames,
    write_result,
)

DIM, K = 512, 10
MIB = 2**20


# ----------------------------------------------------------------------------------------------- data
def clustered_features(n: int, seed: int, clusters: int = 256, spread: float = 0.6) -> np.ndarray:
    """(n, 512) float16, non-negative, around `clusters` shared centres (the same centres for every seed)."""
    centres = np.abs(np.random.default_rng(12345).standard_normal((clusters, DIM), dtype=np.float32))
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, DIM), dtype=np.float32)
    return np.abs(x).astype(np.float16)


def write_store(path: Path, rows: int, seed: int, chunk: int = 8192) -> Path:
    """A complete crops.zarr of `rows` synthetic crops, generated chunk by chunk (flat memory)."""
    from epeflow.artifacts.crops import create_crop_store, mark_complete

    attrs = {"mean": [0.5] * 3, "std": [0.25] * 3, "crop_size": 196, "per_image": 15, "seed": 0,
             "padding": "none", "feature": "vgg16_relu5_3", "random_weights": True,
             "num_frames": -(-rows // 15), "chunk_size": chunk}
    group, writer = create_crop_store(path, rows, chunk, attrs)
    for i, start in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - start)
        box = np.tile(np.array([[0, 196, 0, 196]], np.int32), (n, 1))
        writer.append(frame=(np.arange(start, start + n) // 15).astype(np.int32), box=box,
                      features=clustered_features(n, seed * 100_003 + i))
    mark_complete(group, writer)
    return path


def store_to_npz(store_path: Path, npz_path: Path) -> None:
    """The store's features as collect_crops.py's npz (`crops`, float16), written without holding them in
    memory (stored, not deflated: np.savez_compressed of gigabytes takes minutes and loads the same)."""
    from epeflow.artifacts.crops import CropStore

    store = CropStore(store_path)
    npy = npz_path.with_suffix(".crops.npy")
    arr = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float16, shape=(len(store), store.dim))
    for start, block in store.iter_chunks(65536, np.float16):
        arr[start : start + len(block)] = block
    arr.flush()
    del arr
    with zipfile.ZipFile(npz_path, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        z.write(npy, "crops.npy")
    npy.unlink()


def mem_available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


# ------------------------------------------------------------------------------------------ reference
def reference_knn(src: np.ndarray, dst: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """find_knn.py between its file reads and writes, as written: (D, I)."""
    import faiss

    features_ref = src.astype(np.float32)
    features_ref = features_ref / np.sqrt(np.sum(np.square(features_ref), axis=1, keepdims=True))
    dim = features_ref.shape[1]
    features_nn = dst.astype(np.float32)
    features_nn = features_nn / np.sqrt(np.sum(np.square(features_nn), axis=1, keepdims=True))
    assert features_nn.shape[1] == dim
    nn_index = faiss.IndexFlatL2(dim)
    nn_index.add(features_nn)
    return nn_index.search(features_ref, k)


def reference_script(file_src: str, file_dst: str, out: str, k: int, threads: int) -> None:
    """find_knn.py's __main__ (run as a subprocess for its peak RSS)."""
    import faiss

    faiss.omp_set_num_threads(threads)
    d, i = reference_knn(np.load(file_src)["crops"], np.load(file_dst)["crops"], k)
    np.savez_compressed(out, ind=i, dist=d)


# ------------------------------------------------------------------------------------------- checks
def check_same_neighbours(ours_d, ours_i, ref_d, ref_i, what: str) -> float:
    """Exact k-NN on both sides: distances equal to float32 accuracy; indices equal except where two
    neighbours are tied (then either order is right). Returns the fraction of identical indices."""
    if not np.allclose(ours_d, ref_d, rtol=1e-4, atol=1e-5):
        worst = float(np.abs(ours_d - ref_d).max())
        raise AssertionError(f"{what}: k-NN distances differ from the reference (max difference {worst:.3g})")
    differ = ours_i != ref_i
    rows, cols = np.nonzero(differ)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        hits = np.flatnonzero(ref_i[r] == ours_i[r, c])
        # In the reference's list at the same distance (order of ties), or tied with its last neighbour.
        expected = ref_d[r, hits[0]] if hits.size else ref_d[r, -1]
        if abs(float(expected) - float(ours_d[r, c])) > 1e-5:
            raise AssertionError(f"{what}: row {r} slot {c}: neighbour {ours_i[r, c]} at distance {ours_d[r, c]} "
                                 "is not one of the reference's neighbours at that distance")
    return float(1.0 - differ.mean())


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(a, b)) for a, b in zip(found, exact, strict=True))
    return hits / exact.size


# ----------------------------------------------------------------------------------------- part 1 + 2
def in_memory(nq: int, nd: int) -> dict:
    from epeflow.matching.knn import KnnSettings, knn_search

    src, dst = clustered_features(nq, 1), clustered_features(nd, 2)
    flat = KnnSettings(k=K, index="flat", device="cpu")
    streamed = KnnSettings(k=K, index="flat", device="cpu", chunk_size=8192)
    times = best_times({
        "ours": lambda: knn_search(src, dst, flat),
        "reference": lambda: reference_knn(src, dst, K),
        "streamed": lambda: knn_search(src, dst, streamed),
    }, repeat=3, slow=60.0)
    ours_s, reference_s, streamed_s = times["ours"], times["reference"], times["streamed"]
    ours_d, ours_i = knn_search(src, dst, flat)
    streamed_d, streamed_i = knn_search(src, dst, streamed)
    ref_d, ref_i = reference_knn(src, dst, K)
    same = check_same_neighbours(ours_d, ours_i, ref_d, ref_i, "exact k-NN")
    same_streamed = check_same_neighbours(streamed_d, streamed_i, ref_d, ref_i, "exact k-NN in 8192-row chunks")

    ivf = KnnSettings(k=K, index="ivf", device="cpu")
    ivf_s = best_time(lambda: knn_search(src, dst, ivf), repeat=1)
    _, ivf_i = knn_search(src, dst, ivf)
    # Building (k-means training + adding) is paid once per run; searching grows with the source crops.
    from epeflow.matching.knn import array_source, build_ivf_index, choose_nlist, l2_normalize, normalized

    database = normalized(array_source(dst, ivf.chunk_size))
    start = time.perf_counter()
    index = build_ivf_index(database, nd, DIM, ivf, None)
    build_s = time.perf_counter() - start
    queries = l2_normalize(src)
    search_s = best_time(lambda: index.search(queries, K), repeat=3)

    return {
        "queries": nq, "database": nd, "dim": DIM, "k": K,
        "ours_flat_s": ours_s, "ours_flat_8192_chunks_s": streamed_s, "reference_flat_s": reference_s,
        "speedup_flat": ratio(reference_s, ours_s), "identical_index_fraction": same,
        "identical_index_fraction_8192_chunks": same_streamed,
        "ivf": {"nlist": choose_nlist(nd, None), "nprobe": ivf.nprobe, "seconds_incl_training": ivf_s,
                "build_s": build_s, "search_s": search_s,
                "recall_at_10": recall_at_k(ivf_i, ref_i), "speedup_vs_ours_flat": ratio(ours_s, ivf_s),
                "speedup_vs_reference": ratio(reference_s, ivf_s),
                "search_only_speedup_vs_ours_flat": ratio(ours_s, search_s)},
    }


def gpu_issue_size(quick: bool) -> dict:
    """The issue's size, 500K x 50K x 512, exact, on a GPU when this faiss has GPU support."""
    import faiss

    from epeflow.matching.knn import KnnSettings, knn_search

    if not (hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0):
        return {"skipped": "faiss has no GPU support or sees no GPU here (faiss-cpu); needs faiss-gpu + CUDA"}
    nq, nd = (5_000, 1_000) if quick else (500_000, 50_000)
    src, dst = clustered_features(nq, 5), clustered_features(nd, 6)
    settings = KnnSettings(k=K, index="flat", device="cuda")
    knn_search(src[:1000], dst, settings)  # warm-up: GPU resources, kernels
    seconds = best_time(lambda: knn_search(src, dst, settings), repeat=2)
    check = slice(0, 2000)  # spot check against the reference's CPU IndexFlatL2 on the first queries
    d, i = knn_search(src[check], dst, settings)
    ref_d, ref_i = reference_knn(src[check], dst, K)
    same = check_same_neighbours(d, i, ref_d, ref_i, "GPU exact k-NN")
    return {"queries": nq, "database": nd, "ours_gpu_s": seconds, "checked_queries": 2000,
            "identical_index_fraction_checked": same}


# --------------------------------------------------------------------------------------------- part 3
def knn_memory(root: Path, budget_mib: float, target_rows: int, threads: int, quick: bool) -> dict:
    """`epeflow knn` and find_knn.py as subprocesses on a source store of >= 5x `budget_mib` on disk."""
    from epeflow.artifacts.knn import KnnStore

    pilot_rows = 8192 if quick else 65536
    bytes_per_row = dir_bytes(write_store(root / "pilot.zarr", pilot_rows, 9)) / pilot_rows
    rows = int(math.ceil(5.05 * budget_mib * MIB / bytes_per_row))  # 1% over 5x: the pilot is an estimate
    start = time.perf_counter()
    big = write_store(root / "source.zarr", rows, 3)
    small = write_store(root / "target.zarr", target_rows, 4)
    write_s = time.perf_counter() - start
    on_disk = dir_bytes(big)
    epeflow = str(Path(sys.executable).parent / "epeflow")
    spec = {"k": K, "index": "flat", "device": "cpu", "chunk_size": 8192}
    cmd = [epeflow, "knn", str(big), str(small), str(root / "knn.zarr"), "--spec", json.dumps(spec),
           "--threads", str(threads)]
    ours_rss, ours_s = peak_rss_of(cmd)

    # The reference needs about 10 bytes a feature value at its peak (float16 + float32 + a float32 temporary).
    predicted_mib = rows * DIM * 10 / MIB
    ref_rows = rows if mem_available_mib() > 1.5 * predicted_mib + 2048 else None
    ref = {}
    if ref_rows is not None:
        store_to_npz(big, root / "crop_source.npz")
        store_to_npz(small, root / "crop_target.npz")
        ref_cmd = [sys.executable, "-m", "bench.bench_knn", "--reference-find-knn", str(root / "crop_source.npz"),
                   str(root / "crop_target.npz"), str(root / "knn_reference.npz"), "--k", str(K),
                   "--threads", str(threads)]
        ref_rss, ref_s = peak_rss_of(ref_cmd)
        knn = KnnStore(root / "knn.zarr")
        data = np.load(root / "knn_reference.npz")
        same = check_same_neighbours(knn.dist[:], knn.index[:], data["dist"], data["ind"], "epeflow knn")
        ref = {"reference_peak_rss_mib": ref_rss, "reference_s": ref_s, "identical_index_fraction": same}
    else:
        ref = {"reference_peak_rss_mib": None, "reference_skipped": f"needs ~{predicted_mib:.0f} MiB; "
               f"only {mem_available_mib():.0f} MiB available"}
    within = ours_rss <= budget_mib
    if not quick and not within:
        raise AssertionError(f"epeflow knn peaked at {ours_rss:.0f} MiB, over the {budget_mib} MiB budget")
    return {
        "budget_mib": budget_mib, "source_rows": rows, "target_rows": target_rows,
        "source_on_disk_mib": on_disk / MIB, "source_float16_mib": rows * DIM * 2 / MIB,
        "on_disk_over_budget": on_disk / MIB / budget_mib, "spec": spec, "threads": threads,
        "ours_peak_rss_mib": ours_rss, "ours_s": ours_s, "ours_within_budget": within,
        "reference_predicted_peak_mib": predicted_mib, "data_generation_s": write_s, **ref,
    }


def crops_memory(root: Path, counts: tuple[int, int], size: tuple[int, int], threads: int) -> dict:
    """Peak RSS of `epeflow crops` on `counts` frames (random VGG16 weights, 2 crops a frame)."""
    from epeflow.io import write_json

    epeflow = str(Path(sys.executable).parent / "epeflow")
    # Batches of 8 crops, full in both runs: the model's activations (which grow with the batch, not the
    # frames) are then the same, and any growth left would come from the frames.
    spec = {"per_image": 2, "size": 196, "padding": "none", "batch_size": 8, "num_workers": 2, "chunk_size": 4096}
    stats = root / "crop_stats.json"
    write_json(stats, {"mean": [0.45, 0.45, 0.45], "std": [0.25, 0.25, 0.25], "frames": 1})
    runs = []
    for n in counts:
        manifest = write_frames(root, n, size[0], size[1], seed=n, name=f"frames{n}")
        cmd = [epeflow, "crops", str(manifest), str(stats), str(root / f"crops{n}.zarr"), "--spec", json.dumps(spec),
               "--allow-random-weights", "--threads", str(threads)]
        rss, seconds = peak_rss_of(cmd)
        runs.append({"frames": n, "crops": n * spec["per_image"], "peak_rss_mib": rss, "seconds": seconds})
    return {"frame_size": list(size), "spec": spec, "runs": runs,
            "growth_mib": runs[-1]["peak_rss_mib"] - runs[0]["peak_rss_mib"],
            "reference_features_array_mib_at_25k_frames_x15": 25_000 * 15 * DIM * 2 / MIB}


# ------------------------------------------------------------------------------------------------ main
def main(quick: bool = False) -> None:
    threads = set_threads()
    root = scratch_dir("knn")
    nq, nd = (1_000, 4_000) if quick else (20_000, 40_000)
    memory = in_memory(nq, nd)
    budget = 384.0
    gpu = gpu_issue_size(quick)
    rss = knn_memory(root, 4.0 if quick else budget, 256 if quick else 1024, threads, quick)
    crops = crops_memory(root, (4, 8) if quick else (8, 32), (256, 320) if quick else (1052, 1914), threads)
    ivf = memory["ivf"]
    ref_rss = rss.get("reference_peak_rss_mib")
    summary = [
        {"what": f"exact k-NN {nq // 1000}K x {nd // 1000}K x 512, k=10, CPU (same neighbours, ties aside)",
         "ours": fmt_s(memory["ours_flat_s"]), "reference": fmt_s(memory["reference_flat_s"]),
         "ratio": f"{memory['speedup_flat']}x"},
        {"what": f"IVF (nlist {ivf['nlist']}, nprobe {ivf['nprobe']}) recall@10 {ivf['recall_at_10']:.3f} "
                 "vs exact, incl. training",
         "ours": fmt_s(ivf["seconds_incl_training"]), "reference": fmt_s(memory["reference_flat_s"]) + " (flat)",
         "ratio": f"{ivf['speedup_vs_reference']}x"},
        {"what": "IVF search alone (index built and trained once), vs our exact search",
         "ours": fmt_s(ivf["search_s"]), "reference": fmt_s(memory["ours_flat_s"]) + " (ours, flat)",
         "ratio": f"{ivf['search_only_speedup_vs_ours_flat']}x"},
        {"what": f"peak RSS, knn of {rss['source_rows'] / 1e6:.2f}M x {rss['target_rows']} crops "
                 f"({rss['source_on_disk_mib']:.0f} MiB on disk = {rss['on_disk_over_budget']:.1f}x a "
                 f"{rss['budget_mib']:.0f} MiB budget)",
         "ours": f"{rss['ours_peak_rss_mib']:.0f} MiB", "reference": f"{ref_rss:.0f} MiB" if ref_rss else "skipped",
         "ratio": f"{ref_rss / rss['ours_peak_rss_mib']:.1f}x less" if ref_rss else ""},
        {"what": f"peak RSS of epeflow crops, {crops['runs'][0]['frames']} vs {crops['runs'][-1]['frames']} frames",
         "ours": " / ".join(f"{r['peak_rss_mib']:.0f} MiB" for r in crops["runs"]),
         "reference": "grows with frames (features array held to the end)", "ratio": ""},
    ]
    if "ours_gpu_s" in gpu:
        summary.insert(3, {"what": f"exact k-NN {gpu['queries'] // 1000}K x {gpu['database'] // 1000}K x 512 on the "
                                   "GPU (faiss-gpu), the issue's size",
                           "ours": fmt_s(gpu["ours_gpu_s"]), "reference": "", "ratio": ""})
    write_result("knn", {
        "quick": quick,
        "in_memory": memory,
        "gpu_issue_size": gpu,
        "knn_peak_rss": rss,
        "crops_peak_rss": crops,
        "notes": "CPU sizes: the issue's 500K x 50K x 512 is for a GPU; features are synthetic clustered "
                 "non-negative float16; the reference's npz is written stored (not deflated); peak RSS is that "
                 "of the largest process (DataLoader workers of `epeflow crops` are separate processes)",
        "summary": summary,
    })
    remove_scratch("knn")


def cli() -> None:
    parser = argparse.ArgumentParser(description="k-NN benchmark; --reference-find-knn runs find_knn.py's body")
    parser.add_argument("--reference-find-knn", nargs=3, metavar=("SRC_NPZ", "DST_NPZ", "OUT_NPZ"))
    parser.add_argument("--k", type=int, default=K)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.reference_find_knn:
        reference_script(*args.reference_find_knn, args.k, args.threads)
    else:
        main(args.quick)


if __name__ == "__main__":
    cli()

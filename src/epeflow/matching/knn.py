"""k nearest target crops for every source crop, in feature space (the reference's find_knn, chunked).

Features are L2-normalised and compared by squared L2 distance, as the reference (so distances lie in
[0, 4] and `max_dist` keeps its meaning). The exact index streams both sides: queries a chunk at a time,
and for each query chunk the database a chunk at a time, merging per-chunk top-k lists in a faiss
ResultHeap, so neither side has to be in memory. IVF-Flat / IVF-PQ hold the (compressed) database in the
index and are trained on a seeded sample.

A *chunk source* is a zero-argument callable returning an iterator of (start, rows) blocks; it can be
called again to read the data again (a zarr store, or an array split in chunks).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from epeflow.artifacts.chunk_progress import ChunkProgress, store_digest
from epeflow.artifacts.crops import CropStore
from epeflow.artifacts.knn import METRIC, check_same_dim, create_knn_store, reopen_knn_store
from epeflow.config import property_defaults, settings_from_spec
from epeflow.errors import EpeflowError
from epeflow.io import PathLike, remove_stale_temporaries
from epeflow.log import progress
from epeflow.provenance import any_random, stamp

log = logging.getLogger(__name__)

ChunkSource = Callable[[], Iterator[tuple[int, np.ndarray]]]
KnnChunk = tuple[int, np.ndarray, np.ndarray]  # (start, dist (n, k) float32, index (n, k) int64)
INDEX_KINDS = ("flat", "ivf", "ivfpq")


_DEFAULTS = property_defaults("knn")


@dataclass(frozen=True)
class KnnSettings:
    """The experiment's `knn` config section; defaults are the schema's."""

    k: int = _DEFAULTS["k"]
    index: str = _DEFAULTS["index"]
    nlist: int | None = _DEFAULTS["nlist"]
    nprobe: int = _DEFAULTS["nprobe"]
    pq_m: int = _DEFAULTS["pq_m"]
    chunk_size: int = _DEFAULTS["chunk_size"]
    device: str = _DEFAULTS["device"]
    seed: int = _DEFAULTS["seed"]  # of the IVF training sample

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> KnnSettings:
        settings = settings_from_spec(cls, "knn", spec, ("knn",))
        return settings


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm, float32 (the reference). All-zero rows stay zero (the reference
    would give NaN), so they end up at distance 1 + |y|^2 from everything."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.sqrt(np.sum(np.square(x), axis=1, keepdims=True))  # (n, 1)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def array_source(x: np.ndarray, chunk_size: int) -> ChunkSource:
    """A chunk source over an in-memory array."""

    def chunks() -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, len(x), max(1, chunk_size)):
            yield start, x[start : start + chunk_size]

    return chunks


def normalized(source: ChunkSource) -> ChunkSource:
    return lambda: ((start, l2_normalize(block)) for start, block in source())


def gpu_resources(device: str) -> Any | None:
    """faiss GPU resources when `device` asks for (auto: allows) a GPU and faiss can use one, else None."""
    has_gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    if device == "cuda" and not has_gpu:
        raise EpeflowError(
            "config key `knn.device` is `cuda`, but this faiss has no GPU support or sees no GPU; "
            "install faiss-gpu or set `knn.device: auto` (or `cpu`)"
        )
    return faiss.StandardGpuResources() if has_gpu and device != "cpu" else None


def _block_knn(q: np.ndarray, x: np.ndarray, k: int, res: Any | None) -> tuple[np.ndarray, np.ndarray]:
    if res is not None:
        return faiss.knn_gpu(res, q, x, k)
    return faiss.knn(q, x, k)


def exact_knn(
    queries: ChunkSource, database: ChunkSource, k: int, res: Any | None = None, cache_database: bool = False
) -> Iterator[KnnChunk]:
    """Exact k-NN by squared L2, chunk by chunk on both sides (inputs already normalised).

    `cache_database` keeps the database chunks in memory (when it is one chunk anyway).
    """
    cached = list(database()) if cache_database else None
    for q_start, q in queries():
        q = np.ascontiguousarray(q, dtype=np.float32)
        heap = faiss.ResultHeap(len(q), k)
        for d_start, x in cached if cached is not None else database():
            x = np.ascontiguousarray(x, dtype=np.float32)
            dist, idx = _block_knn(q, x, min(k, len(x)), res)  # (nq, kk)
            heap.add_result(dist, np.where(idx >= 0, idx + d_start, -1))
        heap.finalize()
        yield q_start, heap.D, heap.I


def choose_nlist(n_db: int, nlist: int | None) -> int:
    """IVF cells: the configured number, or about 4*sqrt(n) kept to >= 39 training points a cell."""
    if nlist is not None:
        if nlist > n_db:
            raise EpeflowError(
                f"config key `knn.nlist`: {nlist} IVF cells for {n_db} target crops; use at most {n_db} "
                "(or null to choose automatically)"
            )
        return nlist
    return int(max(1, min(round(4 * math.sqrt(n_db)), n_db // 39)))


def training_sample(database: ChunkSource, n_db: int, size: int, seed: int) -> np.ndarray:
    """`size` database rows drawn without replacement (seeded), gathered in one pass; (size, d)."""
    picks = np.sort(np.random.default_rng(seed).choice(n_db, size=min(size, n_db), replace=False))
    parts = []
    for start, block in database():
        lo, hi = np.searchsorted(picks, [start, start + len(block)])
        parts.append(block[picks[lo:hi] - start])
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def build_ivf_index(database: ChunkSource, n_db: int, dim: int, settings: KnnSettings, res: Any | None) -> Any:
    """IVF-Flat or IVF-PQ index trained on a seeded sample and filled chunk by chunk."""
    nlist = choose_nlist(n_db, settings.nlist)
    quantizer = faiss.IndexFlatL2(dim)
    if settings.index == "ivfpq":
        if dim % settings.pq_m:
            raise EpeflowError(f"config key `knn.pq_m`: {settings.pq_m} does not divide the feature size {dim}")
        n_train = min(n_db, max(64 * nlist, 256 * 64))
        # PQ k-means wants >= 39 points a centroid: fewer bits on small sets (8 from ~10k points on)
        nbits = int(min(8, max(1, math.floor(math.log2(max(2.0, n_train / 39))))))
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, settings.pq_m, nbits)
        index.pq.cp.seed = settings.seed
    else:
        n_train = min(n_db, 64 * nlist)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist)
    index.cp.seed = settings.seed
    if res is not None:
        index = faiss.index_cpu_to_gpu(res, 0, index)
    sample = training_sample(database, n_db, n_train, settings.seed)
    log.info("training %s index: %d cells on %d of %d target crops", settings.index, nlist, len(sample), n_db)
    index.train(sample)
    for _, block in database():
        index.add(np.ascontiguousarray(block, dtype=np.float32))
    space = faiss.GpuParameterSpace() if res is not None else faiss.ParameterSpace()
    space.set_index_parameter(index, "nprobe", min(settings.nprobe, nlist))
    return index


def search_chunks(
    queries: ChunkSource, database: ChunkSource, n_db: int, dim: int, settings: KnnSettings
) -> Iterator[KnnChunk]:
    """k-NN of every query row among the database rows (both raw features; normalised here)."""
    if settings.k > n_db:
        raise EpeflowError(
            f"config key `knn.k`: {settings.k} neighbours asked but the target has only {n_db} crops; "
            "lower k or add target frames"
        )
    res = gpu_resources(settings.device)
    queries, database = normalized(queries), normalized(database)
    if settings.index == "flat":
        yield from exact_knn(queries, database, settings.k, res, cache_database=n_db <= settings.chunk_size)
        return
    index = build_ivf_index(database, n_db, dim, settings, res)
    for start, q in queries():
        dist, idx = index.search(np.ascontiguousarray(q, dtype=np.float32), settings.k)
        yield start, dist, idx


def knn_search(queries: np.ndarray, database: np.ndarray, settings: KnnSettings) -> tuple[np.ndarray, np.ndarray]:
    """In-memory convenience (tests, benchmarks): (dist (nq, k) float32, index (nq, k) int64)."""
    if queries.shape[1] != database.shape[1]:
        raise EpeflowError(f"feature sizes differ: queries {queries.shape[1]}, database {database.shape[1]}")
    chunks = list(
        search_chunks(
            array_source(queries, settings.chunk_size),
            array_source(database, settings.chunk_size),
            len(database),
            database.shape[1],
            settings,
        )
    )
    if not chunks:
        return np.zeros((0, settings.k), np.float32), np.zeros((0, settings.k), np.int64)
    return np.concatenate([c[1] for c in chunks]), np.concatenate([c[2] for c in chunks])


def run_knn(
    src_path: PathLike, dst_path: PathLike, out: PathLike, spec: Mapping[str, Any], threads: int = 1
) -> None:
    """`epeflow knn`: k nearest target crops of every source crop into knn.zarr (atomic)."""
    settings = KnnSettings.from_spec(spec)
    faiss.omp_set_num_threads(max(1, threads))
    src, dst = CropStore(src_path, dim=None), CropStore(dst_path, dim=None)
    check_same_dim(src, dst)
    chunk = settings.chunk_size
    random_weights = any_random(src.random_weights, dst.random_weights)
    attrs = {
        **{k: v for k, v in asdict(settings).items() if k != "chunk_size"},
        "metric": METRIC,
        "num_source": len(src),
        "num_target": len(dst),
        "source": str(src_path),
        "target": str(dst_path),
        "random_weights": random_weights,
        "provenance": stamp(random_weights),
    }
    log.info("k-NN (%s, k=%d) of %d source crops among %d target crops", settings.index, settings.k, len(src), len(dst))
    remove_stale_temporaries(Path(out).parent, Path(out).name)  # of writers before resumable k-NN
    rows_per_chunk = min(chunk, max(1, len(src)))
    fingerprint = {"settings": asdict(settings), "source": store_digest(src_path), "target": store_digest(dst_path),
                   "store": {k: v for k, v in attrs.items() if k != "provenance"}}
    job = ChunkProgress(out, fingerprint, "k-NN store")
    done = job.start()
    if done:
        group, writer = reopen_knn_store(job.store, min(len(src), done * rows_per_chunk))
    else:
        group, writer = create_knn_store(job.store, len(src), settings.k, rows_per_chunk, attrs)
    first = writer.written
    results = search_chunks(
        lambda: src.iter_chunks(chunk, first=first), lambda: dst.iter_chunks(chunk), len(dst), dst.dim, settings
    )
    n_chunks = -(-(len(src) - first) // chunk)
    missing = 0
    for _, dist, index in progress(results, "k-NN", total=n_chunks, unit="chunk"):
        missing += int((index < 0).sum())
        writer.append(index=index.astype(np.int64), dist=dist.astype(np.float32))
        job.mark_done(writer.written // rows_per_chunk)
    writer.close()
    group.attrs["complete"] = True
    job.finish()
    if missing:
        log.warning("%d neighbour slots are empty (index -1): raise `knn.nprobe` for the IVF index", missing)

import faiss
import numpy as np
import pytest

from epeflow.errors import EpeflowError
from epeflow.matching.knn import (
    KnnSettings,
    array_source,
    choose_nlist,
    exact_knn,
    knn_search,
    l2_normalize,
    normalized,
    training_sample,
)


def _brute_force(q, db, k):
    qn, dn = l2_normalize(q).astype(np.float64), l2_normalize(db).astype(np.float64)
    d = ((qn[:, None, :] - dn[None, :, :]) ** 2).sum(-1)  # (nq, ndb)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), order


def _clustered(n, dim, seed, centers=None):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, dim)) * 3 if centers is None else centers
    return (centers[rng.integers(0, len(centers), n)] + rng.standard_normal((n, dim))).astype(np.float32), centers


def test_normalisation_is_the_reference_formula_and_keeps_zero_rows():
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float16)
    ref = x.astype(np.float32)
    ref = ref / np.sqrt(np.sum(np.square(ref), axis=1, keepdims=True))
    np.testing.assert_array_equal(l2_normalize(x), ref)
    z = l2_normalize(np.zeros((2, 8), np.float32))
    assert np.isfinite(z).all() and (z == 0).all()


def test_exact_search_matches_brute_force():
    rng = np.random.default_rng(1)
    q, db = rng.standard_normal((50, 32)), rng.standard_normal((300, 32))
    dist, idx = knn_search(q, db, KnnSettings(k=4))
    ref_d, ref_i = _brute_force(q, db, 4)
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(dist, ref_d, atol=1e-5)
    assert dist.dtype == np.float32 and idx.dtype == np.int64


def test_chunked_search_equals_in_memory_search():
    rng = np.random.default_rng(2)
    q, db = rng.standard_normal((61, 16)).astype(np.float32), rng.standard_normal((203, 16)).astype(np.float32)
    d_mem, i_mem = knn_search(q, db, KnnSettings(k=6, chunk_size=10_000))
    for chunk in (5, 37):  # chunks smaller than k too
        d, i = knn_search(q, db, KnnSettings(k=6, chunk_size=chunk))
        np.testing.assert_array_equal(i, i_mem)
        np.testing.assert_allclose(d, d_mem, atol=1e-6)


def test_in_memory_search_is_faiss_flat_index_as_the_reference():
    rng = np.random.default_rng(3)
    q, db = rng.random((40, 64)).astype(np.float16), rng.random((90, 64)).astype(np.float16)
    index = faiss.IndexFlatL2(64)
    index.add(l2_normalize(db))
    ref_d, ref_i = index.search(l2_normalize(q), 5)
    d, i = knn_search(q, db, KnnSettings(k=5))
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_array_equal(d, ref_d)


def test_database_is_streamed_when_it_does_not_fit_one_chunk():
    rng = np.random.default_rng(4)
    q, db = rng.standard_normal((20, 8)).astype(np.float32), rng.standard_normal((50, 8)).astype(np.float32)
    reads = []

    def database():
        reads.append(1)
        yield from array_source(db, 16)()

    chunks = list(exact_knn(normalized(array_source(q, 7)), normalized(database), k=3))
    assert [s for s, _, _ in chunks] == [0, 7, 14] and len(reads) == 3  # once per query chunk
    np.testing.assert_array_equal(np.concatenate([c[2] for c in chunks]), _brute_force(q, db, 3)[1])


def test_ivf_with_all_cells_probed_is_exact_and_recall_is_high_on_clustered_data():
    db, centers = _clustered(2000, 32, seed=5)
    q, _ = _clustered(200, 32, seed=6, centers=centers)
    _, exact = knn_search(q, db, KnnSettings(k=5))
    nlist = choose_nlist(len(db), None)
    _, full = knn_search(q, db, KnnSettings(k=5, index="ivf", nprobe=nlist))
    np.testing.assert_array_equal(full, exact)
    _, approx = knn_search(q, db, KnnSettings(k=5, index="ivf", nprobe=4))
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(approx, exact, strict=True)])
    assert recall > 0.9
    _, pq = knn_search(q, db, KnnSettings(k=5, index="ivfpq", nprobe=nlist, pq_m=8))
    _, pq_again = knn_search(q, db, KnnSettings(k=5, index="ivfpq", nprobe=nlist, pq_m=8))
    np.testing.assert_array_equal(pq, pq_again)  # seeded training
    assert np.mean([len(set(a) & set(b)) / 5 for a, b in zip(pq, exact, strict=True)]) > 0.3


def test_training_sample_gathers_the_drawn_rows():
    db = np.arange(100, dtype=np.float32)[:, None].repeat(3, axis=1)
    sample = training_sample(array_source(db, 13), 100, 20, seed=0)
    assert sample.shape == (20, 3) and len(set(sample[:, 0].tolist())) == 20
    np.testing.assert_array_equal(sample, training_sample(array_source(db, 50), 100, 20, seed=0))


def test_nlist_choice():
    assert choose_nlist(10_000, None) == 256  # min(4*sqrt(n)=400, n/39=256)
    assert choose_nlist(100_000_000, None) == 40_000
    assert choose_nlist(10, None) == 1
    with pytest.raises(EpeflowError, match="`knn.nlist`"):
        choose_nlist(10, 11)


def test_errors_name_the_config_key():
    rng = np.random.default_rng(0)
    q, db = rng.random((3, 16)), rng.random((4, 16))
    with pytest.raises(EpeflowError, match=r"`knn.k`: 5 neighbours asked but the target has only 4 crops"):
        knn_search(q, db, KnnSettings(k=5))
    with pytest.raises(EpeflowError, match="`knn.pq_m`: 5 does not divide"):
        knn_search(q, db, KnnSettings(k=1, index="ivfpq", pq_m=5))
    with pytest.raises(EpeflowError, match="feature sizes differ"):
        knn_search(q, rng.random((4, 8)), KnnSettings(k=1))
    with pytest.raises(EpeflowError, match="`knn.index`"):
        KnnSettings.from_spec({"index": "hnsw"})
    with pytest.raises(EpeflowError, match=r"config key `knn`: unknown key\(s\) 'kk'"):
        KnnSettings.from_spec({"kk": 3})
    if not (hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0):
        with pytest.raises(EpeflowError, match="`knn.device` is `cuda`"):
            knn_search(q, db, KnnSettings(k=1, device="cuda"))

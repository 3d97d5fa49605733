"""vecstore.analytics (issue #15): each estimator against scikit-learn on the
same vectors, recommendations and duplicates against brute force, snapshot
isolation under a concurrent writer, write-back as one version, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
faiss = pytest.importorskip("faiss")

from sklearn import cluster as skc
from sklearn import decomposition as skd
from sklearn import ensemble as ske
from sklearn import neighbors as skn

from vecstore import Config, VecStore
from vecstore.analytics import (
    DBSCAN,
    LOF,
    PCA,
    Hierarchical,
    IsolationForest,
    KMeansClustering,
    WriteBackConflictError,
    ZScoreDetector,
    find_duplicates,
    recommend,
    recommend_collaborative,
    recommend_hybrid,
    reduce_store,
)

DIM = 16


def blobs(n: int = 300, k: int = 5, seed: int = 0, spread: float = 0.35) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, DIM)) * 2
    return (centers[rng.integers(0, k, n)] + spread * rng.standard_normal((n, DIM))).astype(
        np.float32)


def ids_of(n: int, prefix: str = "r") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def unit(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return (x64 / np.linalg.norm(x64, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def store(tmp_path):
    x = blobs()
    with VecStore.open(tmp_path / "s", Config(dim=DIM, distance="cosine",
                                              durability="relaxed")) as s:
        s.upsert_many(ids=ids_of(len(x)), vectors=x,
                      metadata=[{"g": i % 3, "name": f"n{i}"} for i in range(len(x))])
        yield s, x


@pytest.fixture
def l2store(tmp_path):
    x = blobs(seed=1)
    with VecStore.open(tmp_path / "e", Config(dim=DIM, distance="euclidean",
                                              durability="relaxed")) as s:
        s.upsert_many(ids=ids_of(len(x)), vectors=x)
        yield s, x


def as_array(d: dict, ids: list[str]) -> np.ndarray:
    assert list(d) == ids
    return np.array([d[i] for i in ids])


# -- the bulk read ----------------------------------------------------------------------


def test_snapshot_vectors_is_scan(store):
    s, x = store
    s.delete_many(["r0003", "r0100"])
    s.upsert("r0007", x[0] * 2, {"g": 9})
    old = s.snapshot(version=1)
    s.optimize()
    for snap, flt in ((s.snapshot(), None), (s.snapshot(), "g = 1"), (old, None), (old, "g = 2")):
        ids, mat = snap.vectors(flt)
        recs = list(snap.scan(flt))
        assert ids == [r.id for r in recs]
        assert np.array_equal(mat, np.stack([r.vector for r in recs]))
    assert len(old.vectors()[0]) == 300 and len(s.snapshot().vectors()[0]) == 298


def test_core_import_does_not_pull_sklearn():
    code = ("import sys, vecstore, vecstore.analytics; "
            "print(any(m.split('.')[0] == 'sklearn' for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# -- estimators = scikit-learn on the same vectors ----------------------------------------


@pytest.mark.parametrize("which", ["cosine", "euclidean"])
def test_kmeans_is_sklearn(store, l2store, which):
    s, x = store if which == "cosine" else l2store
    xp = unit(x) if which == "cosine" else x
    res = KMeansClustering(n_clusters=5, seed=3).fit(s)
    want = skc.KMeans(n_clusters=5, random_state=3).fit(xp)
    assert res.backend == "sklearn" and res.version == s.version
    assert np.array_equal(as_array(res.labels, ids_of(300)), want.labels_)
    assert res.info["inertia"] == pytest.approx(want.inertia_, rel=1e-5)


def test_kmeans_faiss_close_to_sklearn(store):
    s, x = store
    res = KMeansClustering(n_clusters=5, seed=0, backend="faiss").fit(s)
    want = skc.KMeans(n_clusters=5, random_state=0).fit(unit(x))
    assert res.backend == "faiss"
    assert res.info["inertia"] <= want.inertia_ * 1.01
    ari = sklearn.metrics.adjusted_rand_score(want.labels_, as_array(res.labels, ids_of(300)))
    assert ari > 0.95


@pytest.mark.parametrize("backend", ["sklearn", "faiss"])
def test_dbscan_is_sklearn(store, backend):
    s, x = store
    dup = x[10].copy()  # an exact duplicate: distance 0 must still count as a neighbour
    s.upsert("z-dup", dup)
    ids, mat = s.snapshot().vectors()
    res = DBSCAN(eps=0.3, min_samples=4, backend=backend).fit(s)
    want = skc.DBSCAN(eps=0.3, min_samples=4).fit_predict(unit(mat))
    assert res.backend == backend
    assert np.array_equal(as_array(res.labels, ids), want)
    assert 0 < res.info["n_noise"] < len(ids) and res.n_clusters >= 2


@pytest.mark.parametrize("linkage", ["ward", "average"])
def test_hierarchical_is_sklearn(store, linkage):
    s, _x = store
    res = Hierarchical(n_clusters=4, linkage=linkage).fit(s, filter="g != 0")
    ids, mat = s.snapshot().vectors("g != 0")
    want = skc.AgglomerativeClustering(n_clusters=4, linkage=linkage).fit_predict(unit(mat))
    assert np.array_equal(as_array(res.labels, ids), want)
    with pytest.raises(ValueError, match="max_rows"):
        Hierarchical(2, max_rows=10).fit(s)


def test_isolation_forest_is_sklearn(store):
    s, x = store
    res = IsolationForest(seed=7).fit(s.snapshot())
    est = ske.IsolationForest(random_state=7).fit(unit(x))
    ids = ids_of(300)
    assert np.allclose(as_array(res.scores, ids), -est.score_samples(unit(x)))
    assert np.array_equal(as_array(res.labels, ids), (est.predict(unit(x)) == -1).astype(int))
    assert res.outliers and res.scores[res.outliers[0]] == max(res.scores.values())


@pytest.mark.parametrize("backend", ["sklearn", "faiss"])
def test_lof_is_sklearn(l2store, backend):
    s, x = l2store
    res = LOF(n_neighbors=12, backend=backend).fit(s)
    est = skn.LocalOutlierFactor(n_neighbors=12)
    pred = est.fit_predict(x)
    ids = ids_of(300)
    assert np.allclose(as_array(res.scores, ids), -est.negative_outlier_factor_, rtol=1e-5)
    assert np.array_equal(as_array(res.labels, ids), (pred == -1).astype(int))


def test_zscore_is_standardised_distance(l2store):
    s, _x = l2store
    s.upsert("far", np.full(DIM, 30.0, np.float32))
    ids, mat = s.snapshot().vectors()
    res = ZScoreDetector(threshold=3.0).fit(s)
    d = np.linalg.norm(mat.astype(np.float64) - mat.astype(np.float64).mean(0), axis=1)
    z = sklearn.preprocessing.StandardScaler().fit_transform(d[:, None])[:, 0]
    assert np.allclose(as_array(res.scores, ids), z)
    assert res.outliers == ["far"]


def test_pca_is_sklearn(store, tmp_path):
    s, x = store
    p = PCA(n_components=4).fit(s)
    want = skd.PCA(n_components=4, random_state=0).fit(unit(x))
    assert np.allclose(p.explained_variance_ratio, want.explained_variance_ratio_)
    z = p.transform(x[:5])  # raw vectors: prepared (unit length) like the store's
    assert np.allclose(z, want.transform(unit(x[:5])), atol=1e-5)
    assert np.allclose(p.inverse_transform(z), want.inverse_transform(z), atol=1e-5)
    assert p.version == s.version

    rep = reduce_store(s, tmp_path / "reduced", 6, sample=50, rerank=(20,))
    # brute force: exact top-10 (self excluded) in both spaces
    full = unit(x)
    want_t = skd.PCA(6, random_state=0).fit(full).transform(full)
    qpos = np.random.default_rng(0).choice(300, 50, replace=False)
    hit = 0
    for q in qpos:
        a = full @ full[q]
        a[q] = -np.inf
        b = -((want_t - want_t[q]) ** 2).sum(1)
        b[q] = -np.inf
        hit += len(set(np.argsort(-a)[:10]) & set(np.argsort(-b)[:10]))
    assert rep.recall_at_10 == pytest.approx(hit / 500, abs=0.01)
    assert 0 < rep.recall_at_10 <= rep.recall_at_10_rerank[20] <= 1
    with VecStore.open(tmp_path / "reduced") as r:
        assert len(r) == 300 and r.get("r0001").metadata == s.get("r0001").metadata
        assert r.get("r0001").vector.shape == (6,)
        top = r.query(rep.map_query(x[1]), k=1)
        assert top[0].id == "r0001"


# -- recommendations and duplicates against brute force -------------------------------------


def brute_custom(vecs, pos, neg, strategy):
    sp, sn = vecs @ pos.T, vecs @ neg.T if len(neg) else np.zeros((len(vecs), 0))
    if strategy == "sum_scores":
        return sp.sum(1) - sn.sum(1)
    bp = sp.max(1)
    bn = sn.max(1) if sn.shape[1] else np.full(len(vecs), -np.inf)
    return np.where(bp > bn, bp, -(bn * bn))


@pytest.mark.parametrize("strategy", ["average_vector", "best_score", "sum_scores"])
def test_recommend_is_brute_force(store, strategy):
    s, x = store
    u = unit(x).astype(np.float64)
    ids = ids_of(300)
    pos, neg = ["r0001", "r0002"], ["r0003"]
    got = recommend(s, pos, neg, k=7, strategy=strategy, filter="g != 2")
    mask = np.array([i % 3 != 2 and ids[i] not in pos + neg for i in range(300)])
    P, N = u[[1, 2]], u[[3]]
    if strategy == "average_vector":
        q = 2 * P.mean(0) - N.mean(0)
        sc = u @ (q / np.linalg.norm(q))
    else:
        sc = brute_custom(u, P, N, strategy)
    sc[~mask] = -np.inf
    want = np.argsort(-sc, kind="stable")[:7]
    assert [r.id for r in got] == [ids[i] for i in want]
    assert np.allclose([r.score for r in got], sc[want], atol=1e-5)
    assert not {r.id for r in got} & set(pos + neg)


def test_recommend_best_score_euclidean_and_vectors(l2store):
    s, x = l2store
    ids = ids_of(300)
    x64 = x.astype(np.float64)
    got = recommend(s, ["r0010", x[20]], ["r0030"], k=5, strategy="best_score")
    ex_p, ex_n = x64[[10, 20]], x64[[30]]
    sp = -np.linalg.norm(x64[:, None, :] - ex_p[None], axis=2)
    sn = -np.linalg.norm(x64[:, None, :] - ex_n[None], axis=2)
    bp, bn = sp.max(1), sn.max(1)
    sc = np.where(bp > bn, bp, -(bn * bn))
    sc[[10, 30]] = -np.inf  # input ids excluded (a raw vector example excludes nothing)
    want = np.argsort(-sc, kind="stable")[:5]
    assert [r.id for r in got] == [ids[i] for i in want]
    with pytest.raises(ValueError, match="no record"):
        recommend(s, ["nope"], k=3)


def test_collaborative_and_hybrid_are_brute_force(store):
    s, x = store
    rng = np.random.default_rng(5)
    users = [f"u{i}" for i in range(40)]
    items = ids_of(60)
    inter = [(u, items[j], float(rng.integers(1, 4))) for u in users
             for j in rng.choice(60, 6, replace=False)]
    inter.append(("u0", "not-a-record", 1.0))
    R = np.zeros((40, 61))
    cols = [*items, "not-a-record"]
    for u, it, w in inter:
        R[users.index(u), cols.index(it)] += w
    Rn = R / np.maximum(np.linalg.norm(R, axis=0), 1e-300)
    mine = R[0]
    sc = Rn.T @ (Rn @ mine)
    sc[mine > 0] = -np.inf
    sc[60] = -np.inf  # not in the store
    order = sorted([j for j in range(61) if np.isfinite(sc[j]) and sc[j] > 0],
                   key=lambda j: (-sc[j], cols[j]))[:8]
    got = recommend_collaborative(s, inter, "u0", k=8)
    assert [r.id for r in got] == [cols[j] for j in order]
    assert np.allclose([r.score for r in got], sc[order])

    # hybrid with a pool covering every record = brute force over all of them
    alpha = 0.3
    seen = [cols[j] for j in np.flatnonzero(mine > 0) if j < 60]
    u = unit(x).astype(np.float64)
    P = u[[items.index(i) for i in seen]]
    q = P.mean(0)
    content = u @ (q / np.linalg.norm(q))
    collab = np.where(np.isfinite(sc[:60]), sc[:60], 0.0)
    collab = np.concatenate([collab, np.zeros(240)])
    cand = np.array([ids_of(300)[i] not in seen for i in range(300)])
    cn, fn = content[cand], collab[cand]
    h = alpha * (cn - cn.min()) / (cn.max() - cn.min()) + \
        (1 - alpha) * (fn - fn.min()) / (fn.max() - fn.min())
    cids = [i for i, c in zip(ids_of(300), cand) if c]
    want = sorted(range(len(cids)), key=lambda j: (-h[j], cids[j]))[:6]
    got = recommend_hybrid(s, inter, "u0", k=6, alpha=alpha, pool=400)
    assert [r.id for r in got] == [cids[j] for j in want]
    assert not {r.id for r in got} & set(seen)


@pytest.mark.parametrize("method", ["exact", "cells", "ivf"])
def test_duplicates_are_brute_force(tmp_path, method):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3000, DIM)).astype(np.float32)
    src = rng.choice(3000, 40, replace=False)
    near = x[src] + 0.02 * rng.standard_normal((40, DIM)).astype(np.float32)
    near[:5] = x[src[:5]]  # exact copies
    allv = np.vstack([x, near, near[:3] * 3.0])  # scaled: same direction, still duplicates
    ids = ids_of(3000) + [f"d{i:02d}" for i in range(40)] + ["s0", "s1", "s2"]
    with VecStore.open(tmp_path / "d", Config(dim=DIM, distance="euclidean",
                                              durability="relaxed")) as s:
        s.upsert_many(ids=ids, vectors=allv, metadata=[{"k": i % 2} for i in range(len(ids))])
        got = find_duplicates(s, threshold=0.995, method=method)
        u = unit(allv)
        sims = u @ u.T
        np.fill_diagonal(sims, -1)
        import scipy.sparse.csgraph as csg
        _n, comp = csg.connected_components(sims >= 0.995, directed=False)
        groups = {}
        for i in np.flatnonzero((sims >= 0.995).any(1)):
            groups.setdefault(comp[i], []).append(ids[i])
        want = sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])
        assert got == want and len(got) >= 30
        assert all(len(g) >= 2 for g in got)
        half = find_duplicates(s.snapshot(), 0.995, filter="k = 0", method=method)
        assert all(ids.index(i) % 2 == 0 for g in half for i in g)


# -- snapshots under a concurrent writer ---------------------------------------------------


def test_analysis_sees_exactly_its_snapshot_under_writes_and_compaction(tmp_path):
    """A writer thread upserts new batches, deletes old ones and compacts
    (retention 1 version) while analyses run; each result holds exactly the
    ids live at the version it names (a ledger kept by the writer)."""
    rng = np.random.default_rng(0)
    with VecStore.open(tmp_path / "c", Config(dim=DIM, durability="relaxed",
                                              seal_threshold=500)) as s:
        ledger: dict[int, frozenset[str]] = {}
        live: set[str] = set()
        lock = threading.Lock()

        def batch(b: int) -> None:  # a write and its ledger entry, as one step
            with lock:
                ids = [f"b{b}-{j}" for j in range(120)]
                v = s.upsert_many(ids=ids,
                                  vectors=rng.standard_normal((120, DIM)).astype(np.float32))
                live.update(ids)
                ledger[v] = frozenset(live)
                if b >= 2:
                    gone = [f"b{b - 2}-{j}" for j in range(0, 120, 2)]
                    v = s.delete_many(gone)
                    live.difference_update(gone)
                    ledger[v] = frozenset(live)

        batch(0)
        batch(1)
        s.set_retention(versions=1)
        stop = threading.Event()
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                b = 2
                while not stop.is_set() and b < 40:
                    batch(b)
                    if b % 3 == 0:
                        s.compact()
                    b += 1
            except BaseException as exc:  # reported below
                errors.append(exc)

        t = threading.Thread(target=writer)
        t.start()
        seen = []
        try:
            for i in range(6):
                est = [KMeansClustering(3, seed=0), ZScoreDetector(), IsolationForest(0)][i % 3]
                snap = s.snapshot()

                def mid(done: int, total: int, i: int = i) -> None:  # writes land mid-analysis
                    if done == 0:
                        batch(1000 + i)
                        s.compact()

                res = est.fit(snap, progress=mid)
                seen.append((res.version, frozenset(res.labels)))
                dups = find_duplicates(s, 0.999)
                assert dups == []
        finally:
            stop.set()
            t.join()
        assert not errors
        for version, got in seen:  # checked once the ledger is complete
            assert got == ledger[version], (version, len(got), len(ledger[version]))
        assert len({v for v, _ in seen}) >= 2  # the versions moved on under the analyses


# -- write-back ------------------------------------------------------------------------------


def test_write_back_is_one_version_and_rollback_undoes_it(store):
    s, x = store
    res = KMeansClustering(4, seed=0).fit(s)
    before = s.version
    s.upsert("r0005", x[5], {"edited": True})  # changed after the snapshot
    s.delete("r0006")  # deleted after the snapshot
    s.upsert("new", x[0])  # not in the snapshot
    after_edits = s.version
    wb = res.write_back(s, field="cluster")
    assert wb.version == after_edits + 1 == s.version
    assert wb.written == 298 and sorted(wb.skipped) == ["r0005", "r0006"]
    assert len(s.versions()[-1:]) == 1 and s.versions()[-1].ops >= 1
    for rid in ("r0000", "r0100", "r0299"):
        rec = s.get(rid)
        assert rec.metadata["cluster"] == res.labels[rid]
        assert rec.metadata["name"] == f"n{int(rid[1:])}"  # existing metadata kept
        assert np.array_equal(rec.vector, x[int(rid[1:])])
    assert s.get("r0005").metadata == {"edited": True}  # the later edit is not undone
    assert s.get("r0006") is None and "cluster" not in s.get("new").metadata
    # one version: the one before it has no label anywhere
    assert all("cluster" not in r.metadata for r in s.snapshot(version=after_edits).scan())
    s.rollback(after_edits)
    assert all("cluster" not in r.metadata for r in s.scan())
    assert s.get("r0005").metadata == {"edited": True} and before < after_edits

    with pytest.raises(WriteBackConflictError) as ei:
        res.write_back(s, field="c2", on_changed="error")
    assert sorted(ei.value.changed) == ["r0005", "r0006"]
    assert all("c2" not in r.metadata for r in s.scan())
    wb = res.write_back(s, field="c3", on_changed="overwrite")
    assert wb.written == 300 and s.get("r0006") is not None
    assert s.get("r0005").metadata == {"g": 2, "name": "n5", "c3": res.labels["r0005"]}


def test_write_back_scores_and_partitions(tmp_path):
    x = blobs(60)
    with VecStore.open(tmp_path / "p", Config(dim=DIM, durability="relaxed")) as s:
        s.partition("t1").upsert_many(ids=ids_of(60), vectors=x)
        s.upsert_many(ids=ids_of(5), vectors=x[:5])
        res = ZScoreDetector(2.0).fit(s.partition("t1"))
        assert res.partition == "t1" and len(res.labels) == 60
        wb = res.write_back(s, field="z", values="scores")
        assert wb.written == 60
        assert s.partition("t1").get("r0001").metadata["z"] == pytest.approx(res.scores["r0001"])
        assert "z" not in s.get("r0001").metadata
        snap_part = s.snapshot().partition("t1")
        assert len(KMeansClustering(2).fit(snap_part).labels) == 60


# -- command line --------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VECSTORE_PROGRESS_INTERVAL": "0"}
    return subprocess.run([sys.executable, "-m", "vecstore.cli", "analyze", *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_cli(tmp_path, capsys):
    from vecstore.cli.main import main

    x = blobs(200)
    x[7] = x[8]
    path = str(tmp_path / "cli")
    with VecStore.open(path, Config(dim=DIM, durability="relaxed")) as s:
        s.upsert_many(ids=ids_of(200), vectors=x, metadata=[{"g": i % 2} for i in range(200)])
    # one real subprocess: the console path, progress on stderr, JSON on stdout
    r = cli("kmeans", path, "-k", "5", "--seed", "1", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    want = skc.KMeans(5, random_state=1).fit_predict(unit(x))
    assert [doc["labels"][i] for i in ids_of(200)] == want.tolist()
    assert doc["version"] == 1 and "reading 200 vectors" in r.stderr
    assert "running kmeans on 200 records" in r.stderr

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["analyze", *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run("duplicates", path, "--threshold", "0.9999", "--write-back", "dup")
    assert code == 0, err
    assert "1 group(s)" in out and "r0007, r0008" in out and "version 2" in out
    code, out, err = run("outliers", path, "--method", "zscore", "--threshold", "2",
                         "--filter", "g = 1", "--json", "-q")
    doc = json.loads(out)
    assert code == 0 and err == "" and len(doc["scores"]) == 100
    assert doc["labels"] == {i: int(doc["scores"][i] > 2) for i in doc["scores"]}
    code, out, err = run("dbscan", path, "--eps", "0.3", "--version", "1", "--json", "-q")
    doc = json.loads(out)
    want = skc.DBSCAN(eps=0.3).fit_predict(unit(x))
    assert code == 0 and doc["version"] == 1
    assert [doc["labels"][i] for i in ids_of(200)] == want.tolist()
    code, out, err = run("outliers", path, "--method", "lof", "--neighbors", "5")
    assert code == 0 and "outlier(s) among 200 records at version 2 (lof" in out
    with VecStore.open(path, read_only=True) as s:
        assert s.get("r0007").metadata == {"g": 1, "dup": 0}
        assert "dup" not in s.get("r0009").metadata
    code, out, err = run("kmeans", str(tmp_path / "missing"), "--json")
    assert code == 1 and "no vecstore" in json.loads(out)["error"]["message"]
    with pytest.raises(SystemExit) as ei:
        main(["analyze", "kmeans"])
    assert ei.value.code == 2

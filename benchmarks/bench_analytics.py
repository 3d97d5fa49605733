"""vecstore.analytics against scikit-learn and numpy, in one run.

Three targets (issue #15), printed as ratios at the end:

1. k-means on ``--rows`` (default 1,000,000) x 384 synthetic clustered
   vectors: ``KMeansClustering(backend="faiss")`` vs scikit-learn's
   ``KMeans`` with the same n_clusters, n_init=1 and the same max_iter
   (scikit-learn: k-means++ on all rows, Lloyd on all rows, stopping early at
   its tol; ours: scikit-learn's k-means++ on the sample, faiss Lloyd on
   ``256 * n_clusters`` sampled rows for max_iter iterations, then every row
   assigned).  Goal: >= 5x faster with inertia within 1% of scikit-learn's.
2. near-duplicates on ``--dup-rows`` (default 50,000) rows with planted
   near-copies: ``find_duplicates`` (faiss IVF range search) vs a blocked
   exact numpy self-join, same threshold; the groups must be identical.
   Goal: >= 20x faster.
3. PCA on pypi58k (``--data``): recall@10 of exact search in the reduced
   space vs exact cosine search in 384 dims, rows 0..999 as queries against
   the rest, for 32..192 components (and with the top 100/200 reduced-space
   candidates re-ranked by the original vectors).  Goal: 48 dims >= 0.8.

The synthetic generator (``clustered``): ``--centers`` (default 200)
centres drawn uniformly on the unit sphere in 384 dims; cluster sizes
Zipf-like (weight of centre i ~ 1/(i+1)^0.5); each row = its centre +
Gaussian noise of per-dimension sigma ``--noise`` (default 0.05, so a row's
cosine to its centre is ~0.7), then normalised to unit length like sentence
embeddings.  Rows are generated in chunks in float32 (1M x 384 = 1.5 GB).

    python benchmarks/bench_analytics.py --data ../shared/datasets/pypi58k
    python benchmarks/bench_analytics.py --rows 200000 --skip pca   # quicker
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# OpenMP threads sleep instead of spinning while idle (faiss and scikit-learn
# alike): on a shared 2-core machine spinning threads starve each other
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (
    Target,
    log,
    log_machine,
    machine_info,
    print_summary,
    unit_rows,
    write_json,
)


def clustered(n: int, dim: int, centers: int, noise: float, seed: int = 0) -> np.ndarray:
    """The synthetic generator described in the module docstring."""
    rng = np.random.default_rng(seed)
    c = unit_rows(rng.standard_normal((centers, dim)))
    w = 1.0 / np.sqrt(np.arange(1, centers + 1))
    which = rng.choice(centers, n, p=w / w.sum())
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 65536):
        block = c[which[s:s + 65536]] + noise * rng.standard_normal(
            (min(65536, n - s), dim), dtype=np.float32)
        out[s:s + 65536] = unit_rows(block)
    return out


# -- 1. k-means -------------------------------------------------------------------------


def bench_kmeans(x: np.ndarray, k: int, iters: int) -> tuple[Target, dict]:
    from sklearn.cluster import KMeans

    from vecstore.analytics import KMeansClustering

    log(f"== k-means: {x.shape[0]:,} x {x.shape[1]}, n_clusters={k}, n_init=1, max_iter={iters}")
    t0 = time.perf_counter()
    ours = KMeansClustering(k, seed=0, n_init=1, max_iter=iters, backend="faiss")
    _labels, info, _b = ours.fit_matrix(x)
    t_ours = time.perf_counter() - t0
    log(f"   ours (faiss, trained on {info['trained_on']:,} rows): {t_ours:.1f} s, "
        f"inertia {info['inertia']:.6g}")
    t0 = time.perf_counter()
    sk = KMeans(n_clusters=k, random_state=0, n_init=1, max_iter=iters).fit(x)
    t_sk = time.perf_counter() - t0
    log(f"   scikit-learn KMeans (lloyd, k-means++): {t_sk:.1f} s, {sk.n_iter_} iterations, "
        f"inertia {sk.inertia_:.6g}")
    gap = info["inertia"] / sk.inertia_ - 1
    t = Target("k-means speed-up vs scikit-learn", t_ours, t_sk, t_sk / t_ours, ">=", 5.0, "s",
               note=f"inertia ours/sklearn - 1 = {gap:+.3%} (goal within 1%); "
                    f"sklearn ran {sk.n_iter_} of {iters} iterations")
    t.ok = t.ok and abs(gap) <= 0.01
    return t, {"rows": x.shape[0], "ours_s": t_ours, "sklearn_s": t_sk,
               "ours_inertia": info["inertia"], "sklearn_inertia": float(sk.inertia_),
               "sklearn_iters": int(sk.n_iter_), "inertia_gap": gap}


def bench_crossover(x: np.ndarray, k: int, iters: int, sizes: list[int]) -> dict:
    """Where faiss starts to pay (KMeansClustering backend="auto" threshold)."""
    from sklearn.cluster import KMeans

    from vecstore.analytics import KMeansClustering

    out = {}
    for n in sizes:
        sub = x[:n]
        t0 = time.perf_counter()
        KMeansClustering(k, seed=0, n_init=1, max_iter=iters, backend="faiss").fit_matrix(sub)
        tf = time.perf_counter() - t0
        t0 = time.perf_counter()
        KMeans(n_clusters=k, random_state=0, n_init=1, max_iter=iters).fit(sub)
        ts = time.perf_counter() - t0
        log(f"   crossover n={n:,}: faiss {tf:.2f} s, sklearn {ts:.2f} s ({ts / tf:.1f}x)")
        out[n] = {"faiss_s": tf, "sklearn_s": ts}
    return out


# -- 2. duplicates -------------------------------------------------------------------------


def plant_duplicates(base: np.ndarray, share: float, seed: int = 1) -> np.ndarray:
    """Replace ``share`` of the rows by near-copies of other rows (cosine ~0.99)."""
    rng = np.random.default_rng(seed)
    x = base.copy()
    n = x.shape[0]
    m = int(n * share)
    dst = rng.choice(n, m, replace=False)
    src = rng.choice(np.setdiff1d(np.arange(n), dst), m, replace=False)
    x[dst] = unit_rows(x[src] + 0.004 * rng.standard_normal((m, x.shape[1]), dtype=np.float32))
    return x


def numpy_self_join(x: np.ndarray, threshold: float, block: int = 1024) -> list[list[int]]:
    """The baseline: every pair by blocked matrix products, then union-find."""
    n = x.shape[0]
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    members = set()
    for s in range(0, n, block):
        sims = x[s:s + block] @ x[s:].T  # the upper triangle only (half the products)
        r, c = np.nonzero(sims >= threshold)
        for i, j in zip((r + s).tolist(), (c + s).tolist()):
            if j > i:
                members.update((i, j))
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in sorted(members):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values())


def bench_duplicates(x: np.ndarray, threshold: float) -> tuple[Target, dict]:
    from vecstore._analysis.duplicates import duplicates_of

    ids = [f"{i:07d}" for i in range(x.shape[0])]
    log(f"== duplicates: {x.shape[0]:,} x {x.shape[1]}, cosine >= {threshold}")
    t0 = time.perf_counter()
    ours = duplicates_of(ids, x, threshold, method="cells")
    t_ours = time.perf_counter() - t0
    log(f"   ours (cells: faiss k-means in a PCA-64 projection, exact self-join per cell): "
        f"{t_ours:.2f} s, {len(ours):,} groups")
    t0 = time.perf_counter()
    ivf = duplicates_of(ids, x, threshold, method="ivf")
    t_ivf = time.perf_counter() - t0
    log(f"   (method='ivf', faiss IVF range search nprobe=4: {t_ivf:.2f} s, "
        f"{len(ivf):,} groups)")
    t0 = time.perf_counter()
    base = numpy_self_join(x, threshold)
    t_np = time.perf_counter() - t0
    want = sorted([ids[i] for i in g] for g in base)
    same = ours == want
    log(f"   numpy blocked self-join: {t_np:.2f} s, {len(want):,} groups; identical: {same}")
    t = Target("duplicates speed-up vs numpy self-join", t_ours, t_np, t_np / t_ours, ">=",
               20.0, "s", note=f"groups identical: {same} ({len(ours):,} groups, "
                               f"{sum(map(len, ours)):,} records)")
    t.ok = t.ok and same
    return t, {"rows": x.shape[0], "ours_s": t_ours, "numpy_s": t_np, "groups": len(ours),
               "identical": same, "ivf_s": t_ivf, "ivf_identical": ivf == want}


# -- 3. PCA --------------------------------------------------------------------------------


def bench_pca(path: str, dims: list[int]) -> tuple[Target, dict]:
    from vecstore.analytics import PCA

    v = unit_rows(np.load(os.path.join(path, "vectors.npy")).astype(np.float32))
    q, b = v[:1000], v[1000:]
    log(f"== PCA on pypi58k: {b.shape[0]:,} base rows, 1,000 queries, recall@10 vs exact cosine")
    truth = np.vstack([_exact(q[s:s + 250], b, 10) for s in range(0, 1000, 250)])
    curve = {}
    for nc in dims:
        p = PCA(nc).fit_matrix(b)
        zb, zq = p.transform(b), p.transform(q)
        row = {"explained_variance": float(p.explained_variance_ratio.sum())}
        for rerank in (0, 100, 200):
            got = []
            for s in range(0, 1000, 250):
                cand = _exact(zq[s:s + 250], zb, max(10, rerank), l2=True)
                if rerank:
                    cand = np.stack([c[np.argsort(-(b[c] @ q[s + i]))[:10]]
                                     for i, c in enumerate(cand)])
                got.append(cand)
            got_m = np.vstack(got)
            rec = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(got_m, truth)])
            row["recall@10" if not rerank else f"recall@10_rerank{rerank}"] = float(rec)
        curve[nc] = row
        log(f"   {nc:>3} dims ({384 / nc:4.1f}x smaller): recall@10 {row['recall@10']:.3f}, "
            f"re-ranking 100: {row['recall@10_rerank100']:.3f}, 200: "
            f"{row['recall@10_rerank200']:.3f}; explained variance "
            f"{row['explained_variance']:.3f}")
    r48 = curve.get(48, {}).get("recall@10", float("nan"))
    t = Target("PCA 48 dims recall@10 (pypi58k)", r48, 1.0, r48, ">=", 0.8, "recall",
               note=f"with the top 200 re-ranked by the 384-dim vectors: "
                    f"{curve.get(48, {}).get('recall@10_rerank200', float('nan')):.3f}")
    return t, curve


def _exact(q: np.ndarray, b: np.ndarray, k: int, l2: bool = False) -> np.ndarray:
    s = q @ b.T
    if l2:
        s = 2 * s - (b * b).sum(1)[None, :]
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, part, 1), axis=1)
    return np.take_along_axis(part, order, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="k-means rows (1,000,000)")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--centers", type=int, default=200, help="generator: true centres (200)")
    ap.add_argument("--noise", type=float, default=0.05, help="generator: per-dim sigma (0.05)")
    ap.add_argument("--clusters", type=int, default=100, help="k-means n_clusters (100)")
    ap.add_argument("--iters", type=int, default=20, help="k-means max_iter, both sides (20)")
    ap.add_argument("--crossover", type=str, default="",
                    help="comma-separated row counts: time faiss vs scikit-learn at each")
    ap.add_argument("--dup-rows", type=int, default=50_000, help="duplicates rows (50,000)")
    ap.add_argument("--dup-share", type=float, default=0.01, help="share of near-copies (1%%)")
    ap.add_argument("--threshold", type=float, default=0.98)
    ap.add_argument("--data", help="pypi58k directory: duplicates on its vectors, and PCA")
    ap.add_argument("--pca-dims", default="32,48,64,96,128,192")
    ap.add_argument("--skip", action="append", default=[], choices=("kmeans", "dups", "pca"))
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    args = ap.parse_args(argv)
    info = machine_info(("scikit-learn", "faiss-cpu"))
    log_machine(info)
    t_start = time.perf_counter()
    targets: list[Target] = []
    sections: dict = {}
    if "kmeans" not in args.skip:
        t0 = time.perf_counter()
        x = clustered(args.rows, args.dim, args.centers, args.noise)
        log(f"generated {args.rows:,} x {args.dim} in {time.perf_counter() - t0:.1f} s")
        if args.crossover:
            sections["crossover"] = bench_crossover(
                x, args.clusters, args.iters, [int(s) for s in args.crossover.split(",")])
        t, sections["kmeans"] = bench_kmeans(x, args.clusters, args.iters)
        targets.append(t)
        del x
    if "dups" not in args.skip:
        if args.data:
            v = np.load(os.path.join(args.data, "vectors.npy"), mmap_mode="r")
            base = unit_rows(np.asarray(v[:args.dup_rows], np.float32))
        else:
            base = clustered(args.dup_rows, args.dim, args.centers, args.noise, seed=5)
        x = plant_duplicates(base, args.dup_share)
        t, sections["duplicates"] = bench_duplicates(x, args.threshold)
        targets.append(t)
    if "pca" not in args.skip:
        if args.data:
            t, sections["pca"] = bench_pca(args.data, [int(d) for d in args.pca_dims.split(",")])
            targets.append(t)
        else:
            log("== PCA: skipped (needs --data ../shared/datasets/pypi58k)")
    total = time.perf_counter() - t_start
    print()
    print_summary(targets, info, total, lib="faiss-cpu")
    write_json(args.json, info, vars(args), targets, total, **sections)
    return 0


if __name__ == "__main__":
    sys.exit(main())

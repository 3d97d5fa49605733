#!/usr/bin/env python
"""Issue #12: vecstore's ANN engine against raw faiss, Qdrant Edge and zvec, in one run.

Run (from the repository root)::

    PYTHONPATH=. python benchmarks/bench_engine.py --data /path/to/pypi58k [--base 30000] [--quick]

Stores: vecstore with the faiss kind (float32, ``"sq8"``, ``PQConfig(16)``) and
with the hnswlib kind (the default decision), raw faiss HNSWFlat, Qdrant
Edge (float32 and int8, in-process), zvec (reopen only); every HNSW with
M=16, ef_construction=200, every engine told to use one search thread.
Each system's ef is the smallest of a ladder whose recall@10 (500 queries,
exact ground truth) reaches the target; then queries are timed interleaved
query by query (order rotated), ``--rounds`` times, and each ratio is
reported as the median of the per-round ratios with their spread.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from typing import Any

import numpy as np

import _anchors as A
from _common import (
    Target,
    add_output_args,
    dataset_parser,
    exact_topk,
    interleaved,
    load_data,
    log,
    log_machine,
    machine_info,
    print_summary,
    recall,
    write_json,
)
from vecstore import Config, PQConfig, VecStore
from vecstore._index.stats import index_stats

K = 10
EF_LADDER = (16, 24, 32, 48, 64, 80, 96, 112, 128, 160, 192, 256, 384)
SHARES = (0.5, 0.1, 0.01, 0.001)


def build_store(path: str, base: np.ndarray, ids: list[str], kind: str, quant: Any = None
                ) -> tuple[VecStore, float]:
    cfg = Config(dim=base.shape[1], index_kind=kind, quantization=quant, durability="relaxed")
    store = VecStore.open(path, cfg)
    store.create_index("bucket", "btree")
    t0 = time.perf_counter()
    for s in range(0, len(ids), 1000):
        store.upsert_many(ids=ids[s:s + 1000], vectors=base[s:s + 1000],
                          metadata=[{"bucket": i % 1000, "ubucket": i % 1000}
                                    for i in range(s, min(len(ids), s + 1000))])
    store.optimize()
    return store, time.perf_counter() - t0


def calibrate(fn: Any, queries: np.ndarray, truth: list[np.ndarray], goal: float
              ) -> tuple[int, float]:
    """Smallest ef of the ladder reaching ``goal`` recall (else the largest)."""
    for ef in EF_LADDER:
        r = recall([fn(q, ef) for q in queries], truth)
        if r >= goal:
            return ef, r
    return ef, r


def ratios(t: dict[str, np.ndarray], ours: str, base: str) -> tuple[float, float, float, float]:
    """(ours q/s, baseline q/s, median per-round ratio, spread (min..max) as a half-range)."""
    qs = {n: 1.0 / np.nanmean(v, axis=1) for n, v in t.items()}
    per = qs[ours] / qs[base]
    return float(np.median(qs[ours])), float(np.median(qs[base])), float(np.median(per)), \
        float((per.max() - per.min()) / 2)


def main() -> int:
    ap = dataset_parser(__doc__, "base vectors (default 30000)", "queries (default 500)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="5,000 base, 100 queries, 1 round")
    add_output_args(ap)
    args = ap.parse_args()
    nb = args.base or (5000 if args.quick else 30000)
    nq = args.queries or (100 if args.quick else 500)
    rounds = 1 if args.quick else args.rounds
    t_start = time.perf_counter()
    info = machine_info(("faiss-cpu", "qdrant-edge-py", "zvec"))
    log_machine(info)
    data = load_data(args.data, nb, nq)
    base, queries, ids = data.base, data.queries, data.ids
    pos_of = {rid: i for i, rid in enumerate(ids)}
    buckets = np.arange(nb) % 1000
    truth = exact_topk(base, np.arange(nb), queries, K)
    work = tempfile.mkdtemp(prefix="bench-engine-", dir=args.workdir)
    targets: list[Target] = []
    figures: dict[str, Any] = {}
    try:
        stores: dict[str, VecStore] = {}
        for name, kind, quant in (("faiss", "faiss", None), ("hnswlib", "hnswlib", None),
                                  ("sq8", "faiss", "sq8"), ("pq16", "faiss", PQConfig(16))):
            stores[name], secs = build_store(os.path.join(work, name), base, ids, kind, quant)
            log(f"built vecstore/{name}: {secs:.1f} s (ingest + optimize)")
            figures[f"build_{name}_s"] = secs
        t0 = time.perf_counter()
        raw = A.RawFaiss(base)
        log(f"built raw faiss HNSWFlat: {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        qd = A.Qdrant(os.path.join(work, "qdrant"), base, buckets)
        qd8 = A.Qdrant(os.path.join(work, "qdrant8"), base, buckets, sq8=True)
        log(f"built Qdrant Edge float32 + int8: {time.perf_counter() - t0:.1f} s")

        def ours(name: str, flt: str | None = None) -> Any:
            s = stores[name]
            return lambda q, ef: np.fromiter((pos_of[r.id] for r in s.query(q, k=K, filter=flt,
                                                                             ef=ef)), np.int64)

        def qdrant(shard: A.Qdrant, flt: Any = None) -> Any:  # (its API takes lists)
            return lambda q, ef: shard.search(q.tolist(), K, ef, flt)

        systems = {"vecstore/faiss": ours("faiss"), "vecstore/hnswlib": ours("hnswlib"),
                   "vecstore/sq8": ours("sq8"), "vecstore/pq16": ours("pq16"),
                   "raw faiss HNSWFlat": lambda q, ef: raw.search(q, K, ef),
                   "Qdrant Edge": qdrant(qd),
                   "Qdrant Edge int8": qdrant(qd8)}
        efs: dict[str, int] = {}
        for name, fn in systems.items():
            goal = 0.95 if name == "vecstore/pq16" else 0.98
            efs[name], r = calibrate(fn, queries, truth, goal)
            log(f"  {name}: ef {efs[name]} -> recall@10 {r:.4f} (goal {goal})")
            figures[f"recall_{name}"] = r
        t = interleaved({n: (lambda q, f=fn, e=efs[n]: f(q, e)) for n, fn in systems.items()},
                        queries, rounds)
        figures["unfiltered_qps"] = {n: float(1 / np.nanmean(v)) for n, v in t.items()}
        for n, v in figures["unfiltered_qps"].items():
            log(f"  unfiltered {n}: {v:,.0f} q/s at ef {efs[n]}")
        for ours_n, base_n, goal in (("vecstore/faiss", "raw faiss HNSWFlat", 0.9),
                                     ("vecstore/faiss", "Qdrant Edge", 1.3),
                                     ("vecstore/sq8", "Qdrant Edge", 2.0),
                                     ("vecstore/faiss", "vecstore/hnswlib", 1.0)):  # (default)
            a, b, r, spread = ratios(t, ours_n, base_n)
            targets.append(Target(f"unfiltered {ours_n} vs {base_n}", a, b, r, ">=", goal, "q/s",
                                  note=f"ef {efs[ours_n]} vs {efs[base_n]}, per-round spread "
                                       f"+-{spread:.2f}"))
        # -- filtered ------------------------------------------------------------------
        cases = [(f"bucket < {int(s * 1000)}", "bucket", int(s * 1000), s) for s in SHARES]
        cases += [("ubucket < 100 (unindexed)", "ubucket", 100, 0.1),
                  ("ubucket < 10 (unindexed)", "ubucket", 10, 0.01)]
        for label, field, below, share in cases:
            rows = np.flatnonzero(buckets < below)
            ftruth = exact_topk(base, rows, queries, K)
            flt = f"{field} < {below}"
            fs = {"vecstore/faiss": ours("faiss", flt), "vecstore/hnswlib": ours("hnswlib", flt),
                  "Qdrant Edge": qdrant(qd, qd.flt(field, below))}
            rec = {n: recall([fn(q, efs[n]) for q in queries], ftruth) for n, fn in fs.items()}
            tf = interleaved({n: (lambda q, f=fn, e=efs[n]: f(q, e)) for n, fn in fs.items()},
                             queries, rounds)
            plan = stores["faiss"].explain(queries[0], k=K, filter=flt)
            a, b, r, spread = ratios(tf, "vecstore/faiss", "Qdrant Edge")
            _a, h, rh, _s = ratios(tf, "vecstore/faiss", "vecstore/hnswlib")
            goal = 1.5 if share == 0.1 and field == "bucket" else 1.0
            ok = r >= goal and rec["vecstore/faiss"] >= 0.95
            targets.append(Target(f"filtered {label}", a, b, r, ">=", goal, "q/s", ok=ok,
                                  note=f"recall ours {rec['vecstore/faiss']:.3f}, Qdrant "
                                       f"{rec['Qdrant Edge']:.3f}, hnswlib kind "
                                       f"{rec['vecstore/hnswlib']:.3f} at {h:,.0f} q/s "
                                       f"(faiss/hnswlib {rh:.2f}x); plan {plan.strategy}; "
                                       f"spread +-{spread:.2f}"))
            figures[f"filtered {label}"] = {"recall": rec, "qps": {
                n: float(1 / np.nanmean(v)) for n, v in tf.items()}, "plan": plan.strategy}
            log(f"  filtered {label}: {figures[f'filtered {label}']}")
        # -- memory ------------------------------------------------------------------------
        res = {n: index_stats(s._engine_checked().state.parts)["partitions"]["default"]
               ["resident_bytes"] for n, s in stores.items()}
        figures["resident_bytes"] = res
        links = nb * (base.shape[1] * 4 + 2 * A.M * 4 + 4)
        targets.append(Target("resident float32 vs vectors+links", res["faiss"], links,
                              res["faiss"] / links, "<=", 1.2, "MB"))
        targets.append(Target("resident sq8 vs float32", res["sq8"], res["faiss"],
                              res["sq8"] / res["faiss"], "<=", 0.4, "MB"))
        targets.append(Target("resident PQ16 vs float32", res["pq16"], res["faiss"],
                              res["pq16"] / res["faiss"], "<=", 0.15, "MB"))
        # -- reopen -------------------------------------------------------------------------
        for s in stores.values():
            s.close()
        qd.close()
        qd8.close()
        A.zvec_build(os.path.join(work, "zvec"), base)
        qfile = os.path.join(work, "q.npy")
        np.save(qfile, queries[0])
        reopen: dict[str, list[float]] = {"faiss": [], "hnswlib": [], "sq8": [], "zvec": []}
        for _ in range(3):  # interleaved, warm page cache
            for n in reopen:
                reopen[n].append(A.reopen_seconds(
                    "zvec" if n == "zvec" else "store", os.path.join(work, n), qfile))
        med = {n: float(np.median(v)) for n, v in reopen.items()}
        figures["reopen_s"] = reopen
        for n in ("faiss", "sq8"):
            targets.append(Target(f"reopen vecstore/{n} vs zvec", med[n], med["zvec"],
                                  med[n] / med["zvec"], "<=", 1.0, "s",
                                  note=f"runs {[round(x * 1e3) for x in reopen[n]]} ms vs "
                                       f"{[round(x * 1e3) for x in reopen['zvec']]} ms; "
                                       f"hnswlib kind {med['hnswlib'] * 1e3:.0f} ms"))
        figures["rss_after_open"] = {n: A.rss_after_open(os.path.join(work, n), qfile)
                                     for n in ("faiss", "sq8", "pq16")}
        log(f"  RSS growth after open + 1 query: {figures['rss_after_open']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - t_start
    print_summary(targets, info, total)
    write_json(args.json, info, {"base": nb, "queries": nq, "rounds": rounds, "efs": efs},
               targets, total, figures=figures)
    return 0 if all(t.ok for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())

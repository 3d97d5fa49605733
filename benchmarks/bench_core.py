#!/usr/bin/env python
"""Core performance targets of vecstore, each measured against a raw baseline.

Run (from the repository root)::

    PYTHONPATH=. python benchmarks/bench_core.py --data /path/to/pypi58k [--quick] [--json OUT]

The machine this runs on is assumed shared and noisy, so every target is a
*ratio* between vecstore and a baseline measured in the same run, never an
absolute figure.  The five targets:

1. ``VecStore.query`` throughput (one query at a time) vs raw hnswlib
   ``knn_query`` (num_threads=1) with the same M / ef_construction / ef, at
   recall@10 >= 0.95 (exact numpy ground truth).             target >= 0.7x
2. durable ``upsert_many`` ingest (durability="sync", batches of 1,000) vs raw
   LMDB puts of the same bytes, one fsync'd commit per 1,000.  target >= 0.5x
3. 64 concurrent ``await store.upsert(...)`` trio tasks vs the same writes
   awaited one after another (group commit).                   target >= 10x
4. reopen of the optimized store (open + first query) vs rebuilding its HNSW
   from scratch with raw hnswlib (num_threads=cpu_count).      target <= 0.1x
5. resident memory per vector after open + one query (fresh subprocess) vs
   ``dim*4 + 2*M*4 + 4`` bytes (vector + level-0 links + count). target <= 1.5x

This is a script: it is never imported by the test suite, and nothing in the
package depends on the dataset.  Scratch stores live in a temporary directory
that is removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from typing import Any

import cbor2
import hnswlib
import numpy as np
import trio

from _common import (
    Data,
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
    raw_lmdb_puts,
    recall,
    timed,
    write_json,
)
from vecstore import AsyncVecStore, Config, VecStore

K = 10
RECALL_TARGET = 0.95
M = 16
EF_CONSTRUCTION = 200
EF_SEARCH = 64
BATCH = 1_000
EF_LADDER = (64, 96, 128, 192, 256, 384, 512, 768, 1024)


# -- raw baselines -------------------------------------------------------------------


def raw_build(base: np.ndarray, threads: int) -> tuple[Any, float]:
    index = hnswlib.Index(space="cosine", dim=base.shape[1])
    t0 = time.perf_counter()
    index.init_index(max_elements=len(base), M=M, ef_construction=EF_CONSTRUCTION)
    index.add_items(base, np.arange(len(base)), num_threads=threads)
    return index, time.perf_counter() - t0


# -- query benchmark ------------------------------------------------------------------


def run_raw_queries(index: Any, queries: np.ndarray, k: int) -> tuple[list[np.ndarray], float]:
    out = []
    t0 = time.perf_counter()
    for q in queries:
        labels, _ = index.knn_query(q, k=k, num_threads=1)
        out.append(labels[0])
    return out, time.perf_counter() - t0


def run_store_queries(store: VecStore, queries: np.ndarray, k: int, ef: int,
                      pos_of: dict[str, int]) -> tuple[list[np.ndarray], float]:
    raw = []
    t0 = time.perf_counter()
    for q in queries:
        raw.append(store.query(q, k=k, ef=ef))
    dt = time.perf_counter() - t0
    return [np.array([pos_of[r.id] for r in res], np.int64) for res in raw], dt


# -- concurrent writers ----------------------------------------------------------------


def trio_writes(path: str, cfg: Config, data: Data, n_writers: int, per: int,
                concurrent: bool) -> dict[str, Any]:
    total = n_writers * per
    vecs = [data.base[i] for i in range(total)]
    ids, metas = data.ids[:total], data.metas[:total]

    async def main() -> dict[str, Any]:
        async with AsyncVecStore.open(path, cfg) as store:
            await store.upsert("warm-up", data.base[-1], {"warm": True})  # creates the partition
            c0 = store.commits
            t0 = time.perf_counter()
            if concurrent:
                async def writer(w: int) -> None:
                    for j in range(w * per, (w + 1) * per):
                        await store.upsert(ids[j], vecs[j], metas[j])

                async with trio.open_nursery() as nursery:
                    for w in range(n_writers):
                        nursery.start_soon(writer, w)
            else:
                for j in range(total):
                    await store.upsert(ids[j], vecs[j], metas[j])
            dt = time.perf_counter() - t0
            commits = store.commits - c0
            n = await store.count()
        if n != total + 1:
            raise RuntimeError(f"expected {total + 1} records, store has {n}")
        return {"seconds": dt, "rate": total / dt, "calls": total, "commits": commits}

    return trio.run(main)


# -- memory probe (fresh subprocess) --------------------------------------------------

_MEM_PROBE = r"""
import json, sys
import numpy as np
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")
kind, path, qfile, n, dim, m = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:7])
q = np.load(qfile)
import hnswlib
if kind == "vecstore":
    import cbor2, lmdb, trio
    import vecstore
    from vecstore import VecStore
    before = rss()
    store = VecStore.open(path)
    res = store.query(q, k=10)
    after = rss()
    assert len(res) == 10, res
    store.close()
else:
    before = rss()
    index = hnswlib.Index(space="cosine", dim=dim)
    index.load_index(path, max_elements=n)
    index.set_ef(64)
    labels, _ = index.knn_query(q, k=10, num_threads=1)
    after = rss()
print(json.dumps({"before": before, "after": after}))
"""


def mem_probe(kind: str, path: str, qfile: str, n: int, dim: int) -> dict[str, Any]:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, "-c", _MEM_PROBE, kind, path, qfile, str(n),
                          str(dim), str(M)], env=env, capture_output=True, text=True,
                         check=True, timeout=600)
    d = json.loads(out.stdout.strip().splitlines()[-1])
    d["growth"] = d["after"] - d["before"]
    d["per_vector"] = d["growth"] / n
    return d


# -- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = dataset_parser(__doc__, "base vectors (default 50000)",
                        "queries (default 1000)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 5,000 base / 200 queries")
    ap.add_argument("--writers", type=int, default=64, help="concurrent trio writers (default 64)")
    ap.add_argument("--per-writer", type=int, default=None,
                    help="records per writer (default 50; 10 with --quick)")
    ap.add_argument("--rounds", type=int, default=3, help="timed query rounds (default 3)")
    add_output_args(ap)
    args = ap.parse_args(argv)
    n_base = args.base if args.base is not None else (5_000 if args.quick else 50_000)
    n_q = args.queries if args.queries is not None else (200 if args.quick else 1_000)
    per = args.per_writer if args.per_writer is not None else (10 if args.quick else 50)
    threads = os.cpu_count() or 1

    t_start = time.perf_counter()
    info = machine_info(("cbor2",), blas=False, missing="?")
    log_machine(info)
    log(f"== params: base={n_base} queries={n_q} dim=384 M={M} ef_construction={EF_CONSTRUCTION}"
        f" ef_search={EF_SEARCH} k={K} writers={args.writers}x{per}")

    data = load_data(args.data, n_base, n_q, normalize=False)
    dim = data.base.shape[1]
    if per * args.writers > n_base:
        raise SystemExit("--writers x --per-writer must not exceed --base")
    pos_of = {rid: i for i, rid in enumerate(data.ids)}
    truth = exact_topk(data.base, np.arange(n_base), data.queries, K)
    cfg = Config(dim=dim, distance="cosine", hnsw_m=M, ef_construction=EF_CONSTRUCTION,
                 ef_search=EF_SEARCH, durability="sync")
    log(f"loaded {n_base} base + {n_q} query vectors; exact ground truth done "
        f"({time.perf_counter() - t_start:.1f}s)")

    work = tempfile.mkdtemp(prefix="vecstore-bench-", dir=args.workdir)
    targets: list[Target] = []
    extras: dict[str, Any] = {}
    try:
        # ---- raw hnswlib build (baseline of 4, index of 1 and 5) ----------------------
        log(f"[raw] hnswlib build of {n_base} vectors, num_threads={threads} ...")
        raw_index, t_raw_build = raw_build(data.base, threads)
        raw_file = os.path.join(work, "raw.hnsw")
        raw_index.save_index(raw_file)
        log(f"[raw] build {t_raw_build:.2f}s")

        # ---- 2: durable ingest ------------------------------------------------------------
        keys = [rid.encode("utf-8") for rid in data.ids]
        values = [data.base[i].tobytes() + cbor2.dumps(data.metas[i]) for i in range(n_base)]
        lmdb_times = []
        for rep in range(3):
            p = os.path.join(work, f"raw-lmdb-{rep}")
            lmdb_times.append(raw_lmdb_puts(p, keys, values, BATCH))
            shutil.rmtree(p)
        t_lmdb = statistics.median(lmdb_times)
        log(f"[raw] LMDB ingest (sync, {BATCH}/txn): "
            + ", ".join(f"{t:.2f}s" for t in lmdb_times) + f" -> median {t_lmdb:.2f}s")
        del keys, values

        store_path = os.path.join(work, "store.db")
        batches = [(data.ids[s:s + BATCH], data.base[s:s + BATCH], data.metas[s:s + BATCH])
                   for s in range(0, n_base, BATCH)]
        store = VecStore.open(store_path, cfg)
        t0 = time.perf_counter()
        for ids, vecs, metas in batches:
            store.upsert_many(ids=ids, vectors=vecs, metadata=metas)
        t_ingest = time.perf_counter() - t0
        st = store.stats()
        log(f"[vecstore] ingest {t_ingest:.2f}s ({n_base / t_ingest:,.0f} rec/s); "
            f"at return: sealed={st.sealed_segments} growing={st.growing_vectors} "
            f"commits={st.extra.get('commits')}")
        t_opt = timed(store.optimize)
        st = store.stats()
        log(f"[vecstore] optimize() {t_opt:.2f}s -> sealed={st.sealed_segments} "
            f"growing={st.growing_vectors} total={st.total_vectors} "
            f"bytes_on_disk={st.bytes_on_disk:,}")
        if st.sealed_segments != 1 or st.growing_vectors or st.total_vectors != n_base:
            raise RuntimeError(f"optimize() did not leave one HNSW segment: {st}")
        extras["ingest"] = {"vecstore_s": t_ingest, "raw_lmdb_s": lmdb_times,
                            "optimize_s": t_opt, "raw_build_s": t_raw_build,
                            "optimize_vs_raw_build": t_opt / t_raw_build,
                            "bytes_on_disk": st.bytes_on_disk}
        targets.append(Target(
            "2 durable upsert_many ingest", n_base / t_ingest, n_base / t_lmdb,
            t_lmdb / t_ingest, ">=", 0.5, "rec/s",
            note=f"vecstore {t_ingest:.2f}s vs raw LMDB {t_lmdb:.2f}s (median of 3) for "
                 f"{n_base} records; optimize() afterwards took {t_opt:.1f}s "
                 f"= {t_opt / t_raw_build:.2f}x a raw {threads}-thread build"))

        # ---- 1: query throughput at equal recall ---------------------------------------
        ef = EF_SEARCH
        for ef in EF_LADDER:
            raw_index.set_ef(ef)
            raw_found, _ = run_raw_queries(raw_index, data.queries, K)  # also warms up
            ours_found, _ = run_store_queries(store, data.queries, K, ef, pos_of)
            r_raw, r_ours = recall(raw_found, truth), recall(ours_found, truth)
            log(f"[query] ef={ef}: recall@10 raw={r_raw:.4f} vecstore={r_ours:.4f}")
            if r_raw >= RECALL_TARGET:
                break
        # Timed rounds, interleaved query by query (raw, ours, raw, ours, ... with the
        # order flipped every other query) so both see the same machine noise.
        times = interleaved({"raw": partial(raw_index.knn_query, k=K, num_threads=1),
                             "ours": partial(store.query, k=K, ef=ef)},
                            data.queries, args.rounds)
        raw_t, ours_t = times["raw"], times["ours"]
        raw_qps = (n_q / raw_t.sum(axis=1)).tolist()
        ours_qps = (n_q / ours_t.sum(axis=1)).tolist()
        q_raw, q_ours = statistics.median(raw_qps), statistics.median(ours_qps)
        best_ratio = raw_t.min(axis=0).sum() / ours_t.min(axis=0).sum()
        log("[query] qps per round raw=" + ", ".join(f"{x:,.0f}" for x in raw_qps)
            + " vecstore=" + ", ".join(f"{x:,.0f}" for x in ours_qps)
            + f"; ratio from per-query best-of-{args.rounds}: {best_ratio:.3f}")
        recall_ok = r_ours >= RECALL_TARGET and r_raw >= RECALL_TARGET
        t1 = Target("1 single-query throughput", q_ours, q_raw, q_ours / q_raw, ">=", 0.7,
                    "q/s", note=f"ef={ef}, recall@10 vecstore={r_ours:.4f} raw={r_raw:.4f} "
                               f"(both must be >= {RECALL_TARGET}); median of {args.rounds} "
                               f"rounds of {n_q} queries interleaved one by one; mean latency "
                               f"vecstore {1e6 / q_ours:.0f}us raw {1e6 / q_raw:.0f}us; "
                               f"ratio of per-query best-of-{args.rounds}: {best_ratio:.3f}")
        t1.ok = t1.ok and recall_ok
        t1.extra = {"ef": ef, "recall_vecstore": r_ours, "recall_raw": r_raw,
                    "qps_vecstore": ours_qps, "qps_raw": raw_qps,
                    "ratio_best_of_rounds": best_ratio}
        targets.insert(0, t1)
        store.close()
        del raw_index

        # ---- 4: reopen vs rebuild ----------------------------------------------------------
        reopen = []
        for rep in range(3):
            t0 = time.perf_counter()
            s = VecStore.open(store_path)
            res = s.query(data.queries[rep % n_q], k=K)
            reopen.append(time.perf_counter() - t0)
            s.close()
            if len(res) != K:
                raise RuntimeError("reopened store answered fewer than k results")
        t_reopen = statistics.median(reopen)
        log("[reopen] open + first query: " + ", ".join(f"{t:.3f}s" for t in reopen))
        targets.append(Target(
            "4 reopen (open + 1st query)", t_reopen, t_raw_build, t_reopen / t_raw_build, "<=",
            0.1, "s", note=f"median of 3 warm-cache reopens; baseline = raw hnswlib build, "
                           f"num_threads={threads}", extra={"reopen_s": reopen}))

        # ---- 5: resident memory ------------------------------------------------------------
        qfile = os.path.join(work, "q.npy")
        np.save(qfile, data.queries[0])
        mem_ours = mem_probe("vecstore", store_path, qfile, n_base, dim)
        mem_raw = mem_probe("hnswlib", raw_file, qfile, n_base, dim)
        ideal = dim * 4 + (2 * M) * 4 + 4
        log(f"[memory] RSS growth: vecstore {mem_ours['growth'] / 2**20:.1f} MiB "
            f"({mem_ours['per_vector']:.0f} B/vec), raw hnswlib load "
            f"{mem_raw['growth'] / 2**20:.1f} MiB ({mem_raw['per_vector']:.0f} B/vec)")
        targets.append(Target(
            "5 resident memory per vector", mem_ours["per_vector"], ideal,
            mem_ours["per_vector"] / ideal, "<=", 1.5, "B/vec",
            note=f"baseline dim*4 + 2*M*4 + 4 = {ideal} B; raw hnswlib index loaded alone: "
                 f"{mem_raw['per_vector']:.0f} B/vec ({mem_raw['per_vector'] / ideal:.3f}x)",
            extra={"vecstore": mem_ours, "raw_hnswlib": mem_raw}))

        # ---- 3: concurrent single-record upserts (group commit) ---------------------------
        total = args.writers * per
        # Alternate the two modes (fresh store each run) so both see the same noise.
        runs = []
        for rep, conc in enumerate((True, False, True, False, True)):
            p = os.path.join(work, f"writes-{rep}")
            r = trio_writes(p, cfg, data, args.writers, per, conc)
            shutil.rmtree(p)
            r["mode"] = "concurrent" if conc else "sequential"
            runs.append(r)
            log(f"[writes] {r['mode']}: {r['calls']} calls in {r['seconds']:.2f}s "
                f"({r['rate']:,.0f}/s), {r['commits']} commits")
        conc_runs = [r for r in runs if r["mode"] == "concurrent"]
        seq_runs = [r for r in runs if r["mode"] == "sequential"]
        conc_rate = statistics.median(r["rate"] for r in conc_runs)
        seq_rate = statistics.median(r["rate"] for r in seq_runs)
        targets.append(Target(
            f"3 {args.writers} concurrent upserts", conc_rate, seq_rate,
            conc_rate / seq_rate, ">=", 10, "rec/s",
            note=f"{args.writers} trio tasks x {per} awaited upserts (median of "
                 f"{len(conc_runs)} runs) vs the same {total} upserts awaited one by one "
                 f"(median of {len(seq_runs)}); commits/calls: concurrent "
                 + ", ".join(f"{r['commits']}/{total}" for r in conc_runs) + "; sequential "
                 + ", ".join(f"{r['commits']}/{total}" for r in seq_runs),
            extra={"runs": runs}))

        targets.sort(key=lambda t: t.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    total_s = time.perf_counter() - t_start
    print()
    print_summary(targets, info, total_s)
    write_json(args.json, info, {"base": n_base, "queries": n_q, "dim": dim, "M": M,
                                 "ef_construction": EF_CONSTRUCTION, "ef_search": EF_SEARCH,
                                 "k": K, "writers": args.writers, "per_writer": per},
               targets, total_s, extras=extras)
    return 0 if all(t.ok for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Version targets (issue #4): old-version queries, rollback, retained-history disk use.

Run (from the repository root)::

    PYTHONPATH=. python benchmarks/bench_versions.py --data /path/to/pypi58k [--quick] [--json OUT]

Three targets, each a ratio against a baseline measured in the same run:

1. *Old-version queries.*  A 50,000-record store is built and optimized;
   ``v_old`` is its version.  Then 5 rounds of churn, each one
   ``upsert_many`` replacing 10% of the live records (new vectors) and one
   ``delete_many`` removing 1%, then ``optimize()``.  The same queries run on
   ``store.snapshot(version=v_old)`` and on the latest snapshot, interleaved
   one by one: cost(old) <= 1.5x cost(latest), unfiltered and with a 10%
   ``bucket`` filter.  Recall@10 of each against an exact brute force over
   that version's state (old-version recall must be >= 0.95).  The same
   queries on an untouched copy of the original store are timed alongside,
   to show what the churn costs the *latest* version too (reported, no target).
2. *Rollback.*  On a copy of the 50,000-record store, import 10,000 new
   records (``upsert_many``, batches of 1,000, ``durability="sync"``), then
   ``store.rollback(v_before_import)``: time(rollback) <= 2x time(import).
   Rolling back the rollback is timed too (reported).
3. *Disk use of retained history.*  10,000 records x 384-d, then 100
   versions each replacing 1,000 records (10%); ``set_retention(versions=100)``
   and ``optimize()``.  ``stats().bytes_on_disk`` <= 1.3x the ideal: the
   vector + metadata (CBOR) bytes of every row version a retained version can
   still see (the latest state plus the superseded rows retention keeps),
   before and after ``compact()``.  After ``set_retention(versions=10)`` +
   ``compact()`` the bytes in use and the file size are reported, and again
   after a reopen, which rewrites ``data.mdb`` compactly (no target).  LMDB
   page use and segment files are broken down, and
   latest-version query cost is compared (reported, no target) with raw
   hnswlib over just the live rows, with 100 and with 10 versions retained.

Scratch stores live in a temporary directory removed at the end.
"""

from __future__ import annotations

from _blas import limit_blas_threads

limit_blas_threads()  # before numpy loads; see _blas.py

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import cbor2
import numpy as np

from _common import (
    Data,
    PathCounter,
    Target,
    add_output_args,
    dataset_parser,
    exact_topk,
    exit_on_sigterm,
    ingest_with_buckets,
    interleaved,
    load_data,
    log,
    log_machine,
    machine_info,
    print_summary,
    recall,
    timed,
    unit_rows,
    write_json,
)
from vecstore import Config, VecStore

K = 10
RECALL_TARGET = 0.95
OLD_QUERY_TARGET = 1.5
ROLLBACK_TARGET = 2.0
DISK_TARGET = 1.3
BATCH = 1_000
BUCKETS = 1_000


def churn_vectors(rng: np.random.Generator, base: np.ndarray, n: int) -> np.ndarray:
    """New vectors for updated records: another record's vector, nudged (so
    neighbourhoods really change, and no two rows are identical)."""
    src = base[rng.integers(0, len(base), n)]
    noise = rng.standard_normal(src.shape).astype(np.float32) / np.sqrt(src.shape[1])
    return unit_rows(src + 0.3 * noise)


def wait_quiet(store: VecStore, cfg: Config, timeout: float) -> float:
    """Wait until background sealing has taken every full growing segment
    (growing rows below the seal threshold stay growing: nothing to wait for)."""
    threshold = getattr(cfg, "seal_threshold", 10_000)
    t0 = time.perf_counter()
    while store.stats().growing_vectors >= threshold and time.perf_counter() - t0 < timeout:
        time.sleep(0.1)
    return time.perf_counter() - t0


def dir_bytes(path: str) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of every file under ``path``."""
    size = alloc = 0
    for root, _d, files in os.walk(path):
        for f in files:
            try:
                st = os.stat(os.path.join(root, f))
            except OSError:
                continue
            size += st.st_size
            alloc += st.st_blocks * 512
    return size, alloc


def disk_breakdown(store: VecStore) -> dict[str, Any]:
    """Where the bytes are: LMDB file vs pages in use, segment files, and
    the rows the in-memory segments still hold (diagnostic; reads private
    attributes, tolerates their absence)."""
    path = str(store.path)
    out: dict[str, Any] = {"bytes_on_disk": store.stats().bytes_on_disk}
    out["apparent"], out["allocated"] = dir_bytes(path)
    out["data.mdb"] = os.path.getsize(os.path.join(path, "data.mdb"))
    out["segments"] = dir_bytes(os.path.join(path, "segments"))[0]
    try:
        eng = store._engine  # diagnostic only
        st = eng.storage  # type: ignore[union-attr]
        env = st.env
        info, est = env.info(), env.stat()
        psize = est["psize"]
        used: dict[str, int] = {}
        with env.begin() as txn:
            for name in list(st.dbs):
                db = st.db(name)
                if db is None:
                    continue
                s = txn.stat(db)
                used[name] = (s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"]) * psize
        used["(main)"] = (est["branch_pages"] + est["leaf_pages"] + est["overflow_pages"]) * psize
        out["lmdb_used_by_db"] = dict(sorted(used.items(), key=lambda kv: -kv[1]))
        out["lmdb_used"] = sum(used.values())
        out["lmdb_high_water"] = (info["last_pgno"] + 1) * psize
        seg_rows = seg_dead = 0
        for ps in eng.state.parts.values():  # type: ignore[union-attr]
            for seg in ps.sealed:
                seg_rows += seg.n
                seg_dead += seg.n_dead
        out["segment_rows"] = seg_rows
        out["segment_dead_rows"] = seg_dead
    except Exception as exc:  # pragma: no cover - internals moved
        out["internals"] = f"n/a ({exc!r})"
    return out


def describe_disk(d: dict[str, Any]) -> str:
    s = (f"bytes_on_disk {d['bytes_on_disk'] / 1e6:.1f} MB = data.mdb {d['data.mdb'] / 1e6:.1f} MB"
         f" + segments {d['segments'] / 1e6:.1f} MB (allocated {d['allocated'] / 1e6:.1f} MB)")
    if "lmdb_used" in d:
        top = ", ".join(f"{k} {v / 1e6:.1f}" for k, v in list(d["lmdb_used_by_db"].items())[:5])
        s += (f"; LMDB pages in use {d['lmdb_used'] / 1e6:.1f} MB of high-water "
              f"{d['lmdb_high_water'] / 1e6:.1f} MB ({top} MB); HNSW segments hold "
              f"{d['segment_rows']} rows ({d['segment_dead_rows']} dead)")
    return s


# -- main -------------------------------------------------------------------------------


def build_base(path: str, data: Data, cfg: Config) -> dict[str, float]:
    store = VecStore.open(path, cfg)
    try:
        t_ingest = ingest_with_buckets(store, data, BATCH, BUCKETS)
        store.create_index("bucket", "btree")
        return {"ingest_s": t_ingest, "optimize_s": timed(store.optimize)}
    finally:
        store.close()


def part_old_queries(args: Any, data: Data, path: str, pristine: VecStore, n_q: int,
                     rounds: int, targets: list[Target], extras: dict[str, Any]) -> None:
    n = len(data.ids)
    rng = np.random.default_rng(1)
    store = VecStore.open(path)
    try:
        v_old = store.version
        cur = data.base.copy()
        alive = np.ones(n, bool)
        n_upd, n_del = max(1, n // 10), max(1, n // 100)
        t0 = time.perf_counter()
        for r in range(args.churn):
            live = np.flatnonzero(alive)
            upd = np.sort(rng.choice(live, n_upd, replace=False))
            vecs = churn_vectors(rng, data.base, n_upd)
            metas = [dict(data.metas[i], bucket=int(i) % BUCKETS, rev=r + 1) for i in upd]
            for s in range(0, n_upd, 10_000):  # one version per round unless huge
                store.upsert_many(ids=[data.ids[i] for i in upd[s:s + 10_000]],
                                  vectors=vecs[s:s + 10_000], metadata=metas[s:s + 10_000],
                                  message=f"churn {r + 1}: update")
            cur[upd] = vecs
            rest = np.setdiff1d(live, upd)
            dels = rng.choice(rest, n_del, replace=False)
            store.delete_many([data.ids[i] for i in dels], message=f"churn {r + 1}: delete")
            alive[dels] = False
        t_churn = time.perf_counter() - t0
        t_opt = timed(store.optimize)
        st = store.stats()
        log(f"[old-queries] v_old={v_old}; {args.churn} rounds x ({n_upd} updates + {n_del} "
            f"deletes) in {t_churn:.1f}s -> version {store.version}, {st.total_vectors} live; "
            f"optimize {t_opt:.1f}s; {describe_disk(disk_breakdown(store))}")
        if st.total_vectors != int(alive.sum()):
            raise RuntimeError(f"store has {st.total_vectors} live records, expected {alive.sum()}")
        old = store.snapshot(version=v_old)
        latest = store.snapshot()
        if len(old) != n:
            raise RuntimeError(f"snapshot(version={v_old}) has {len(old)} records, expected {n}")
        pos_of = {rid: i for i, rid in enumerate(data.ids)}
        bucket = np.arange(n) % BUCKETS
        flt_n = max(1, BUCKETS // 10)
        flt = f"bucket < {flt_n}"
        # The pristine store's positions are the same ids, so one ground truth serves
        # both "old" and "pristine".
        all_rows = np.arange(n)
        live_rows = np.flatnonzero(alive)
        cases = [("unfiltered", None, all_rows, live_rows),
                 (f"filter {flt!r}", flt, all_rows[bucket < flt_n],
                  live_rows[bucket[live_rows] < flt_n])]
        for label, f, old_rows, new_rows in cases:
            truth_old = exact_topk(data.base, old_rows, data.queries, K)
            truth_new = exact_topk(cur, new_rows, data.queries, K)

            def runner(snap: Any, f: str | None = f) -> Callable[[np.ndarray], np.ndarray]:
                def run(vec: np.ndarray) -> np.ndarray:
                    res = snap.query(vec, k=K, filter=f)
                    return np.fromiter((pos_of[r.id] for r in res), np.int64, len(res))
                return run

            methods = {"old": runner(old), "latest": runner(latest),
                       "pristine": runner(pristine)}
            found = {}
            paths = {}
            for name, fn in methods.items():
                with PathCounter() as pc:
                    found[name] = [fn(q) for q in data.queries]
                paths[name] = pc.summary(n_q)
            snaps = {"old": old, "latest": latest, "pristine": pristine}
            plans = {name: sn.explain(data.queries[0], filter=f).strategy
                     for name, sn in snaps.items()}
            rec = {"old": recall(found["old"], truth_old),
                   "latest": recall(found["latest"], truth_new),
                   "pristine": recall(found["pristine"], truth_old)}
            t = interleaved(methods, data.queries, rounds)
            per_q = {name: statistics.median((t[name].sum(axis=1) / n_q).tolist()) * 1e6
                     for name in methods}
            ratio = per_q["old"] / per_q["latest"]
            log(f"[old-queries] {label}: per query old {per_q['old']:,.0f}us, latest "
                f"{per_q['latest']:,.0f}us, pristine (no churn) {per_q['pristine']:,.0f}us; "
                f"recall@10 old {rec['old']:.4f} latest {rec['latest']:.4f} pristine "
                f"{rec['pristine']:.4f}; explain / executed: "
                + "; ".join(f"{nm} {plans[nm]} / {paths[nm]}" for nm in methods))
            extras.setdefault("old_queries", []).append(
                {"case": label, "us_per_query": per_q, "recall": rec, "v_old": v_old,
                 "explain": plans, "executed": paths,
                 "version": store.version, "churn_s": t_churn, "optimize_s": t_opt})
            targets.append(Target(
                f"1 old-version query cost ({label})", per_q["old"], per_q["latest"], ratio,
                "<=", OLD_QUERY_TARGET, "us/q",
                note=f"snapshot(version={v_old}) vs latest (v{store.version}) after "
                     f"{args.churn} x (10% updated + 1% deleted) + optimize(); median of "
                     f"{rounds} rounds x {n_q} interleaved queries; recall@10 old "
                     f"{rec['old']:.4f}, latest {rec['latest']:.4f}; the same query on an "
                     f"untouched copy (no churn) costs {per_q['pristine']:,.0f}us = latest is "
                     f"{per_q['latest'] / per_q['pristine']:.2f}x slower than before the churn",
                extra={"us_per_query": per_q, "recall": rec}))
            targets.append(Target(
                f"1 old-version recall@10 ({label})", rec["old"], 1.0, rec["old"], ">=",
                RECALL_TARGET, "recall",
                note=f"vs exact brute force over the state at v{v_old}"))
        del old, latest
    finally:
        store.close()


def part_rollback(args: Any, data: Data, store: VecStore, cfg: Config, targets: list[Target],
                  extras: dict[str, Any]) -> None:
    n_imp = args.import_n
    n = len(data.ids)
    rng = np.random.default_rng(2)
    take = min(n_imp, len(data.spare))
    vecs = np.concatenate([data.spare[:take], churn_vectors(rng, data.base, n_imp - take)])
    metas = [dict(data.spare_metas[i] if i < take else {}, bucket=i % BUCKETS,
                  source="import") for i in range(n_imp)]
    ids = [f"import-{i:06d}" for i in range(n_imp)]
    v_before = store.version
    t0 = time.perf_counter()
    for s in range(0, n_imp, BATCH):
        store.upsert_many(ids=ids[s:s + BATCH], vectors=vecs[s:s + BATCH],
                          metadata=metas[s:s + BATCH], message="import")
    t_import = time.perf_counter() - t0
    v_import = store.version
    if store.count() != n + n_imp:
        raise RuntimeError(f"after import: {store.count()} records, expected {n + n_imp}")
    t_wait = wait_quiet(store, cfg, 600)
    st = store.stats()
    log(f"[rollback] import of {n_imp} records ({(n_imp + BATCH - 1) // BATCH} x upsert_many, "
        f"sync) {t_import:.2f}s -> v{v_import}; waited {t_wait:.1f}s for background sealing "
        f"(sealed={st.sealed_segments}, growing={st.growing_vectors})")
    t0 = time.perf_counter()
    v_rb = store.rollback(v_before, message="undo import")
    t_rb = time.perf_counter() - t0
    problems = []
    if store.count() != n:
        problems.append(f"after rollback count()={store.count()}, expected {n}")
    if store.get(ids[0]) is not None or store.get(ids[-1]) is not None:
        problems.append("an imported record survived the rollback")
    if store.get(data.ids[0]) is None:
        problems.append("an original record is missing after the rollback")
    t_wait2 = wait_quiet(store, cfg, 600)
    t0 = time.perf_counter()
    store.rollback(v_import, message="redo import")
    t_rb2 = time.perf_counter() - t0
    if store.count() != n + n_imp:
        problems.append(f"after rolling back the rollback count()={store.count()}, "
                        f"expected {n + n_imp}")
    rec = store.get(ids[-1])
    if rec is None or not np.allclose(rec.vector, vecs[-1]):
        problems.append("rolling back the rollback did not restore an imported record")
    hist = store.history(ids[0])
    ops = [h.op for h in hist]
    log(f"[rollback] rollback({v_before}) {t_rb:.2f}s -> v{v_rb}; rollback of the rollback "
        f"{t_rb2:.2f}s (after {t_wait2:.1f}s quiet wait); history({ids[0]!r}) ops={ops}"
        + (f"; PROBLEMS: {'; '.join(problems)}" if problems else ""))
    extras["rollback"] = {"import_s": t_import, "rollback_s": t_rb, "rollback_of_rollback_s": t_rb2,
                          "wait_s": t_wait, "history_ops": ops, "problems": problems}
    t = Target(f"2 rollback of a {n_imp:,}-record import", t_rb, t_import, t_rb / t_import, "<=",
               ROLLBACK_TARGET, "s",
               note=f"rollback({v_before}) on {n} + {n_imp} records vs importing the {n_imp} "
                    f"({BATCH}/call, durability='sync'); rolling the rollback back (restores "
                    f"{n_imp}) took {t_rb2:.2f}s = {t_rb2 / t_import:.2f}x the import"
                    + (f"; PROBLEMS: {'; '.join(problems)}" if problems else ""))
    t.ok = t.ok and not problems
    targets.append(t)


def part_disk(args: Any, data: Data, path: str, targets: list[Target],
              extras: dict[str, Any]) -> None:
    n = min(args.disk_records, len(data.ids))
    n_versions, n_change = args.disk_versions, max(1, n // 10)
    dim = data.base.shape[1]
    rng = np.random.default_rng(3)
    cfg = Config(dim=dim, distance="cosine", durability="sync")
    store = VecStore.open(path, cfg)
    # Every row version written: born, died (INF while live), vector+metadata bytes.
    born: list[int] = []
    died: list[int] = []
    nbytes: list[int] = []
    current = np.full(n, -1, np.int64)  # id position -> index into the lists (-1: none)
    cur_vecs: dict[int, np.ndarray] = {}  # id position -> its latest vector
    inf = 2**62

    def write(pos: np.ndarray, vecs: np.ndarray, metas: list[dict[str, Any]], v: int) -> None:
        for j, p in enumerate(pos.tolist()):
            if current[p] >= 0:
                died[current[p]] = v
            cur_vecs[p] = vecs[j]
            current[p] = len(born)
            born.append(v)
            died.append(inf)
            nbytes.append(vecs.shape[1] * 4 + len(cbor2.dumps(metas[j])))

    try:
        t0 = time.perf_counter()
        ids = data.ids[:n]
        metas = [dict(m, bucket=i % BUCKETS, rev=0) for i, m in enumerate(data.metas[:n])]
        v = store.upsert_many(ids=ids, vectors=data.base[:n], metadata=metas)
        write(np.arange(n), data.base[:n], metas, v)
        for r in range(n_versions):
            pos = np.sort(rng.choice(n, n_change, replace=False))
            vecs = churn_vectors(rng, data.base[:n], n_change)
            metas = [dict(data.metas[p], bucket=int(p) % BUCKETS, rev=r + 1) for p in pos]
            v = store.upsert_many(ids=[ids[p] for p in pos], vectors=vecs, metadata=metas)
            write(pos, vecs, metas, v)
        t_write = time.perf_counter() - t0
        store.set_retention(versions=n_versions)
        t_opt = timed(store.optimize)
        d_arr, s_arr = np.array(died), np.array(nbytes)
        live_bytes = int(s_arr[d_arr == inf].sum())

        def ideal(floor: int) -> tuple[int, int, int]:
            keep = d_arr > floor
            return int(s_arr[keep].sum()), int(keep.sum()), int((keep & (d_arr != inf)).sum())

        log(f"[disk] {n} records x {dim}-d, {n_versions} versions x {n_change} replaced, written "
            f"in {t_write:.1f}s; optimize {t_opt:.1f}s; {len(born)} row versions written "
            f"({s_arr.sum() / 1e6:.1f} MB of vector+metadata), latest state "
            f"{live_bytes / 1e6:.1f} MB")
        rows = []
        n_probe = min(len(data.queries), 200)

        def latest_cost(label: str) -> None:
            """Reported, no target: what retained history costs latest-version
            queries -- the store vs raw hnswlib over just the live rows."""
            import hnswlib

            live = np.array([cur_vecs[p] for p in range(n)], np.float32)
            raw = hnswlib.Index(space="cosine", dim=dim)
            raw.init_index(max_elements=n, M=16, ef_construction=200, random_seed=100)
            raw.add_items(live, np.arange(n), num_threads=os.cpu_count() or 1)
            raw.set_ef(64)
            qs = data.queries[:n_probe]
            truth = exact_topk(unit_rows(live), np.arange(n), qs, K)
            pos_of = {rid: i for i, rid in enumerate(ids)}
            snap = store.snapshot()

            def ours(q: np.ndarray) -> np.ndarray:
                return np.fromiter((pos_of[r.id] for r in snap.query(q, k=K)), np.int64)

            def theirs(q: np.ndarray) -> np.ndarray:
                return raw.knn_query(q, k=K, num_threads=1)[0][0].astype(np.int64)

            rec = (recall([ours(q) for q in qs], truth), recall([theirs(q) for q in qs], truth))
            t = interleaved({"vecstore": ours, "raw": theirs}, qs, 3)
            us = {k: statistics.median((v.sum(axis=1) / len(qs)).tolist()) * 1e6
                  for k, v in t.items()}
            log(f"[disk] latest-version query, {label}: vecstore {us['vecstore']:,.0f}us/q "
                f"(recall@10 {rec[0]:.4f}) vs raw hnswlib over the {n} live rows only "
                f"{us['raw']:,.0f}us/q (recall@10 {rec[1]:.4f}) = {us['vecstore'] / us['raw']:.1f}x"
                " (reported, no target)")
            extras.setdefault("disk_latest_query", []).append(
                {"label": label, "us_per_query": us, "recall": rec})

        def measure(label: str, retained: int, target: bool = True) -> None:
            vs = store.versions()
            floor = vs[0].version
            ib, nrows, nsuper = ideal(floor)
            d = disk_breakdown(store)
            ratio = d["bytes_on_disk"] / ib
            log(f"[disk] {label}: {len(vs)} versions retained (v{floor}..v{vs[-1].version}); "
                f"ideal {ib / 1e6:.1f} MB = latest {live_bytes / 1e6:.1f} MB + {nsuper} retained "
                f"superseded rows {(ib - live_bytes) / 1e6:.1f} MB; {describe_disk(d)}; "
                f"ratio {ratio:.2f}")
            rows.append({"label": label, "versions": len(vs), "floor": floor, "ideal": ib,
                         "ideal_rows": nrows, "superseded_rows": nsuper, **d})
            if not target:
                used = d.get("lmdb_used", d["data.mdb"]) + d["segments"]
                log(f"[disk] {label} (reported, no target): in use {used / 1e6:.1f} MB = "
                    f"{used / ib:.2f}x ideal; on disk {d['bytes_on_disk'] / 1e6:.1f} MB = "
                    f"{d['bytes_on_disk'] / ib:.2f}x (LMDB reuses freed pages; data.mdb "
                    "shrinks when a writer next opens the store alone)")
                return
            targets.append(Target(
                f"3 disk use, {label}", d["bytes_on_disk"], ib, ratio, "<=", DISK_TARGET, "MB",
                note=f"{len(vs)} versions retained; ideal = {nrows} row versions' vector+CBOR "
                     f"metadata ({live_bytes / 1e6:.1f} MB latest + {(ib - live_bytes) / 1e6:.1f}"
                     f" MB superseded); data.mdb {d['data.mdb'] / 1e6:.1f} MB"
                     + (f" (pages in use {d['lmdb_used'] / 1e6:.1f} MB)" if "lmdb_used" in d
                        else "")
                     + f", segments {d['segments'] / 1e6:.1f} MB"
                     + (f" ({d['segment_rows']} rows in HNSW)" if "segment_rows" in d else "")))

        measure(f"{n_versions} versions, before compact()", n_versions)
        latest_cost(f"{n_versions} versions retained")
        t0 = time.perf_counter()
        c1 = store.compact()
        t_c1 = time.perf_counter() - t0
        log(f"[disk] compact() {t_c1:.1f}s -> {c1}")
        measure(f"{n_versions} versions, after compact()", n_versions)
        keep = max(1, min(10, n_versions // 10))
        store.set_retention(versions=keep)
        t0 = time.perf_counter()
        c2 = store.compact()
        t_c2 = time.perf_counter() - t0
        log(f"[disk] set_retention(versions={keep}) + compact() {t_c2:.1f}s -> {c2}")
        measure(f"retention {keep}, after compact()", keep, target=False)
        latest_cost(f"retention {keep} after compact()")
        store.close()
        t0 = time.perf_counter()
        store = VecStore.open(path)  # alone: rewrites data.mdb compactly (vacuum)
        t_open = time.perf_counter() - t0
        log(f"[disk] close + reopen {t_open:.1f}s")
        measure(f"retention {keep}, after compact() + reopen", keep, target=False)
        if store.count() != n:
            raise RuntimeError(f"disk store has {store.count()} records, expected {n}")
        extras["disk"] = {"rows": rows, "write_s": t_write, "optimize_s": t_opt,
                          "compact_s": [t_c1, t_c2], "compact_results": [c1, c2]}
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    ap = dataset_parser(__doc__, "records in parts 1-2 (default 50000)",
                        "queries (default 200)")
    ap.add_argument("--rounds", type=int, default=None, help="timed query rounds (default 3)")
    ap.add_argument("--churn", type=int, default=5, help="churn rounds in part 1 (default 5)")
    ap.add_argument("--import-n", type=int, default=None, help="records imported in part 2 "
                    "(default 10000)")
    ap.add_argument("--disk-records", type=int, default=None, help="part 3 records (default 10000)")
    ap.add_argument("--disk-versions", type=int, default=None,
                    help="part 3 versions retained (default 100)")
    ap.add_argument("--parts", default="123", help="which parts to run (default 123)")
    ap.add_argument("--quick", action="store_true", help="smoke run (small sizes)")
    ap.add_argument("--blas-threads", default="1", help="BLAS threads for numpy (default 1)")
    add_output_args(ap)
    args = ap.parse_args(argv)
    q = args.quick
    n_base = args.base if args.base is not None else (5_000 if q else 50_000)
    n_q = args.queries if args.queries is not None else (50 if q else 200)
    rounds = args.rounds if args.rounds is not None else (1 if q else 3)
    if args.import_n is None:
        args.import_n = 1_000 if q else 10_000
    if args.disk_records is None:
        args.disk_records = 2_000 if q else 10_000
    if args.disk_versions is None:
        args.disk_versions = 20 if q else 100

    exit_on_sigterm()
    t_start = time.perf_counter()
    info = machine_info()
    log_machine(info)
    log(f"== params: base={n_base} queries={n_q} rounds={rounds} churn={args.churn} "
        f"import={args.import_n} disk={args.disk_records}x{args.disk_versions} parts={args.parts}")
    data = load_data(args.data, n_base, n_q, spare=True)
    dim = data.base.shape[1]
    cfg = Config(dim=dim, distance="cosine", durability="sync")
    work = tempfile.mkdtemp(prefix="vecstore-bench-versions-", dir=args.workdir)
    targets: list[Target] = []
    extras: dict[str, Any] = {}
    try:
        if "1" in args.parts or "2" in args.parts:
            path_a = os.path.join(work, "a.db")
            path_b = os.path.join(work, "b.db")
            b = build_base(path_a, data, cfg)
            shutil.copytree(path_a, path_b)  # closed store: a valid copy
            log(f"[base] {n_base} records: ingest {b['ingest_s']:.1f}s, optimize "
                f"{b['optimize_s']:.1f}s; copied for part 2")
            extras["base"] = b
            pristine = VecStore.open(path_b, cfg)
            try:
                if "1" in args.parts:
                    part_old_queries(args, data, path_a, pristine, n_q, rounds, targets, extras)
                shutil.rmtree(path_a, ignore_errors=True)
                if "2" in args.parts:
                    part_rollback(args, data, pristine, cfg, targets, extras)
            finally:
                pristine.close()
            shutil.rmtree(path_b, ignore_errors=True)
        if "3" in args.parts:
            part_disk(args, data, os.path.join(work, "c.db"), targets, extras)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    total_s = time.perf_counter() - t_start
    print()
    print_summary(targets, info, total_s)
    write_json(args.json, info, {"base": n_base, "queries": n_q, "rounds": rounds,
                                 "churn": args.churn, "import": args.import_n,
                                 "disk_records": args.disk_records,
                                 "disk_versions": args.disk_versions},
               targets, total_s, extras=extras)
    return 0 if all(t.ok for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())

"""What recording and reading metrics cost queries (issue #10).

Single-query throughput of ``VecStore.query`` with the store's metrics
recorder on vs. a no-op recorder (what ``VECSTORE_METRICS=0`` installs),
interleaved query by query on one store; then with a thread reading
``store.metrics().to_prometheus()`` while the queries run, and with several
query threads at once.  Every figure is a ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from _common import (
    Target,
    exit_on_sigterm,
    interleaved,
    load_data,
    log,
    log_machine,
    machine_info,
    print_summary,
    unit_rows,
    write_json,
)
from vecstore import Config, VecStore
from vecstore._metrics.recorder import NullRecorder

K, M, EF_CONSTRUCTION, EF_SEARCH = 10, 16, 200, 64
GOAL = 0.97


def synthetic(n: int, nq: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return unit_rows(rng.standard_normal((n, dim))), unit_rows(rng.standard_normal((nq, dim)))


def micro(fn: Callable[[], Any], n: int) -> float:
    """Best-of-5 microseconds per call."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def run_rounds(modes: dict[str, Callable[[], Callable[[], None]]], queries: np.ndarray,
               query: Callable[[np.ndarray], Any], rounds: int) -> dict[str, list[float]]:
    """Queries per second per round for each mode; a mode's setup returns its
    teardown.  Modes alternate round by round (order rotated)."""
    names = list(modes)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            stop = modes[name]()
            try:
                t0 = time.perf_counter()
                for q in queries:
                    query(q)
                out[name].append(len(queries) / (time.perf_counter() - t0))
            finally:
                stop()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--data", help="dataset directory (vectors.npy, records.jsonl.gz); "
                                   "default: synthetic unit vectors")
    ap.add_argument("--base", type=int, default=None, help="base vectors (20000; 5000 --quick)")
    ap.add_argument("--queries", type=int, default=None, help="queries (500; 200 --quick)")
    ap.add_argument("--dim", type=int, default=384, help="synthetic dimension (384)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds (5; 3 --quick)")
    ap.add_argument("--threads", type=int, default=4, help="concurrent query threads (4)")
    ap.add_argument("--quick", action="store_true", help="smoke run")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    ap.add_argument("--workdir", help="where to put the scratch directory (default: $TMPDIR)")
    args = ap.parse_args(argv)
    n = args.base or (5_000 if args.quick else 20_000)
    nq = args.queries or (200 if args.quick else 500)
    rounds = args.rounds or (3 if args.quick else 5)
    exit_on_sigterm()
    t_start = time.perf_counter()
    info = machine_info(blas=False)
    log_machine(info)
    if args.data:
        data = load_data(args.data, n, min(nq, 1000))
        base, queries = data.base, data.queries
    else:
        base, queries = synthetic(n, nq, args.dim)
    dim = base.shape[1]
    log(f"== params: base={n} queries={len(queries)} dim={dim} rounds={rounds} "
        f"data={'synthetic' if not args.data else args.data}")
    work = tempfile.mkdtemp(prefix="vecstore-bench-metrics-", dir=args.workdir)
    targets: list[Target] = []
    extras: dict[str, Any] = {}
    try:
        cfg = Config(dim=dim, distance="cosine", hnsw_m=M, ef_construction=EF_CONSTRUCTION,
                     ef_search=EF_SEARCH, durability="relaxed")
        store = VecStore.open(os.path.join(work, "s"), cfg)
        for s in range(0, n, 1000):
            store.upsert_many(ids=[str(i) for i in range(s, min(n, s + 1000))],
                              vectors=base[s:s + 1000],
                              metadata=[{"bucket": i % 1000} for i in range(s, min(n, s + 1000))])
        store.create_index("bucket", "btree")
        t0 = time.perf_counter()
        store.optimize()
        log(f"[build] {n} rows ingested and optimized ({time.perf_counter() - t0:.1f}s optimize)")
        eng = store._engine
        assert eng is not None
        real, null = eng.metrics, NullRecorder()

        # -- the pieces, alone -------------------------------------------------------------
        for q in queries[:50]:
            store.query(q, k=K)
        snap = real.snapshot()
        costs = {"record one query": micro(lambda: real.query("hnsw", 2e-4), 20_000),
                 "store.metrics()": micro(store.metrics, 2_000),
                 "metrics().to_prometheus()": micro(lambda: store.metrics().to_prometheus(), 300),
                 "np.count_nonzero(mask) (filtered tally, per segment)":
                     # the mask is made once, outside the timed calls
                     micro(lambda m=np.ones(n, bool): np.count_nonzero(m), 20_000)}  # noqa: B008
        lat = snap.query_latency
        log("[micro] " + "; ".join(f"{k}: {v:.2f} us" for k, v in costs.items()))
        log(f"[micro] warm-up query latency p50 {lat.p50 * 1e6:.0f} us, p99 {lat.p99 * 1e6:.0f} us")
        extras["micro_us"] = costs

        # -- 1, 2: single query, recorder on vs off, interleaved query by query ---------------
        for label, flt in (("unfiltered", None), ("filtered bucket<100", "bucket < 100")):
            def on(q: np.ndarray, flt: Any = flt) -> Any:
                eng.metrics = real
                return store.query(q, k=K, filter=flt)

            def off(q: np.ndarray, flt: Any = flt) -> Any:
                eng.metrics = null
                return store.query(q, k=K, filter=flt)

            strategy = store.explain(queries[0], k=K, filter=flt).strategy
            t = interleaved({"on": on, "off": off}, queries, rounds)
            eng.metrics = real
            q_on = statistics.median((len(queries) / t["on"].sum(axis=1)).tolist())
            q_off = statistics.median((len(queries) / t["off"].sum(axis=1)).tolist())
            best = t["off"].min(axis=0).sum() / t["on"].min(axis=0).sum()
            log(f"[single {label}] on {q_on:,.0f} q/s, off {q_off:,.0f} q/s, "
                f"best-of-{rounds} ratio {best:.3f}")
            targets.append(Target(f"{len(targets) + 1} single query, {label}", q_on, q_off,
                                  best, ">=", GOAL, "q/s",
                                  note=f"strategy {strategy}; recorder on vs no-op, {rounds} "
                                       f"rounds interleaved query by query; q/s are medians "
                                       f"(their ratio {q_on / q_off:.3f}), the ratio is of "
                                       f"per-query best-of-{rounds} times (robust to a noisy, "
                                       f"shared machine)",
                                  extra={"median_ratio": q_on / q_off}))

        # -- 3: a thread reading metrics while queries run -----------------------------------
        scrapes = {"n": 0}

        def reader(interval: float) -> Callable[[], Callable[[], None]]:
            def start() -> Callable[[], None]:
                eng.metrics = real
                stop = threading.Event()

                def loop() -> None:
                    while not stop.is_set():
                        store.metrics().to_prometheus()
                        scrapes["n"] += 1
                        if interval:
                            stop.wait(interval)

                th = threading.Thread(target=loop, daemon=True)
                th.start()
                return lambda: (stop.set(), th.join())  # type: ignore[func-returns-value]
            return start

        def plain(rec: Any) -> Callable[[], Callable[[], None]]:
            def start() -> Callable[[], None]:
                eng.metrics = rec
                return lambda: None
            return start

        modes = {"off": plain(null), "on": plain(real), "on+reader 100/s": reader(0.01),
                 "on+reader tight loop": reader(0.0)}
        t0 = time.perf_counter()
        qps = run_rounds(modes, queries, lambda q: store.query(q, k=K), 2 * rounds)
        secs = time.perf_counter() - t0
        top = {k: max(v) for k, v in qps.items()}
        med = {k: statistics.median(v) for k, v in qps.items()}
        log("[reader] best round " + ", ".join(f"{k} {v:,.0f} q/s" for k, v in top.items())
            + f"; {scrapes['n']} scrapes in {secs:.1f}s")
        r100 = "on+reader 100/s"
        targets.append(Target(f"{len(targets) + 1} single query, metrics read 100/s",
                              top[r100], top["off"], top[r100] / top["off"], ">=", GOAL, "q/s",
                              note=f"a thread runs store.metrics().to_prometheus() every 10 ms "
                                   f"(Prometheus scrapes every 15 s); {2 * rounds} rounds per "
                                   f"mode, "
                                   f"alternating; best round per mode (medians: "
                                   f"{med[r100] / med['off']:.3f}). Without a reader: on/off "
                                   f"{top['on'] / top['off']:.3f}. Reader in a tight loop "
                                   f"(no target; a pure-Python thread that never sleeps takes "
                                   f"the GIL from the query thread): "
                                   f"{top['on+reader tight loop'] / top['off']:.3f}",
                              extra={"qps": qps}))

        # -- 4: several query threads -------------------------------------------------------------
        # A copy of the store with the no-op recorder; every thread times each of its
        # queries on both stores (order flipped every query), so both see the same
        # contention and noise, and the recording store's lock sees every thread.
        eng.metrics = real
        store.backup(os.path.join(work, "copy"))
        other = VecStore.open(os.path.join(work, "copy"))
        assert other._engine is not None
        other._engine.metrics = null
        parts = np.array_split(np.arange(len(queries)), args.threads)
        times = {m: np.full((rounds, len(queries)), np.nan) for m in ("on", "off")}

        def work(r: int, idx: np.ndarray) -> None:
            for _j, i in enumerate(idx.tolist()):
                pair = ((store, "on"), (other, "off"))
                for st, mode in pair if (i + r) % 2 == 0 else pair[::-1]:
                    t0 = time.perf_counter()
                    st.query(queries[i], k=K)
                    times[mode][r, i] = time.perf_counter() - t0

        for r in range(rounds):
            ths = [threading.Thread(target=work, args=(r, p)) for p in parts]
            for th in ths:
                th.start()
            for th in ths:
                th.join()
        other.close()
        best = times["off"].min(axis=0).sum() / times["on"].min(axis=0).sum()
        med = statistics.median((times["off"].sum(axis=1) / times["on"].sum(axis=1)).tolist())
        c_on = args.threads * len(queries) / times["on"].sum(axis=1).mean()
        c_off = args.threads * len(queries) / times["off"].sum(axis=1).mean()
        log(f"[threads] {args.threads} query threads: per-query best-of-{rounds} ratio "
            f"{best:.3f}, median of rounds {med:.3f}")
        targets.append(Target(f"{len(targets) + 1} {args.threads} query threads", c_on, c_off,
                              best, ">=", GOAL, "q/s",
                              note=f"{args.threads} threads, each timing every query of its "
                                   f"share on the store (recorder on) and on a backup copy "
                                   f"(no-op recorder), order flipped every query; ratio of "
                                   f"per-query best-of-{rounds} times (median of the rounds' "
                                   f"ratios {med:.3f}); q/s = threads / mean latency",
                              extra={"median_ratio": med}))
        m = store.metrics()
        log(f"[metrics] {m.query_latency.count} queries recorded: {m.queries}; "
            f"p50 {m.query_latency.p50 * 1e6:.0f} us p95 {m.query_latency.p95 * 1e6:.0f} us "
            f"p99 {m.query_latency.p99 * 1e6:.0f} us")
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total_s = time.perf_counter() - t_start
    print()
    print_summary(targets, info, total_s)
    write_json(args.json, info, {"base": n, "queries": len(queries), "dim": dim,
                                 "rounds": rounds, "threads": args.threads,
                                 "data": args.data or "synthetic"},
               targets, total_s, extras=extras)
    return 0 if all(t.ok for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())

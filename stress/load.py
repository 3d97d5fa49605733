"""Load: readers query while the writer ingests, seals and compacts.

One trio program holds an ``AsyncVecStore``: a writer task upserts batches
(new ids and overwrites), deletes, and every few seconds calls
``optimize()`` (seal + merge) and ``compact()`` (retention is short, so
compaction really purges); ``seal_threshold`` is small, so background seals
run all the time.  Beside it, N reader tasks in the same process take a
snapshot, query it (plain k-NN, filtered k-NN, count) and time each query;
M reader processes do the same on ``read_only=True`` stores with
``refresh()`` every 0.2 s.

Every reader error is a failure.  Afterwards the writer's log (version ->
batch) is replayed to rebuild the exact state at each sampled snapshot
version, and each sampled answer is checked against it: every result is a
record live at that version with that version's metadata, its score is the
exact similarity, scores are ordered, there are ``min(k, matching)``
results, a filter is honoured, ``count()`` is exact, and recall@10 against
exact search is reported (and must stay >= 0.90 on average).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._check import check_store, cli_check
from ._children import load_reader
from ._common import fmt_exc, fork_context, workdir
from ._loadreads import DIM, GROUPS, query_vector, reader_step
from ._report import Report

K = 10
POOL = 30_000
SEAL = 2_000
RETENTION = 300
RECALL_MIN = 0.90


def batch(b: int, kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Ids (pool indexes) and vectors of batch ``b`` (deterministic)."""
    rng = np.random.default_rng([b, 7])
    if kind == "upsert_many":
        idx = rng.choice(POOL, int(rng.integers(50, 300)), replace=False)
    elif kind == "upsert":
        idx = rng.integers(POOL, size=1)
    else:
        idx = rng.choice(POOL, int(rng.integers(10, 60)), replace=False)
    vecs = None
    if kind != "delete_many":
        vecs = (rng.standard_normal((idx.size, DIM)) + 0.01).astype(np.float32)
    return idx, vecs


class Replay:
    """The exact store state, advanced along the writer's log."""

    def __init__(self, log: list[tuple[int, str, int]]) -> None:
        self.log = log
        self.pos = 0
        self.live = np.zeros(POOL, bool)
        self.b = np.zeros(POOL, np.int64)
        self.vecs = np.zeros((POOL, DIM), np.float64)
        self.groups = {"g": np.arange(POOL) % GROUPS, "h": (np.arange(POOL) // GROUPS) % GROUPS}

    def advance(self, version: int) -> None:
        while self.pos < len(self.log) and self.log[self.pos][0] <= version:
            _v, kind, b = self.log[self.pos]
            idx, vecs = batch(b, kind)
            if vecs is None:
                self.live[idx] = False
            else:
                self.live[idx] = True
                self.b[idx] = b
                vv = vecs.astype(np.float64)
                self.vecs[idx] = vv / np.linalg.norm(vv, axis=1, keepdims=True)
            self.pos += 1


def verify(log: list[tuple[int, str, int]], samples: list[dict[str, Any]],
           report: Report) -> dict[str, Any]:
    rep = Replay(log)
    recalls: list[float] = []
    checked = 0
    bad: list[str] = []
    for s in sorted(samples, key=lambda s: s["v"]):
        rep.advance(s["v"])
        checked += 1
        if "count" in s:
            if s["count"] != int(rep.live.sum()):
                bad.append(f"count() at version {s['v']} = {s['count']}, exact "
                           f"{int(rep.live.sum())}")
            continue
        q = query_vector(s["r"], s["i"]).astype(np.float64)
        q /= np.linalg.norm(q)
        match = rep.live if s["g"] is None else rep.live & (rep.groups[s["f"]] == s["g"])
        cand = np.flatnonzero(match)
        sims = rep.vecs[cand] @ q
        exact = set(cand[np.argsort(-sims, kind="stable")[:K]].tolist())
        got = [int(x[1:]) for x in s["ids"]]
        if len(got) != min(K, cand.size):
            bad.append(f"version {s['v']}: {len(got)} results, {cand.size} records match")
        for j, idx in enumerate(got):
            if not match[idx]:
                bad.append(f"version {s['v']}: result i{idx} is not live/matching at that "
                           "version")
                break
            if s["b"][j] != rep.b[idx]:
                bad.append(f"version {s['v']}: i{idx} has metadata of batch {s['b'][j]}, "
                           f"the version's record is batch {rep.b[idx]}")
                break
            if s["g"] is not None and s["mg"][j] != s["g"]:
                bad.append(f"version {s['v']}: filter g={s['g']} returned g={s['mg'][j]}")
                break
            if abs(s["scores"][j] - float(rep.vecs[idx] @ q)) > 1e-4:
                bad.append(f"version {s['v']}: i{idx} score {s['scores'][j]} != exact "
                           f"{float(rep.vecs[idx] @ q)}")
                break
        if any(a < b - 1e-6 for a, b in zip(s["scores"], s["scores"][1:])):
            bad.append(f"version {s['v']}: scores not ordered best first")
        if exact:
            recalls.append(len(exact & set(got)) / len(exact))
    report.check("every sampled answer is consistent with its snapshot's version", not bad,
                 f"{len(bad)} inconsistent answers, e.g. {bad[:3]}")
    mean = float(np.mean(recalls)) if recalls else float("nan")
    report.check(f"mean recall@10 under load >= {RECALL_MIN}",
                 bool(recalls) and mean >= RECALL_MIN, f"mean recall {mean:.3f}")
    return {"answers_checked": checked, "recall_mean": round(mean, 4),
            "recall_p5": round(float(np.percentile(recalls, 5)), 3) if recalls else None,
            "inconsistent": len(bad)}


def _pct(lat: list[Any], p: float, kind: str | None = None) -> float:
    """Percentile in ms; ``lat`` holds seconds or (kind, seconds) pairs."""
    vals = [x[1] if isinstance(x, (list, tuple)) else x for x in lat
            if kind is None or (isinstance(x, (list, tuple)) and x[0] == kind)]
    return float(np.percentile(vals, p)) * 1000 if vals else float("nan")


async def _main(path: str, seconds: float, tasks: int, procs: int, seed: int, wd: Path,
                report: Report) -> dict[str, Any]:
    import trio

    from vecstore import AsyncVecStore, Config

    rng = random.Random(seed)
    log: list[tuple[int, str, int]] = []
    lat: list[Any] = []
    samples: list[Any] = []
    errors: list[str] = []
    counts = {"write_calls": 0, "vectors": 0, "optimize": 0, "compact": 0, "queries": 0}
    maint: list[float] = []
    wlat: list[float] = []
    cfg = Config(dim=DIM, seal_threshold=SEAL, ef_construction=100)
    b = 0
    async with AsyncVecStore.open(path, cfg) as store:
        async def write(kind: str) -> None:
            nonlocal b
            b += 1
            idx, vecs = batch(b, kind)
            ids = [f"i{i}" for i in idx.tolist()]
            t0 = time.perf_counter()
            if kind == "delete_many":
                v = await store.delete_many(ids)
            else:
                meta = [{"b": b, "g": int(i % GROUPS), "h": int((i // GROUPS) % GROUPS)}
                        for i in idx.tolist()]
                if kind == "upsert":
                    v = await store.upsert(ids[0], vecs[0], meta[0])
                else:
                    v = await store.upsert_many(ids=ids, vectors=vecs, metadata=meta)
                counts["vectors"] += len(ids)
            counts["write_calls"] += 1
            wlat.append(time.perf_counter() - t0)
            log.append((v, kind, b))

        await store.create_index("g", "hash")  # filters on "g" use it, on "h" scan
        while counts["vectors"] < 8000:  # a store big enough for HNSW to matter
            await write("upsert_many")
        wlat.clear()
        counts.update(write_calls=0, vectors=0)
        await store.optimize()
        await store.set_retention(versions=RETENTION)
        t_start = time.time()
        deadline = t_start + seconds
        ctx = fork_context()
        children = []
        for m in range(procs):
            out = wd / f"reader-{m}.json"
            err = wd / f"reader-{m}.err"
            p = ctx.Process(target=load_reader, args=(path, str(out), str(err), m, deadline,
                                                       DIM, K, 5))
            p.start()
            children.append((p, out, err))

        async def writer() -> None:
            while time.time() < deadline:
                roll = rng.random()
                try:
                    if roll < 0.70:
                        await write("upsert_many")
                    elif roll < 0.85:
                        await write("upsert")
                    else:
                        await write("delete_many")
                except Exception as exc:
                    errors.append(f"writer: {fmt_exc(exc)}")
                    if len(errors) > 20:
                        return
                await trio.sleep(0)

        async def maintenance() -> None:
            """optimize() and compact() concurrently with the writes."""
            n = 0
            while time.time() < deadline - 1:
                await trio.sleep(2)
                n += 1
                try:
                    t0 = time.perf_counter()
                    if n % 2:
                        await store.optimize()
                        counts["optimize"] += 1
                    else:
                        await store.compact()
                        counts["compact"] += 1
                    maint.append(time.perf_counter() - t0)
                except Exception as exc:
                    errors.append(f"maintenance: {fmt_exc(exc)}")

        async def reader(r: int) -> None:
            i = 0
            while time.time() < deadline:
                i += 1
                try:
                    snap = await store.snapshot()
                    await trio.to_thread.run_sync(reader_step, snap.sync, r, i, DIM, K, 5, lat,
                                                  samples)
                    counts["queries"] += 1
                except Exception as exc:
                    errors.append(f"reader task {r}: {fmt_exc(exc)}")
                    if len(errors) > 20:
                        return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            nursery.start_soon(maintenance)
            for r in range(tasks):
                nursery.start_soon(reader, r)
        elapsed = time.time() - t_start
        # reader processes
        plat: list[Any] = []
        psamples: list[Any] = []
        refreshes = 0
        for p, out, err in children:
            await trio.to_thread.run_sync(p.join, 60)
            if p.exitcode != 0 or not out.exists():
                errors.append(f"reader process {p.pid} ended with {p.exitcode}: "
                              f"{err.read_text()[-500:] if err.exists() else ''}")
                continue
            d = json.loads(out.read_text())
            plat += d["lat"]
            psamples += d["samples"]
            errors += [f"reader process: {e}" for e in d["errors"]]
            refreshes += d["refreshes"]
        await store.optimize()
    report.check("no reader or writer error under load", not errors,
                 f"{len(errors)} errors, e.g. {errors[:3]}")
    return {"log": log, "lat": lat, "plat": plat, "samples": samples + psamples,
            "elapsed": elapsed, "counts": counts, "wlat": wlat, "maint": maint,
            "refreshes": refreshes,
            }


def run(seconds: float = 20, tasks: int = 4, procs: int = 2, seed: int | None = None,
        keep: bool = False, report: Report | None = None) -> Report:
    import trio

    from vecstore import VecStore

    report = report or Report("load")
    seed = random.randrange(2**31) if seed is None else seed
    with workdir(keep, "load") as wd:
        path = str(wd / "store")
        res = trio.run(_main, path, seconds, tasks, procs, seed, wd, report)
        with VecStore.open(path) as store:
            problems = check_store(store)
        report.check("consistency check clean after the load", not problems,
                     "; ".join(problems[:3]))
        avail, clean, said = cli_check(path)
        if avail:
            report.check("vecstore check clean after the load", clean, said)
    figs = verify(res["log"], res["samples"], report)
    el = res["elapsed"]
    c = res["counts"]
    nq = len(res["lat"]) + len(res["plat"])
    all_lat = res["lat"] + res["plat"]
    figs.update({
        "seconds": round(el, 1), "reader_tasks": tasks, "reader_procs": procs, "seed": seed,
        "queries": nq, "queries_per_s": round(nq / el, 1),
        "task_queries_per_s": round(len(res["lat"]) / el, 1),
        "proc_queries_per_s": round(len(res["plat"]) / el, 1),
        "p50_ms": round(_pct(all_lat, 50), 2), "p99_ms": round(_pct(all_lat, 99), 2),
        "task_p50_ms": round(_pct(res["lat"], 50), 2),
        "task_p99_ms": round(_pct(res["lat"], 99), 2),
        "proc_p50_ms": round(_pct(res["plat"], 50), 2),
        "proc_p99_ms": round(_pct(res["plat"], 99), 2),
        "write_calls_per_s": round(c["write_calls"] / el, 1),
        "vectors_per_s": round(c["vectors"] / el, 1),
        **{f"{kind}_{p}_ms": round(_pct(all_lat, int(p[1:]), kind), 2)
           for kind in ("knn", "filtered-g", "filtered-h", "count") for p in ("p50", "p99")},
        "write_p50_ms": round(_pct(res["wlat"], 50), 1),
        "write_p99_ms": round(_pct(res["wlat"], 99), 1),
        "optimizes": c["optimize"], "compactions": c["compact"],
        "refreshes": res["refreshes"],
        "maintenance_p50_s": round(float(np.median(res["maint"])), 2) if res["maint"] else None,
    })
    report.figures.update(figs)
    report.check("readers made progress", nq > 10 * max(1, tasks + procs), f"{nq} queries")
    report.line(f"{el:.0f} s, {tasks} reader tasks + {procs} read_only reader processes vs 1 "
                f"writer (seed {seed})")
    report.line(f"{figs['queries_per_s']:.0f} queries/s (tasks {figs['task_queries_per_s']:.0f}, "
                f"processes {figs['proc_queries_per_s']:.0f}); latency p50 {figs['p50_ms']:.1f} "
                f"ms, p99 {figs['p99_ms']:.1f} ms (processes p99 {figs['proc_p99_ms']:.1f} ms)")
    report.line(f"by kind, p50/p99 ms: k-NN {figs['knn_p50_ms']:.1f}/{figs['knn_p99_ms']:.1f}, "
                f"filtered on an indexed field {figs['filtered-g_p50_ms']:.1f}/"
                f"{figs['filtered-g_p99_ms']:.1f}, on an unindexed one "
                f"{figs['filtered-h_p50_ms']:.1f}/{figs['filtered-h_p99_ms']:.1f}, count "
                f"{figs['count_p50_ms']:.2f}/{figs['count_p99_ms']:.2f}")
    report.line(f"writes: {figs['write_calls_per_s']:.0f} calls/s, "
                f"{figs['vectors_per_s']:.0f} vectors/s (call latency p50 "
                f"{figs['write_p50_ms']:.0f} "
                f"ms, p99 {figs['write_p99_ms']:.0f} ms); {c['optimize']} optimize(), "
                f"{c['compact']} compact() during the run")
    report.line(f"{figs['answers_checked']} sampled answers checked against their version: "
                f"{figs['inconsistent']} inconsistent; recall@10 mean {figs['recall_mean']}")
    if math.isnan(figs["recall_mean"]):
        report.fail("answers were sampled", "no query sample")
    return report

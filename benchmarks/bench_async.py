"""AsyncVecStore under asyncio and trio (issue #14): group commit and query
throughput, both event loops measured in one run.

1. 64 concurrent awaited single upserts vs the same upserts awaited one by
   one, under asyncio (goal >= 10x; the same under trio is printed too);
2. queries from 4 concurrent tasks: asyncio vs trio (goal >= 0.9x).

    PYTHONPATH=. python benchmarks/bench_async.py                 # synthetic 20,000 x 384
    PYTHONPATH=. python benchmarks/bench_async.py --data ../shared/datasets/pypi58k
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import trio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Target, load_data, log_machine, machine_info, print_summary
from vecstore import AsyncVecStore, Config, VecStore

RUNNERS: dict[str, Callable[[Callable[[], Awaitable[Any]]], Any]] = {
    "asyncio": lambda fn: asyncio.run(fn()),
    "trio": trio.run,
}


async def gather(fns: list[Callable[[], Awaitable[Any]]]) -> None:
    import anyio

    async with anyio.create_task_group() as tg:
        for fn in fns:
            tg.start_soon(fn)


def upserts(loop: str, path: str, vecs: np.ndarray, writers: int, per: int,
            concurrent: bool) -> tuple[float, int]:
    """(records/s, commits) of writers*per single awaited upserts."""

    async def main() -> tuple[float, int]:
        async with AsyncVecStore.open(path, Config(dim=vecs.shape[1])) as store:
            c0 = store.commits
            t0 = time.perf_counter()
            if concurrent:
                async def writer(w: int) -> None:
                    for j in range(per):
                        i = w * per + j
                        await store.upsert(f"w{i}", vecs[i % len(vecs)], {"w": w})
                await gather([lambda w=w: writer(w) for w in range(writers)])
            else:
                for i in range(writers * per):
                    await store.upsert(f"s{i}", vecs[i % len(vecs)], {"w": 0})
            dt = time.perf_counter() - t0
            return writers * per / dt, store.commits - c0

    return RUNNERS[loop](main)  # type: ignore[no-any-return]


def queries(loop: str, path: str, qs: np.ndarray, tasks: int, rounds: int) -> float:
    """Queries/s from ``tasks`` concurrent tasks over an indexed store."""

    async def main() -> float:
        async with AsyncVecStore.open(path, read_only=True) as store:
            async def task(t: int) -> None:
                for r in range(rounds):
                    await store.query(qs[(t * rounds + r) % len(qs)], k=10)
            await store.query(qs[0], k=10)  # warm
            t0 = time.perf_counter()
            await gather([lambda t=t: task(t) for t in range(tasks)])
            return tasks * rounds / (time.perf_counter() - t0)

    return RUNNERS[loop](main)  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="pypi58k directory (default: synthetic vectors)")
    ap.add_argument("--base", type=int, default=20_000, help="indexed rows for queries")
    ap.add_argument("--writers", type=int, default=64)
    ap.add_argument("--per", type=int, default=8, help="upserts per concurrent writer")
    ap.add_argument("--tasks", type=int, default=4, help="concurrent query tasks")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per loop")
    args = ap.parse_args(argv)
    info = machine_info(("anyio", "faiss-cpu"))
    log_machine(info)
    t_start = time.perf_counter()
    if args.data:
        data = load_data(args.data, args.base, 500)
        base, qs = data.base, data.queries
    else:
        rng = np.random.default_rng(0)
        base = rng.standard_normal((args.base, 384)).astype(np.float32)
        qs = rng.standard_normal((500, 384)).astype(np.float32)
    work = tempfile.mkdtemp(prefix="bench-async-")
    targets: list[Target] = []
    try:
        rates: dict[tuple[str, bool], list[float]] = {}
        commits: dict[tuple[str, bool], int] = {}
        n = 0
        for _ in range(args.rounds):
            for loop in RUNNERS:
                for conc in (True, False):
                    n += 1
                    r, c = upserts(loop, os.path.join(work, f"w{n}"), base, args.writers,
                                   args.per, conc)
                    rates.setdefault((loop, conc), []).append(r)
                    commits[(loop, conc)] = c
        for loop in RUNNERS:
            conc = statistics.median(rates[(loop, True)])
            seq = statistics.median(rates[(loop, False)])
            targets.append(Target(
                f"1 {loop}: {args.writers} concurrent upserts", conc, seq, conc / seq, ">=", 10,
                "rec/s", note=f"median of {args.rounds}; {args.writers * args.per} calls in "
                f"{commits[(loop, True)]} commits concurrently, "
                f"{commits[(loop, False)]} sequentially"))
        path = os.path.join(work, "q")
        with VecStore.open(path, Config(dim=base.shape[1])) as s:
            s.upsert_many(ids=[str(i) for i in range(len(base))], vectors=base)
            s.optimize()
        qps: dict[str, list[float]] = {"asyncio": [], "trio": []}
        for _ in range(args.rounds):
            for loop in RUNNERS:
                qps[loop].append(queries(loop, path, qs, args.tasks, 250))
        a, t = statistics.median(qps["asyncio"]), statistics.median(qps["trio"])
        targets.append(Target(f"2 {args.tasks} query tasks, asyncio vs trio", a, t, a / t,
                              ">=", 0.9, "q/s", note="medians of " + ", ".join(
                                  f"{k}: {[round(x) for x in v]}" for k, v in qps.items())))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_summary(targets, info, time.perf_counter() - t_start, lib="anyio")
    return 0 if all(t.ok for t in targets) else 1


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""Filtered k-NN search (issue #3): recall and throughput vs an exact numpy scan.

Run (from the repository root)::

    PYTHONPATH=. python benchmarks/bench_filter.py --data /path/to/pypi58k [--quick] [--json OUT]

A store is built from the base vectors and their metadata, plus a synthetic
``bucket = i % 1000`` field, with btree indexes on ``bucket``, ``year`` and
``rank``, then ``optimize()``\\ d into one HNSW segment.  For target
selectivities 50% / 10% / 1% / 0.1% two filters are run:

* ``bucket < N`` (synthetic, uniform, independent of the vectors);
* a predicate on the real ``year`` / ``rank`` metadata whose actual
  selectivity is closest to the target (chosen from the data; printed).

For each filter: recall@10 against an exact brute force over the filtered
rows (numpy), and single-query throughput against the baseline: a numpy
exact scan of *all* base rows with the filter applied as a precomputed
boolean mask (matmul, mask, argpartition).  Targets: recall >= 0.95 and
throughput >= 3x the baseline at every selectivity.  ``store.explain()``'s
strategy and estimate are printed per filter, with the path the query
actually took (counted by wrapping ``SealedSegment`` methods during the
untimed recall pass).  If ``chromadb`` is importable, Chroma's ``where``
queries on the same data are timed in the first interleaved round as a
reference (no target; Chroma defaults: M=16, ef_construction=100, ef_search=100).

The machine is assumed shared and noisy: every figure is a ratio against a
baseline measured in the same run, queries interleaved one by one.  Scratch
stores live in a temporary directory removed at the end.
"""

from __future__ import annotations

from _blas import limit_blas_threads

limit_blas_threads()  # before numpy loads; see _blas.py

import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
    print_rows,
    print_summary,
    recall,
    timed,
    write_json,
)
from vecstore import Config, Query, VecStore

K = 10
RECALL_TARGET = 0.95
SPEED_TARGET = 3.0
SELECTIVITIES = (0.5, 0.1, 0.01, 0.001)
BATCH = 1_000
BUCKETS = 1_000
INDEXED = ("bucket", "year", "rank")
_CHROMA_OP = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte", "=": "$eq", "!=": "$ne"}


# -- filters --------------------------------------------------------------------------

Cond = tuple[str, str, float]  # (field, op, number)


@dataclass
class FilterCase:
    label: str  # e.g. "bucket 10%"
    target: float  # wanted selectivity
    conds: list[Cond]
    mask: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, bool))

    @property
    def text(self) -> str:
        return " AND ".join(f"{f} {op} {_num(v)}" for f, op, v in self.conds)

    @property
    def chroma(self) -> dict[str, Any]:
        parts = [{f: {_CHROMA_OP[op]: _num(v)}} for f, op, v in self.conds]
        return parts[0] if len(parts) == 1 else {"$and": parts}

    @property
    def selectivity(self) -> float:
        return float(self.mask.mean())


def _num(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


def numeric_column(metas: list[dict[str, Any]], name: str) -> np.ndarray:
    """float64 per row; NaN where missing / null / not a number (such rows
    never match a comparison, as the filter grammar specifies)."""
    out = np.full(len(metas), np.nan)
    for i, m in enumerate(metas):
        v = m.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[i] = float(v)
    return out


_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
    "=": np.equal, "!=": np.not_equal}


def eval_mask(conds: list[Cond], cols: dict[str, np.ndarray]) -> np.ndarray:
    n = len(next(iter(cols.values())))
    m = np.ones(n, bool)
    with np.errstate(invalid="ignore"):
        for f, op, v in conds:
            col = cols[f]
            hit = _OPS[op](col, v)
            if op == "!=":
                hit &= ~np.isnan(col)
            m &= hit
    return m


def real_candidates(cols: dict[str, np.ndarray]) -> list[list[Cond]]:
    """Predicates over the real metadata (year, rank) to pick from."""
    cands: list[list[Cond]] = []
    years = sorted(set(cols["year"][~np.isnan(cols["year"])].tolist()))
    for y in years:
        cands += [[("year", "=", y)], [("year", ">=", y)], [("year", "<=", y)]]
    for a in years:
        for b in years:
            if a < b:
                cands.append([("year", ">=", a), ("year", "<=", b)])
    ranks = np.sort(cols["rank"][~np.isnan(cols["rank"])])
    for r in np.unique(ranks).tolist():
        cands.append([("rank", "<=", r)])
    return cands


def pick_real(target: float, cols: dict[str, np.ndarray], cands: list[list[Cond]],
              n: int) -> list[Cond]:
    """The candidate whose selectivity is closest to ``target`` (log scale);
    single predicates win ties over ranges."""
    best, best_err = cands[0], math.inf
    want = target * n
    for c in cands:
        hits = int(eval_mask(c, cols).sum())
        if hits == 0:
            continue
        err = abs(math.log(hits / want)) + 1e-6 * len(c)
        if err < best_err:
            best, best_err = c, err
    return best


def make_cases(data: Data) -> list[FilterCase]:
    n = len(data.metas)
    cols = {f: numeric_column(data.metas, f) for f in ("year", "rank")}
    cols["bucket"] = (np.arange(n) % BUCKETS).astype(np.float64)
    cands = real_candidates(cols)
    cases = []
    for s in SELECTIVITIES:
        cases.append(FilterCase(f"bucket {s:.1%}", s,
                                [("bucket", "<", max(1, round(s * BUCKETS)))]))
        cases.append(FilterCase(f"real {s:.1%}", s, pick_real(s, cols, cands, n)))
    for c in cases:
        c.mask = eval_mask(c.conds, cols)
    return cases


# -- baseline -----------------------------------------------------------------------


def baseline_scan(base: np.ndarray, notmask: np.ndarray, q: np.ndarray, k: int
                  ) -> np.ndarray:
    """The numpy baseline: scan ALL rows, apply the precomputed mask, top-k."""
    s = base @ q
    s[notmask] = -np.inf
    top = np.argpartition(s, -k)[-k:]
    top = top[np.argsort(-s[top])]
    return top[np.isfinite(s[top])]


# -- chroma (reference) -----------------------------------------------------------------


def build_chroma(work: str, data: Data) -> tuple[Any, float, str]:
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=os.path.join(work, "chroma"),
                                       settings=Settings(anonymized_telemetry=False))
    col = client.create_collection("bench_filter", metadata={"hnsw:space": "cosine"},
                                   embedding_function=None)
    step = min(5_000, client.get_max_batch_size())
    t0 = time.perf_counter()
    for s in range(0, len(data.ids), step):
        metas = []
        for i in range(s, min(s + step, len(data.ids))):
            m = {k: v for k, v in data.metas[i].items() if v is not None}
            m["bucket"] = i % BUCKETS
            metas.append(m)
        col.add(ids=data.ids[s:s + step], embeddings=data.base[s:s + step], metadatas=metas)
    dt = time.perf_counter() - t0
    conf = getattr(col, "configuration", None)
    return (client, col), dt, f"chromadb {chromadb.__version__}, hnsw config {conf}"


# -- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = dataset_parser(__doc__, "base vectors (default 50000)",
                        "queries per filter (default 200)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds (default 3)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 5,000 base / 50 queries / 1 round")
    ap.add_argument("--blas-threads", default="1",
                    help="BLAS threads for numpy (default 1; read before numpy loads, an "
                         "OPENBLAS_NUM_THREADS already in the environment wins)")
    ap.add_argument("--no-chroma", action="store_true", help="skip the Chroma reference")
    add_output_args(ap)
    args = ap.parse_args(argv)
    n_base = args.base if args.base is not None else (5_000 if args.quick else 50_000)
    n_q = args.queries if args.queries is not None else (50 if args.quick else 200)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)

    exit_on_sigterm()
    t_start = time.perf_counter()
    info = machine_info(("chromadb",))
    log_machine(info)
    log(f"== params: base={n_base} queries={n_q} rounds={rounds} k={K} buckets={BUCKETS}")
    data = load_data(args.data, n_base, n_q)
    cases = make_cases(data)
    log(f"loaded {n_base} base + {n_q} query vectors ({time.perf_counter() - t_start:.1f}s)")

    work = tempfile.mkdtemp(prefix="vecstore-bench-filter-", dir=args.workdir)
    targets: list[Target] = []
    details: list[dict[str, Any]] = []
    extras: dict[str, Any] = {}
    store: VecStore | None = None
    chroma: Any = None
    try:
        # ---- build ------------------------------------------------------------------------
        cfg = Config(dim=data.base.shape[1], distance="cosine")
        store = VecStore.open(os.path.join(work, "store.db"), cfg)
        t_ingest = ingest_with_buckets(store, data, BATCH, BUCKETS)
        t0 = time.perf_counter()
        for f in INDEXED:
            store.create_index(f, "btree")
        t_index = time.perf_counter() - t0
        t_opt = timed(store.optimize)
        st = store.stats()
        log(f"[vecstore] ingest {t_ingest:.1f}s, create_index x{len(INDEXED)} {t_index:.1f}s, "
            f"optimize {t_opt:.1f}s -> sealed={st.sealed_segments} growing={st.growing_vectors} "
            f"total={st.total_vectors} indexes={store.indexes()}")
        extras["build"] = {"ingest_s": t_ingest, "create_index_s": t_index, "optimize_s": t_opt}

        if not args.no_chroma:
            try:
                chroma, t_chroma, chroma_desc = build_chroma(work, data)
                log(f"[chroma] {chroma_desc}; add() of {n_base} took {t_chroma:.1f}s")
                extras["chroma"] = {"add_s": t_chroma, "desc": chroma_desc}
            except ImportError as exc:
                log(f"[chroma] skipped: chromadb not importable ({exc})")
                extras["chroma"] = {"skipped": str(exc)}
        pos_of = {rid: i for i, rid in enumerate(data.ids)}

        def ours_fn(case: FilterCase) -> Callable[[np.ndarray], np.ndarray]:
            text = case.text
            assert store is not None

            def run(q: np.ndarray) -> np.ndarray:
                res = store.query(q, k=K, filter=text)
                return np.fromiter((pos_of[r.id] for r in res), np.int64, len(res))
            return run

        def chroma_fn(case: FilterCase) -> Callable[[np.ndarray], np.ndarray]:
            col = chroma[1]
            where = case.chroma

            def run(q: np.ndarray) -> np.ndarray:
                res = col.query(query_embeddings=q[None, :], n_results=K, where=where,
                                include=["distances"])
                return np.fromiter((pos_of[i] for i in res["ids"][0]), np.int64)
            return run

        # ---- per filter -------------------------------------------------------------------
        for case in cases:
            m = int(case.mask.sum())
            truth = exact_topk(data.base, np.flatnonzero(case.mask), data.queries, K)
            notmask = ~case.mask
            methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
                "numpy": lambda q, nm=notmask: baseline_scan(data.base, nm, q, K),
                "vecstore": ours_fn(case)}
            if chroma is not None:
                methods["chroma"] = chroma_fn(case)
            plan = store.explain(Query(data.queries[0]).with_filter(case.text))
            count = store.count(case.text)
            # Untimed pass: recall, correctness checks, the path actually taken; warms up.
            found: dict[str, list[np.ndarray]] = {}
            paths = PathCounter()
            for name, fn in methods.items():
                if name == "vecstore":
                    with paths:
                        found[name] = [fn(q) for q in data.queries]
                else:
                    found[name] = [fn(q) for q in data.queries]
            rec = {name: recall(f, truth) for name, f in found.items()}
            bad_rows = sum(int((~case.mask[f]).sum()) for f in found["vecstore"])
            short = sum(1 for f in found["vecstore"] if len(f) < min(K, m))
            # Timed rounds, interleaved query by query, order rotated every query.
            # Chroma (a slow reference) is timed in the first round only.
            t = interleaved(methods, data.queries, rounds, first_round_only=("chroma",))
            qps_rounds = {name: [n_q / float(row.sum()) for row in t[name]
                                 if not np.isnan(row).any()] for name in methods}
            qps = {name: statistics.median(v) for name, v in qps_rounds.items()}
            ratio = qps["vecstore"] / qps["numpy"]
            problems = []
            if count != m:
                problems.append(f"count()={count} but {m} rows match")
            if bad_rows:
                problems.append(f"{bad_rows} returned rows do not match the filter")
            if short:
                problems.append(f"{short} queries returned fewer than min(k, matches)")
            d = {"case": case.label, "filter": case.text, "target_selectivity": case.target,
                 "selectivity": case.selectivity, "matches": m, "count": count,
                 "strategy": plan.strategy, "estimated_matches": plan.estimated_matches,
                 "estimated_cost_ms": plan.estimated_cost_ms, "hints": plan.hints,
                 "executed": dict(paths.counts), "recall": rec, "qps": qps,
                 "ratio": ratio, "problems": problems,
                 "qps_rounds": qps_rounds}
            if "chroma" in qps:
                d["chroma_ratio"] = qps["chroma"] / qps["numpy"]
            details.append(d)
            log(f"[{case.label}] {case.text!r}: {m} rows ({case.selectivity:.3%}); "
                f"explain={plan.strategy} (est {plan.estimated_matches}, "
                f"{plan.estimated_cost_ms} ms); executed: {paths.summary(n_q)}; recall "
                + ", ".join(f"{k} {v:.4f}" for k, v in rec.items()) + "; q/s "
                + ", ".join(f"{k} {v:,.0f}" for k, v in qps.items())
                + (f"; PROBLEMS: {'; '.join(problems)}" if problems else ""))
            targets.append(Target(
                f"{case.label} throughput", qps["vecstore"], qps["numpy"], ratio, ">=",
                SPEED_TARGET, "q/s",
                note=f"{case.text} ({case.selectivity:.2%}); baseline = numpy scan of all "
                     f"{n_base} rows + precomputed mask; median of {rounds} rounds",
                extra=d))
            rt = Target(f"{case.label} recall@10", rec["vecstore"], 1.0, rec["vecstore"], ">=",
                        RECALL_TARGET, "recall")
            rt.ok = rt.ok and not problems
            if problems:
                rt.note = "; ".join(problems)
            targets.append(rt)
    finally:
        if store is not None:
            store.close()
        chroma = None
        shutil.rmtree(work, ignore_errors=True)

    total_s = time.perf_counter() - t_start
    print()
    rows = [("case", "filter", "selectivity", "explain", "executed (per query)",
             "recall", "q/s ours", "q/s numpy", "ratio")]
    has_chroma = any("chroma" in d["qps"] for d in details)
    if has_chroma:
        rows[0] += ("chroma recall", "chroma q/s", "chroma ratio")
    for d in details:
        ex = ", ".join(f"{k} {v / n_q:.2g}" for k, v in sorted(d["executed"].items())) or "-"
        row = (d["case"], d["filter"], f"{d['selectivity']:.3%}", d["strategy"], ex,
               f"{d['recall']['vecstore']:.4f}", f"{d['qps']['vecstore']:,.0f}",
               f"{d['qps']['numpy']:,.0f}", f"{d['ratio']:.2f}x")
        if has_chroma:
            row += (f"{d['recall']['chroma']:.4f}", f"{d['qps']['chroma']:,.0f}",
                    f"{d['chroma_ratio']:.2f}x")
        rows.append(row)
    print_rows(rows, right_from=2)
    print()
    print_summary(targets, info, total_s, lib="chromadb")
    write_json(args.json, info, {"base": n_base, "queries": n_q, "rounds": rounds, "k": K},
               targets, total_s, cases=details, extras=extras)
    return 0 if all(t.ok for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Helpers shared by the benchmark scripts: the dataset, the machine header,
the result table, ground truth and recall, interleaved timing, the raw LMDB
baseline.  Imported as ``_common`` (a script's own directory is first on
``sys.path``); like the scripts, never imported by the package or the tests.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata as _md
from typing import Any, Self

import lmdb
import numpy as np

# -- output -----------------------------------------------------------------------


@dataclass
class Target:
    name: str
    ours: float
    baseline: float
    ratio: float
    op: str  # ">=" or "<="
    goal: float
    unit: str
    ok: bool = False
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.ok:
            self.ok = self.ratio >= self.goal if self.op == ">=" else self.ratio <= self.goal


def log(msg: str) -> None:
    print(msg, flush=True)


def fmt(x: float, unit: str) -> str:
    if unit == "recall":
        return f"{x:.4f}"
    if unit == "s":
        return f"{x:.3f} s"
    if unit == "B/vec":
        return f"{x:,.0f} B/vec"
    if unit == "MB":
        return f"{x / 1e6:,.1f} MB"
    return f"{x:,.0f} {unit}"


def print_rows(rows: Sequence[Sequence[str]], right_from: int = 1) -> None:
    """A text table: ``rows[0]`` is the header; columns before ``right_from``
    are left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    sep = "-+-".join("-" * w for w in widths)
    for i, r in enumerate(rows):
        print(" | ".join(c.ljust(w) if j < right_from else c.rjust(w)
                         for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            print(sep)


def print_table(targets: list[Target]) -> None:
    rows: list[tuple[str, ...]] = [("target", "ours", "baseline", "ratio", "goal", "result")]
    for t in targets:
        rows.append((t.name, fmt(t.ours, t.unit), fmt(t.baseline, t.unit), f"{t.ratio:.3f}x",
                     f"{t.op} {t.goal:g}x", "PASS" if t.ok else "FAIL"))
    print_rows(rows)
    for t in targets:
        if t.note:
            print(f"  [{t.name}] {t.note}")
    sys.stdout.flush()


def machine_info(extra: tuple[str, ...] = (), *, blas: bool = True,
                 missing: str = "-") -> dict[str, Any]:
    """CPU count, platform and library versions (hnswlib, lmdb, trio, then
    ``extra``), the BLAS thread setting if ``blas``, and the load average."""

    def ver(name: str) -> str:
        try:
            return _md.version(name)
        except _md.PackageNotFoundError:
            return missing

    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                            "python": platform.python_version(), "numpy": np.__version__}
    for name in ("hnswlib", "lmdb", "trio", *extra):
        info[name] = ver(name)
    if blas:
        info["blas_threads"] = os.environ.get("OPENBLAS_NUM_THREADS")
    info["loadavg_at_start"] = list(os.getloadavg())
    return info


def log_machine(info: dict[str, Any]) -> None:
    log("== machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))


def print_summary(targets: list[Target], info: dict[str, Any], total_s: float,
                  lib: str = "trio") -> None:
    """The target table, then the machine (naming ``lib``'s version) and run time."""
    print_table(targets)
    print(f"\nmachine: {info['cpu_count']} CPUs, numpy {info['numpy']}, hnswlib {info['hnswlib']},"
          f" lmdb {info['lmdb']}, {lib} {info[lib]}, Python {info['python']}")
    print(f"total run time: {total_s:.1f}s")


def write_json(path: str | None, info: dict[str, Any], params: dict[str, Any],
               targets: list[Target], total_s: float, **sections: Any) -> None:
    """Write every figure to ``path`` (nothing if None)."""
    if not path:
        return
    with open(path, "w") as f:
        json.dump({"machine": info, "params": params, "targets": [asdict(t) for t in targets],
                   **sections, "total_seconds": total_s}, f, indent=2, default=str)
    print(f"results written to {path}")


def exit_on_sigterm() -> None:
    """SIGTERM (e.g. a timeout) unwinds normally, so scratch directories are removed."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


# -- command line -----------------------------------------------------------------


def dataset_parser(doc: str | None, base_help: str, queries_help: str) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first paragraph, with the arguments
    every dataset script starts with: --data, --base, --queries."""
    ap = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    ap.add_argument("--data", required=True,
                    help="dataset directory (vectors.npy, records.jsonl.gz)")
    ap.add_argument("--base", type=int, default=None, help=base_help)
    ap.add_argument("--queries", type=int, default=None, help=queries_help)
    return ap


def add_output_args(ap: argparse.ArgumentParser) -> None:
    """--json and --workdir, the arguments every dataset script ends with."""
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    ap.add_argument("--workdir", help="where to put the scratch directory (default: $TMPDIR)")


# -- data -------------------------------------------------------------------------


@dataclass
class Data:
    queries: np.ndarray  # (nq, dim) float32
    base: np.ndarray  # (nb, dim) float32
    ids: list[str]  # base ids
    metas: list[dict[str, Any]]  # base metadata
    spare: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    spare_metas: list[dict[str, Any]] = field(default_factory=list)  # rows after the base


def unit_rows(m: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(m / np.linalg.norm(m, axis=1, keepdims=True), dtype=np.float32)


def load_data(path: str, n_base: int, n_queries: int, *, normalize: bool = True,
              spare: bool = False) -> Data:
    """Rows 0..999 of ``path``'s ``vectors.npy`` are the queries, the next
    ``n_base`` the base set (ids and metadata from ``records.jsonl.gz``);
    with ``spare``, also every row after the base set.  ``normalize``
    renormalises in float32: the float16 rows are unit length only to ~1e-3,
    and numpy dot products must rank exactly as the store's cosine does."""
    vecs = np.load(os.path.join(path, "vectors.npy"), mmap_mode="r")
    if n_queries > 1000 or n_queries <= 0:
        raise SystemExit("--queries must be in 1..1000 (rows 0..999 are the query set)")
    if 1000 + n_base > vecs.shape[0] or n_base <= 0:
        raise SystemExit(f"--base must be in 1..{vecs.shape[0] - 1000}")

    def rows(m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, dtype=np.float32)
        return unit_rows(m) if normalize else np.ascontiguousarray(m)

    data = Data(rows(vecs[:n_queries]), rows(vecs[1000:1000 + n_base]), [], [])
    if spare:
        data.spare = rows(vecs[1000 + n_base:])
    with gzip.open(os.path.join(path, "records.jsonl.gz"), "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i < 1000:
                continue
            if i >= 1000 + n_base and not spare:
                break
            rec = json.loads(line)
            if i < 1000 + n_base:
                data.ids.append(str(rec["id"]))
                data.metas.append(rec["metadata"])
            else:
                data.spare_metas.append(rec["metadata"])
    if len(data.ids) != n_base or len(set(data.ids)) != n_base:
        raise SystemExit("records.jsonl.gz: base ids missing or not unique")
    return data


def ingest_with_buckets(store: Any, data: Data, batch: int, buckets: int) -> float:
    """``upsert_many`` the base set, ``batch`` at a time, each record's metadata
    plus ``bucket = i % buckets``; returns the seconds taken."""
    t0 = time.perf_counter()
    for s in range(0, len(data.ids), batch):
        metas = [dict(m, bucket=i % buckets)
                 for i, m in enumerate(data.metas[s:s + batch], start=s)]
        store.upsert_many(ids=data.ids[s:s + batch], vectors=data.base[s:s + batch],
                          metadata=metas)
    return time.perf_counter() - t0


# -- ground truth, recall, timing ---------------------------------------------------


def timed(fn: Callable[..., Any], *args: Any, **kw: Any) -> float:
    """Seconds one call ``fn(*args, **kw)`` takes."""
    t0 = time.perf_counter()
    fn(*args, **kw)
    return time.perf_counter() - t0


def exact_topk(vecs: np.ndarray, rows: np.ndarray, queries: np.ndarray, k: int
               ) -> list[np.ndarray]:
    """Exact top-k of ``rows`` (positions into ``vecs``) per query, by dot
    product (= cosine on unit rows); unordered."""
    if len(rows) == 0:
        return [np.empty(0, np.int64) for _ in queries]
    sub = vecs[rows]
    out: list[np.ndarray] = []
    kk = min(k, len(rows))
    for s in range(0, len(queries), 256):
        sims = queries[s:s + 256] @ sub.T
        part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        out.extend(rows[p] for p in part)
    return out


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    want = sum(len(t) for t in truth)
    if want == 0:
        return 1.0
    return sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth)) / want


def interleaved(methods: dict[str, Callable[[np.ndarray], Any]], queries: np.ndarray,
                rounds: int, first_round_only: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Per-query seconds (rounds x nq) per method, interleaved query by query
    with the order rotated every query so all see the same noise.  Methods
    in ``first_round_only`` run in round 0 only (NaN in the other rounds)."""
    names = list(methods)
    t = {n: np.full((rounds, len(queries)), np.nan) for n in names}
    for r in range(rounds):
        now = [n for n in names if r == 0 or n not in first_round_only]
        for i, q in enumerate(queries):
            rot = (i + r) % len(now)
            for n in now[rot:] + now[:rot]:
                t0 = time.perf_counter()
                methods[n](q)
                t[n][r, i] = time.perf_counter() - t0
    return t


class PathCounter:
    """Counts the sealed-segment search paths taken (wraps SealedSegment's
    ``exact`` and ``_knn`` while active; timed loops run unwrapped)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._orig: dict[str, Any] = {}

    def __enter__(self) -> Self:
        from vecstore._segments import segment as _segment

        cls = _segment.SealedSegment
        self._orig = {"exact": cls.exact, "_knn": cls._knn}
        counts = self.counts
        orig_exact, orig_knn = self._orig["exact"], self._orig["_knn"]

        def exact(seg: Any, *a: Any, **kw: Any) -> Any:
            counts["exact"] += 1
            return orig_exact(seg, *a, **kw)

        def knn(seg: Any, q: Any, k: int, ef: int, allow: Any = None, cap: Any = None) -> Any:
            counts["knn_filtered" if allow is not None else "knn"] += 1
            return orig_knn(seg, q, k, ef, allow, cap)

        cls.exact = exact  # type: ignore[method-assign,assignment]
        cls._knn = knn  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        from vecstore._segments import segment as _segment

        _segment.SealedSegment.exact = self._orig["exact"]  # type: ignore[method-assign]
        _segment.SealedSegment._knn = self._orig["_knn"]  # type: ignore[method-assign]

    def summary(self, nq: int) -> str:
        return ", ".join(f"{k} {v / nq:.2f}/q" for k, v in sorted(self.counts.items())) or "none"


# -- raw baselines ------------------------------------------------------------------


def raw_lmdb_puts(path: str, keys: list[bytes], values: list[bytes], batch: int = 1_000
                  ) -> float:
    """Seconds to put every (key, value) into a new LMDB environment at
    ``path``, one fsync'd write transaction per ``batch``."""
    env = lmdb.open(path, map_size=1 << 36, sync=True, metasync=True, subdir=True)
    try:
        t0 = time.perf_counter()
        for s in range(0, len(keys), batch):
            with env.begin(write=True) as txn:
                for k, v in zip(keys[s:s + batch], values[s:s + batch]):
                    txn.put(k, v)
        return time.perf_counter() - t0
    finally:
        env.close()

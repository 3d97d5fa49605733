"""Metrics: counters and histograms since the store was opened.

Each open store (each :class:`~vecstore._engine.Engine`) owns one
:class:`Recorder`.  Recording is a bisect over fixed log-spaced bucket
bounds plus integer adds under one uncontended lock (~0.3 us; queries take
100 us and more).  ``store.metrics()`` copies it all under that lock into an
immutable :class:`Metrics`, which renders itself as a dict or as Prometheus
text (format 0.0.4, emitted here: no ``prometheus_client`` at run time).
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from .prometheus import Exposition

T = TypeVar("T")
# 10 us .. 1000 s, five buckets a decade (each bound ~1.58x the last), 3 digits
SECONDS_BOUNDS: tuple[float, ...] = tuple(float(f"{10 ** (k / 5):.3g}") for k in range(-25, 16))
# requests per group commit: 1, 2, 4 .. 4096 (the writer's MAX_BATCH)
SIZE_BOUNDS: tuple[float, ...] = tuple(float(2 ** k) for k in range(13))
STRATEGIES = ("exact_scan", "hnsw", "hnsw_overfetch", "filtered_hnsw",  # _plan.choose
              "bm25", "sparse")  # a HybridQuery's lexical side (_query/hybrid.py)
BUILD_KINDS = ("seal", "merge")


@dataclass(frozen=True)
class Histogram:
    """Observations counted in fixed buckets: ``counts[i]`` holds values in
    ``(bounds[i-1], bounds[i]]``; the last count is above every bound."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    @property
    def mean(self) -> float:
        n = self.count
        return self.sum / n if n else math.nan

    def quantile(self, q: float) -> float:
        """Estimated ``q``-quantile (0..1), interpolated geometrically inside
        its bucket (so within one bucket's ratio, ~1.58x for seconds, of the
        truth); the first bound if it falls in the first bucket, the highest
        if above them all; NaN if empty."""
        n = self.count
        if n == 0:
            return math.nan
        rank = min(max(q, 0.0), 1.0) * n
        seen = 0
        for i, c in enumerate(self.counts):
            if c and seen + c >= rank:
                if i == len(self.bounds):
                    return self.bounds[-1]
                hi = self.bounds[i]
                if i == 0:
                    return hi
                lo = self.bounds[i - 1]
                frac = max(rank - seen, 0.0) / c
                return float(lo * (hi / lo) ** frac)
            seen += c
        return self.bounds[-1]  # pragma: no cover - rank <= n always lands above

    @property
    def p50(self) -> float:
        return self.quantile(0.50)

    @property
    def p95(self) -> float:
        return self.quantile(0.95)

    @property
    def p99(self) -> float:
        return self.quantile(0.99)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= it) per bucket, ending with +Inf."""
        out, run = [], 0
        for b, c in zip((*self.bounds, math.inf), self.counts):
            run += c
            out.append((b, run))
        return out

    def __add__(self, other: Histogram) -> Histogram:
        assert self.bounds == other.bounds
        return Histogram(self.bounds, tuple(a + b for a, b in zip(self.counts, other.counts)),
                         self.sum + other.sum)

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {"count": self.count, "sum": self.sum, "mean": num(self.mean),
                "p50": num(self.p50), "p95": num(self.p95), "p99": num(self.p99),
                "buckets": [[b, c] for b, c in self.cumulative()]}

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> Histogram:
        return cls(bounds, (0,) * (len(bounds) + 1))


@dataclass(frozen=True)
class Metrics:
    """What the store did since it was opened (``store.metrics()``).

    Writes (zero on a read-only store):

    - ``writes``: write calls committed (upsert, upsert_many, delete, ...,
      create_index, tag, rollback, each migration batch); ``write_errors``:
      write calls answered with an error.
    - ``records_written``: rows added (upserted records, rollback copies);
      ``records_written_by_partition`` splits it by partition.
    - ``commits``: LMDB transactions committed for write calls; each holds
      a group of calls, ``group_commit_size`` (calls per commit; its sum is
      ``writes``).
    - ``commit_seconds``: LMDB's commit call per group: writing the dirty
      pages and, with ``durability="sync"``, the fsync that makes the group
      durable (vecstore cannot time the fsync alone).
      ``transaction_seconds``: the whole group transaction (applying every
      request, then that commit).

    Queries (``query()`` calls, on any snapshot, including read-only stores):

    - ``queries``: count per planner strategy, the one ``explain()`` reports
      (``exact_scan``, ``hnsw``, ``hnsw_overfetch``, ``filtered_hnsw``),
      chosen from the query's exact matching and visible row counts;
    - ``query_latency``: seconds per query (all strategies), with
      ``.p50/.p95/.p99/.count/.sum``; ``query_latency_by_strategy``.

    Segments: ``segment_builds`` (``segment_builds_by_kind``: ``seal`` of
    growing rows, ``merge`` of sealed segments, as ``optimize()`` and
    ``compact()`` do), ``segment_rows_built``, ``segment_build_seconds``
    (building the HNSW index and writing its file durably, in the
    background thread).

    Imports (``vecstore.migration``): ``import_records``, ``import_errors``
    (rejected records), ``import_seconds`` (wall time of the imports up to
    their last committed batch), ``import_throughput`` (records/s).
    """

    opened_at: float  # time.time() when the store was opened
    uptime_seconds: float
    read_only: bool
    writes: int = 0
    write_errors: int = 0
    records_written: int = 0
    records_written_by_partition: dict[str, int] = field(default_factory=dict)
    commits: int = 0
    # Histogram is frozen: one shared empty default is safe.
    group_commit_size: Histogram = Histogram.empty(SIZE_BOUNDS)  # noqa: RUF009
    commit_seconds: Histogram = Histogram.empty(SECONDS_BOUNDS)  # noqa: RUF009
    transaction_seconds: Histogram = Histogram.empty(SECONDS_BOUNDS)  # noqa: RUF009
    query_latency_by_strategy: dict[str, Histogram] = field(default_factory=dict)
    segment_rows_built: int = 0
    segment_build_seconds_by_kind: dict[str, Histogram] = field(default_factory=dict)
    import_records: int = 0
    import_errors: int = 0
    import_seconds: float = 0.0

    @property
    def queries(self) -> dict[str, int]:
        return {s: h.count for s, h in self.query_latency_by_strategy.items()}

    @property
    def query_latency(self) -> Histogram:
        return _total(self.query_latency_by_strategy.values(), SECONDS_BOUNDS)

    @property
    def segment_builds(self) -> int:
        return sum(self.segment_builds_by_kind.values())

    @property
    def segment_builds_by_kind(self) -> dict[str, int]:
        return {k: h.count for k, h in self.segment_build_seconds_by_kind.items()}

    @property
    def segment_build_seconds(self) -> Histogram:
        return _total(self.segment_build_seconds_by_kind.values(), SECONDS_BOUNDS)

    @property
    def import_throughput(self) -> float:
        return self.import_records / self.import_seconds if self.import_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Every figure (fields and derived ones), histograms as dicts: JSON-ready."""
        names = [f.name for f in fields(self)] + list(_DERIVED)
        return {n: _plain(getattr(self, n)) for n in names}

    def to_prometheus(self) -> str:
        """The Prometheus text exposition format (0.0.4): names start with
        ``vecstore_``; queries carry a ``strategy`` label, segment builds a
        ``kind`` label, records written a ``partition`` label (a counter only:
        latency histograms per partition would multiply the series by the
        number of tenants)."""
        x = Exposition("vecstore_")
        x.gauge("open_timestamp_seconds", self.opened_at,
                "When the store was opened (Unix time); every other figure counts since then.")
        x.counter("writes_total", self.writes, "Write calls committed.")
        x.counter("write_errors_total", self.write_errors, "Write calls answered with an error.")
        x.counters("records_written_total", "partition", self.records_written_by_partition,
                   "Rows added by committed writes (upserted records, rollback copies).")
        x.counter("commits_total", self.commits, "LMDB transactions committed for write calls.")
        x.histogram("group_commit_size", self.group_commit_size,
                    "Write calls per committed transaction.")
        x.histogram("commit_seconds", self.commit_seconds, "LMDB commit call per group commit: "
                    "page writes and, under durability=sync, fsync.")
        x.histogram("transaction_seconds", self.transaction_seconds, "Whole write transaction "
                    "per group commit (applying the calls, then the commit).")
        x.histogram("query_seconds", self.query_latency_by_strategy,
                    "query() latency by planner strategy (the one explain() reports).",
                    "strategy")
        x.histogram("segment_build_seconds", self.segment_build_seconds_by_kind,
                    "Building a sealed segment (HNSW index and its file) by kind (seal or merge).",
                    "kind")
        x.counter("segment_rows_built_total", self.segment_rows_built,
                  "Rows indexed by segment builds.")
        x.counter("import_records_total", self.import_records,
                  "Records imported by vecstore.migration.")
        x.counter("import_errors_total", self.import_errors, "Records rejected by imports.")
        x.counter("import_seconds_total", self.import_seconds,
                  "Wall time of imports up to their last committed batch.")
        return x.text()


_DERIVED = ("queries", "query_latency", "segment_builds", "segment_builds_by_kind",
            "segment_build_seconds", "import_throughput")


def _plain(v: Any) -> Any:
    if isinstance(v, Histogram):
        return v.to_dict()
    return {k: _plain(x) for k, x in v.items()} if isinstance(v, dict) else v


def _total(hists: Iterable[Histogram], bounds: tuple[float, ...]) -> Histogram:
    return sum(hists, Histogram.empty(bounds))


class _Hist:
    """A histogram being recorded (mutated under the recorder's lock)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def add(self, value: float) -> None:  # caller holds the lock
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def freeze(self) -> Histogram:
        return Histogram(self.bounds, tuple(self.counts), self.sum)


class Recorder:
    """The live counters of one open store; safe from any thread."""

    def __init__(self, read_only: bool = False) -> None:
        self._lock = threading.Lock()
        self.read_only = read_only
        self.opened_at = time.time()
        self._t0 = time.monotonic()
        self._queries = {s: _Hist(SECONDS_BOUNDS) for s in STRATEGIES}
        self.writes = self.write_errors = self.records = self.commits = 0
        self._by_part: dict[str, int] = {}
        self._group = _Hist(SIZE_BOUNDS)
        self._commit = _Hist(SECONDS_BOUNDS)
        self._txn = _Hist(SECONDS_BOUNDS)
        self._builds = {k: _Hist(SECONDS_BOUNDS) for k in BUILD_KINDS}
        self.rows_built = 0
        self.import_records = self.import_errors = 0
        self.import_seconds = 0.0
        self._import_marks: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    # -- recording (hooks in the engine, writer, snapshot and importer) -------------

    def query(self, strategy: str, seconds: float) -> None:
        i = bisect_left(SECONDS_BOUNDS, seconds)
        h = self._queries[strategy]
        with self._lock:
            h.counts[i] += 1
            h.sum += seconds

    def committed(self, requests: int, rows_by_part: Mapping[str, int], txn_seconds: float,
                  commit_seconds: float) -> None:
        """One group of ``requests`` committed in one transaction."""
        with self._lock:
            self.commits += 1
            self._group.add(requests)
            self._txn.add(txn_seconds)
            self._commit.add(commit_seconds)
            for name, n in rows_by_part.items():
                self.records += n
                self._by_part[name] = self._by_part.get(name, 0) + n

    def answered(self, results: Iterable[Any]) -> None:
        """The writer answered a batch of calls (a result or an error each)."""
        bad = total = 0
        for r in results:
            total += 1
            bad += isinstance(r, BaseException)
        with self._lock:
            self.writes += total - bad
            self.write_errors += bad

    def segment_built(self, kind: str, rows: int, seconds: float) -> None:
        with self._lock:
            self._builds[kind].add(seconds)
            self.rows_built += rows

    def import_batch(self, run: Any, started: float, records: int, errors: int) -> None:
        """A batch of the import ``run`` (begun at ``perf_counter() == started``)
        committed: its records, and the wall time since the run's last batch."""
        now = time.perf_counter()
        with self._lock:
            last = self._import_marks.get(run, started)
            self._import_marks[run] = now
            self.import_records += records
            self.import_errors += errors
            self.import_seconds += max(0.0, now - last)

    # -- reading --------------------------------------------------------------------------

    def snapshot(self) -> Metrics:
        with self._lock:
            return Metrics(
                opened_at=self.opened_at, uptime_seconds=time.monotonic() - self._t0,
                read_only=self.read_only, writes=self.writes, write_errors=self.write_errors,
                records_written=self.records, records_written_by_partition=dict(self._by_part),
                commits=self.commits, group_commit_size=self._group.freeze(),
                commit_seconds=self._commit.freeze(), transaction_seconds=self._txn.freeze(),
                query_latency_by_strategy={s: h.freeze() for s, h in self._queries.items()},
                segment_rows_built=self.rows_built,
                segment_build_seconds_by_kind={k: h.freeze() for k, h in self._builds.items()},
                import_records=self.import_records, import_errors=self.import_errors,
                import_seconds=self.import_seconds)


class NullRecorder(Recorder):
    """Records nothing: ``VECSTORE_METRICS=0`` (for measuring what recording costs)."""

    def _nothing(self, *args: Any) -> None:
        pass

    query = committed = answered = segment_built = import_batch = _nothing  # type: ignore[assignment]


def timed_write(write: Callable[[Callable[[Any], T]], T], body: Callable[[Any], T]
                ) -> tuple[T, float, float]:
    """``write(body)``, and how long it took: (result, whole transaction,
    commit) -- the commit being what follows ``body``'s return, i.e. LMDB's
    commit call (page writes and, with sync, the fsync)."""
    mark = [0.0]

    def timed(txn: Any) -> T:
        out = body(txn)
        mark[0] = time.perf_counter()
        return out

    t0 = time.perf_counter()
    result = write(timed)
    t1 = time.perf_counter()
    return result, t1 - t0, t1 - mark[0]


def rows_by_partition(effects: Iterable[Any], by_pid: Mapping[int, Any]) -> dict[str, int]:
    """Rows each partition gained from committed effects (``_ops.Effects``)."""
    out: dict[str, int] = {}
    for eff in effects:
        for pid, _r0, mat, _d in eff.adds:
            name = by_pid[pid].name
            out[name] = out.get(name, 0) + int(mat.shape[0])
    return out


def new_recorder(read_only: bool) -> Recorder:
    if os.environ.get("VECSTORE_METRICS", "1").strip().lower() in ("0", "off", "false", "no"):
        return NullRecorder(read_only)
    return Recorder(read_only)


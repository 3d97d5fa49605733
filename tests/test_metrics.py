"""store.metrics(): exact counters after known workloads, queries counted by
the strategy explain() reports, segment builds, imports, percentile
estimates, the Prometheus text (checked with prometheus_client's parser),
reading while querying from many threads, and "since open"."""

from __future__ import annotations

import itertools
import json
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from vecstore import (
    AsyncVecStore,
    Config,
    Histogram,
    Metrics,
    VecStore,
    VecStoreError,
    VersionNotRetainedError,
)
from vecstore._metrics.recorder import SECONDS_BOUNDS, STRATEGIES, NullRecorder, Recorder
from vecstore.migration import MigrationConfig, QdrantMigration

DIM = 8
RATIO = SECONDS_BOUNDS[1] / SECONDS_BOUNDS[0]  # one bucket's width (~1.58x)


def vecs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def cfg(**kw: Any) -> Config:
    return Config(dim=DIM, durability="relaxed", **kw)


# -- writes ---------------------------------------------------------------------------


def test_write_counters_are_exact(tmp_path: Path) -> None:
    sizes = [10, 20, 30]
    with VecStore.open(tmp_path / "s", cfg(seal_threshold=100_000)) as s:
        assert s.metrics().writes == 0
        for j, n in enumerate(sizes):
            s.upsert_many(ids=[f"b{j}-{i}" for i in range(n)], vectors=vecs(n, j))
        for i in range(5):
            s.partition("p").upsert(f"one-{i}", vecs(1, 100 + i)[0])
        s.upsert("b0-0", vecs(1, 7)[0])  # replaces a record: one more row
        s.delete("b0-1")  # a write, no row
        with pytest.raises(VersionNotRetainedError):
            s.rollback(10_000)
        m = s.metrics()
    assert isinstance(m, Metrics) and not m.read_only
    assert m.writes == 3 + 5 + 2 and m.write_errors == 1
    assert m.records_written == sum(sizes) + 5 + 1
    assert m.records_written_by_partition == {"default": sum(sizes) + 1, "p": 5}
    assert m.commits == m.group_commit_size.count == m.commit_seconds.count
    assert m.group_commit_size.sum == m.writes  # every committed call is in one group
    assert m.transaction_seconds.count == m.commits
    assert m.transaction_seconds.sum >= m.commit_seconds.sum > 0
    assert m.queries == dict.fromkeys(STRATEGIES, 0) and m.query_latency.count == 0


async def test_group_commit_sizes_sum_to_the_calls(tmp_path: Path) -> None:
    tasks, per = 20, 5
    v = vecs(tasks * per)
    async with AsyncVecStore.open(tmp_path / "s", Config(dim=DIM)) as s:  # durability="sync"

        async def writer(w: int) -> None:
            for j in range(w * per, (w + 1) * per):
                await s.upsert(f"id{j}", v[j])

        async with trio.open_nursery() as nursery:
            for w in range(tasks):
                nursery.start_soon(writer, w)
        m = await s.metrics()
        assert m.commits == s.commits
    assert m.writes == m.records_written == tasks * per
    assert m.group_commit_size.sum == tasks * per
    assert m.group_commit_size.count == m.commits <= tasks * per
    assert m.commit_seconds.count == m.commits and m.commit_seconds.sum > 0
    assert 1 <= m.group_commit_size.p50 <= m.group_commit_size.p99 <= 4096


# -- queries ----------------------------------------------------------------------------


def test_queries_counted_by_the_strategy_explain_reports(tmp_path: Path) -> None:
    n = 24_000
    data = vecs(n)
    with VecStore.open(tmp_path / "s", cfg(hnsw_m=8, ef_construction=40)) as s:
        for a in range(0, n, 6000):
            s.upsert_many(ids=[str(i) for i in range(a, a + 6000)], vectors=data[a:a + 6000],
                          metadata=[{"bucket": i % 1000} for i in range(a, a + 6000)])
        s.create_index("bucket", "btree")
        s.optimize()
        s.partition("small").upsert_many(ids=["x", "y"], vectors=data[:2])
        cases = [(s, None, "hnsw"), (s, "bucket < 500", "hnsw_overfetch"),
                 (s, "bucket < 45", "filtered_hnsw"), (s, "bucket < 10", "exact_scan"),
                 (s.partition("small"), None, "exact_scan"),
                 (s.partition("nothing-here"), "bucket = 1", "exact_scan")]
        seen = dict.fromkeys(STRATEGIES, 0)
        for view, flt, want in cases:
            q = vecs(1, 99)[0]
            assert view.explain(q, k=5, filter=flt).strategy == want
            before = s.metrics()
            view.query(q, k=5, filter=flt)
            after = s.metrics()
            seen[want] += 1
            assert after.queries == seen, (flt, want)
            assert after.query_latency.count == before.query_latency.count + 1
        s.query(q, k=5, partitions=["default", "small"])  # spans partitions: 24,002 rows
        seen["hnsw"] += 1
        snap = s.snapshot()
        snap.query(q, k=3)  # snapshots count too
        seen["hnsw"] += 1
        with pytest.raises(VecStoreError):
            s.query([1.0, 2.0], k=3)  # a failed query is not counted
        m = s.metrics()
    assert m.queries == seen
    lat = m.query_latency
    assert lat.count == sum(seen.values()) and lat.sum > 0
    assert 0 < lat.p50 <= lat.p95 <= lat.p99
    assert m.query_latency_by_strategy["filtered_hnsw"].count == 1


def test_segment_builds_counted_after_optimize(tmp_path: Path) -> None:
    with VecStore.open(tmp_path / "s", cfg(seal_threshold=100_000)) as s:
        for part in ("a", "b"):
            s.partition(part).upsert_many(ids=[str(i) for i in range(1000)], vectors=vecs(1000))
        assert s.metrics().segment_builds == 0
        s.optimize()
        m = s.metrics()
        assert m.segment_builds == 2 and m.segment_builds_by_kind == {"seal": 2, "merge": 0}
        assert m.segment_rows_built == 2000
        assert m.segment_build_seconds.count == 2 and m.segment_build_seconds.sum > 0
        s.partition("a").upsert_many(ids=[f"n{i}" for i in range(50)], vectors=vecs(50, 1))
        s.optimize()  # sealed segment + growing rows: a merge
        m = s.metrics()
    assert m.segment_builds_by_kind == {"seal": 2, "merge": 1}
    assert m.segment_rows_built == 2000 + 1050


def test_import_counts(tmp_path: Path) -> None:
    lines = []
    for i in range(25):
        v = vecs(1, i)[0].tolist()
        lines.append(json.dumps({"id": i, "vector": v[:-1] if i == 7 else v,
                                 "payload": {"i": i}}))
    src = tmp_path / "q.jsonl"
    src.write_text("\n".join(lines) + "\n")
    with VecStore.open(tmp_path / "s", cfg()) as s:
        st = QdrantMigration(MigrationConfig(batch_size=10)).import_from_file(src, s)
        m = s.metrics()
    assert st.total_vectors == 24 and st.errors == 1
    assert m.import_records == 24 and m.import_errors == 1
    assert 0 < m.import_seconds <= st.duration
    assert m.import_throughput == pytest.approx(24 / m.import_seconds)
    assert m.records_written == 24 and m.writes == 3  # one write call per batch


# -- histograms ---------------------------------------------------------------------------


def test_percentiles_monotone_and_within_a_bucket() -> None:
    rec = Recorder()
    rng = np.random.default_rng(1)
    values = 10 ** rng.uniform(-4, -1, 5000)  # log-uniform 100 us .. 100 ms
    for x in values:
        rec.query("hnsw", float(x))
    h = rec.snapshot().query_latency
    assert h.count == 5000 and h.sum == pytest.approx(values.sum())
    qs = [h.quantile(q / 100) for q in range(101)]
    assert all(b >= a for a, b in itertools.pairwise(qs))
    for q in (0.5, 0.95, 0.99):
        true = float(np.quantile(values, q))
        assert true / RATIO <= h.quantile(q) <= true * RATIO, q
    assert (h.p50, h.p95, h.p99) == (h.quantile(0.5), h.quantile(0.95), h.quantile(0.99))
    cum = h.cumulative()
    assert cum[-1] == (math.inf, 5000) and all(b[1] >= a[1] for a, b in itertools.pairwise(cum))
    empty = Histogram.empty(SECONDS_BOUNDS)
    assert empty.count == 0 and math.isnan(empty.p50) and empty.to_dict()["p50"] is None
    rec2 = Recorder()
    rec2.query("hnsw", 5000.0)  # above every bound: the highest bound
    rec2.query("hnsw", 1e-9)  # in the first bucket: its bound
    h2 = rec2.snapshot().query_latency
    assert h2.p99 == SECONDS_BOUNDS[-1] and h2.quantile(0.1) == SECONDS_BOUNDS[0]


# -- Prometheus -------------------------------------------------------------------------------


def test_prometheus_text_parses_and_has_the_families(tmp_path: Path) -> None:
    with VecStore.open(tmp_path / "s", cfg(seal_threshold=100_000)) as s:
        s.upsert_many(ids=[str(i) for i in range(1200)], vectors=vecs(1200),
                      metadata=[{"b": i % 10} for i in range(1200)])
        s.partition('we"ird\\name\nx').upsert("a", vecs(1)[0])
        s.optimize()
        for i in range(20):
            s.query(vecs(1, i)[0], k=3)
        s.query(vecs(1)[0], k=3, filter="b = 1")
        m = s.metrics()
        text = m.to_prometheus()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    want = {"vecstore_open_timestamp_seconds": "gauge", "vecstore_writes": "counter",
            "vecstore_write_errors": "counter", "vecstore_records_written": "counter",
            "vecstore_commits": "counter", "vecstore_group_commit_size": "histogram",
            "vecstore_commit_seconds": "histogram", "vecstore_transaction_seconds": "histogram",
            "vecstore_query_seconds": "histogram", "vecstore_segment_build_seconds": "histogram",
            "vecstore_segment_rows_built": "counter", "vecstore_import_records": "counter",
            "vecstore_import_errors": "counter", "vecstore_import_seconds": "counter"}
    assert {n: f.type for n, f in fams.items()} == want

    def value(fam: str, sample: str, **labels: str) -> float:
        hits = [x.value for x in fams[fam].samples
                if x.name == sample and all(x.labels.get(k) == v for k, v in labels.items())]
        assert len(hits) == 1, (fam, sample, labels)
        return hits[0]

    assert value("vecstore_writes", "vecstore_writes_total") == m.writes == 2
    assert value("vecstore_records_written", "vecstore_records_written_total",
                 partition='we"ird\\name\nx') == 1
    assert value("vecstore_records_written", "vecstore_records_written_total",
                 partition="default") == 1200
    assert value("vecstore_query_seconds", "vecstore_query_seconds_count", strategy="hnsw") == 20
    assert value("vecstore_query_seconds", "vecstore_query_seconds_count",
                 strategy="exact_scan") == 1
    for strategy in STRATEGIES:
        buckets = [x for x in fams["vecstore_query_seconds"].samples
                   if x.name.endswith("_bucket") and x.labels["strategy"] == strategy]
        assert len(buckets) == len(SECONDS_BOUNDS) + 1 and buckets[-1].labels["le"] == "+Inf"
        counts = [x.value for x in buckets]
        assert counts == sorted(counts)
        assert counts[-1] == value("vecstore_query_seconds", "vecstore_query_seconds_count",
                                   strategy=strategy)
    assert value("vecstore_segment_build_seconds", "vecstore_segment_build_seconds_count",
                 kind="seal") == 2
    assert value("vecstore_commit_seconds", "vecstore_commit_seconds_count") == m.commits
    json.dumps(m.to_dict())  # JSON-ready
    assert m.to_dict()["queries"]["hnsw"] == 20


# -- concurrency, lifetime ----------------------------------------------------------------------


def test_reading_metrics_while_querying_from_many_threads(tmp_path: Path) -> None:
    with VecStore.open(tmp_path / "s", cfg()) as s:
        s.upsert_many(ids=[str(i) for i in range(500)], vectors=vecs(500))
        errors: list[BaseException] = []
        stop = threading.Event()
        per, threads = 150, 6

        def query(t: int) -> None:
            try:
                for i in range(per):
                    s.query(vecs(1, t * 1000 + i)[0], k=3)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def read() -> None:
            try:
                last = 0
                while not stop.is_set():
                    m = s.metrics()
                    text_string_to_metric_families(m.to_prometheus())
                    assert m.query_latency.count >= last
                    last = m.query_latency.count
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        readers = [threading.Thread(target=read) for _ in range(2)]
        workers = [threading.Thread(target=query, args=(t,)) for t in range(threads)]
        for th in readers + workers:
            th.start()
        for th in workers:
            th.join()
        stop.set()
        for th in readers:
            th.join()
        assert errors == []
        m = s.metrics()
    assert m.queries["exact_scan"] == m.query_latency.count == per * threads


def test_metrics_start_at_open_and_read_only_stores_count_queries(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with VecStore.open(path, cfg()) as s:
        s.upsert_many(ids=["a", "b"], vectors=vecs(2))
        s.query(vecs(1)[0], k=1)
        assert s.metrics().writes == 1 and s.metrics().query_latency.count == 1
    with VecStore.open(path) as s:
        m = s.metrics()
        assert m.writes == m.commits == m.records_written == m.query_latency.count == 0
        s.query(vecs(1)[0], k=1)
        assert s.metrics().queries["exact_scan"] == 1
    with VecStore.open(path, read_only=True) as ro:
        ro.query(vecs(1)[0], k=1)
        ro.query(vecs(1)[0], k=1)
        m = ro.metrics()
    assert m.read_only and m.writes == 0 and m.queries["exact_scan"] == 2
    assert m.uptime_seconds >= 0 and m.opened_at > 0


async def test_async_read_only_store_metrics(tmp_path: Path) -> None:
    with VecStore.open(tmp_path / "s", cfg()) as s:
        s.upsert_many(ids=["a", "b"], vectors=vecs(2))
    async with AsyncVecStore.open(tmp_path / "s", read_only=True) as ro:
        await ro.query(vecs(1)[0], k=1)
        m = await ro.metrics()
    assert m.read_only and m.queries["exact_scan"] == 1


def test_recording_can_be_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VECSTORE_METRICS", "0")
    with VecStore.open(tmp_path / "s", cfg()) as s:
        assert isinstance(s._engine.metrics, NullRecorder)  # type: ignore[union-attr]
        s.upsert_many(ids=["a", "b"], vectors=vecs(2))
        s.query(vecs(1)[0], k=1)
        m = s.metrics()
    assert m.writes == m.commits == m.query_latency.count == 0
    text_string_to_metric_families(m.to_prometheus())

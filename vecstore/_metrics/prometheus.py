"""``Metrics.to_prometheus()``: the Prometheus text exposition format 0.0.4.

Names start with ``vecstore_``; counters end in ``_total``; histograms have
``_bucket{le=...}`` (cumulative), ``_sum`` and ``_count``.  Queries carry a
``strategy`` label, segment builds a ``kind`` label, records written a
``partition`` label (a counter only: latency histograms per partition would
multiply the series by the number of tenants).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import accumulate

from .recorder import Histogram, Metrics


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _num(x: float) -> str:
    if isinstance(x, int):
        return str(x)
    return "+Inf" if x == math.inf else repr(float(x))


def _family(out: list[str], name: str, kind: str, help: str) -> None:
    out.append(f"# HELP {name} {help}")
    out.append(f"# TYPE {name} {kind}")


def _hist(out: list[str], name: str, h: Histogram, label: str = "") -> None:
    les = _LE.get(h.bounds)
    if les is None:  # the bucket labels of a set of bounds, formatted once
        les = _LE[h.bounds] = [f'le="{_num(b)}"' for b in (*h.bounds, math.inf)]
    head = f"{name}_bucket{{{label}{',' if label else ''}"
    out.extend(f"{head}{le}}} {n}" for le, n in zip(les, accumulate(h.counts)))
    lab = f"{{{label}}}" if label else ""
    out.append(f"{name}_sum{lab} {_num(h.sum)}")
    out.append(f"{name}_count{lab} {h.count}")


_LE: dict[tuple[float, ...], list[str]] = {}


def render(m: Metrics) -> str:
    out: list[str] = []
    p = "vecstore_"

    def counter(name: str, value: float, help: str) -> None:
        _family(out, p + name, "counter", help)
        out.append(f"{p}{name} {_num(value)}")

    def hist(name: str, h: Histogram | Mapping[str, Histogram], help: str,
             label: str = "") -> None:
        _family(out, p + name, "histogram", help)
        if isinstance(h, Histogram):
            _hist(out, p + name, h)
        else:
            for key, sub in h.items():
                _hist(out, p + name, sub, f'{label}="{_label(key)}"')

    _family(out, p + "open_timestamp_seconds", "gauge",
            "When the store was opened (Unix time); every other figure counts since then.")
    out.append(f"{p}open_timestamp_seconds {_num(m.opened_at)}")
    counter("writes_total", m.writes, "Write calls committed.")
    counter("write_errors_total", m.write_errors, "Write calls answered with an error.")
    _family(out, p + "records_written_total", "counter",
            "Rows added by committed writes (upserted records, rollback copies).")
    for part, n in sorted(m.records_written_by_partition.items()):
        out.append(f'{p}records_written_total{{partition="{_label(part)}"}} {n}')
    counter("commits_total", m.commits, "LMDB transactions committed for write calls.")
    hist("group_commit_size", m.group_commit_size, "Write calls per committed transaction.")
    hist("commit_seconds", m.commit_seconds,
         "LMDB commit call per group commit: page writes and, under durability=sync, fsync.")
    hist("transaction_seconds", m.transaction_seconds,
         "Whole write transaction per group commit (applying the calls, then the commit).")
    hist("query_seconds", m.query_latency_by_strategy,
         "query() latency by planner strategy (the one explain() reports).", "strategy")
    hist("segment_build_seconds", m.segment_build_seconds_by_kind,
         "Building a sealed segment (HNSW index and its file) by kind (seal or merge).", "kind")
    counter("segment_rows_built_total", m.segment_rows_built, "Rows indexed by segment builds.")
    counter("import_records_total", m.import_records, "Records imported by vecstore.migration.")
    counter("import_errors_total", m.import_errors, "Records rejected by imports.")
    counter("import_seconds_total", m.import_seconds,
            "Wall time of imports up to their last committed batch.")
    return "\n".join(out) + "\n"

"""The query planner: ``choose`` picks a strategy per query from the
estimated number of matching rows -- an exact scan of the matching rows,
HNSW with over-fetch, or a filtered HNSW walk -- and ``explain`` reports
that choice with a rough cost.  (The filter masks it counts with are
:mod:`vecstore._metaindex.masks`.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._segments.costs import plan as costs_plan
from .._segments.segment import EXACT_BELOW

EXACT_MAX = EXACT_BELOW  # at most this many matching rows: scan them exactly
# OVERFETCH_MIN (from segment.py): at least this share matching: HNSW with over-fetch


@dataclass(frozen=True)
class QueryPlan:
    """What ``explain(query)`` reports (and what the query does)."""

    strategy: str
    estimated_matches: int
    estimated_cost_ms: float
    hints: list[str] = field(default_factory=list)
    total_rows: int = 0
    indexed_fields: list[str] = field(default_factory=list)
    unindexed_fields: list[str] = field(default_factory=list)


_STRATEGY = {"exact": "exact_scan", "overfetch": "hnsw_overfetch", "walk": "filtered_hnsw"}


def choose(matches: int, total: int, filtered: bool, index: Any = None, k: int = 10,
           ef: int = 64) -> str:
    """The strategy for ``matches`` of ``total`` visible rows; ``index`` (the
    largest sealed segment's) plans by its kind's measured costs when it
    states them (see :mod:`vecstore._segments.costs`)."""
    if total < EXACT_MAX or (filtered and matches <= EXACT_MAX and
                             getattr(index, "costs", None) is None):
        return "exact_scan"
    if not filtered:
        return "hnsw"
    if matches <= k:
        return "exact_scan"
    return _STRATEGY[costs_plan(index, matches, total, k, ef)[0]]


def cost_ms(strategy: str, matches: int, total: int, dim: int, unindexed_rows: int,
            index: Any = None, k: int = 10, ef: int = 64) -> float:
    """A rough model: per-row metadata checks ~3 us, plus the search -- from
    the index kind's measured costs when it states them, else calibrated on
    2 cores, 384-d: exact distances ~2.5 us per row fetched, an HNSW probe ~0.3 ms."""
    check = unindexed_rows * 0.003
    costs = getattr(index, "costs", None)
    if costs is not None:
        if strategy == "hnsw":
            return check + costs.cand_us * max(k, ef) / 1000
        if strategy == "exact_scan" and total < EXACT_MAX:
            return check + costs.row_us * matches / 1000
        return check + costs_plan(index, max(matches, 1), total, k, ef)[2] / 1000
    if strategy == "exact_scan":
        return check + matches * 0.0025 * dim / 384
    if strategy == "hnsw":
        return check + 0.3
    if strategy == "hnsw_overfetch":
        return check + 0.3 * max(1.0, total / max(matches, 1))
    return check + 0.3 + 0.6 * min(20.0, total / max(matches, 1)) ** 0.5

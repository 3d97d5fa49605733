"""How a sealed segment answers a filtered query, by estimated cost.

Three ways: an exact scan of the eligible rows, an HNSW search that
over-fetches by the inverse eligible share and keeps the eligible
candidates, or a filtered walk (the index skips ineligible labels).  An
index kind that states its :class:`Costs` (measured, see
``benchmarks/bench_engine.py --costs``) is planned by comparing the three
estimates; kinds without them (hnswlib, whose exact scans read LMDB) keep
the fixed rule: exact at most ``EXACT_BELOW`` rows, over-fetch from
``OVERFETCH_MIN`` of the segment, a filtered walk in between.
"""

from __future__ import annotations

import math
from typing import Any

from .._index.base import Costs

# Below this many eligible rows a segment is scanned exactly (kinds without Costs).
EXACT_BELOW = 1000
# Over-fetching more than this share of a segment makes an exact scan cheaper.
OVERFETCH_LIMIT = 0.25
# Candidates asked for per result wanted, beyond the eligible share (the tail
# of a long candidate list is the least accurate part).
OVERFETCH_FACTOR = 1.5
# With at least this share of a segment eligible, over-fetch; below, walk filtered
# (hnswlib's filtered walk explores far more nodes than an over-fetch at 5-30%).
OVERFETCH_MIN = 0.05


def plan(index: Any, m: int, n: int, k: int, ef: int) -> tuple[str, int, float]:
    """``(how, width, estimated us)`` for ``m`` eligible rows of ``n``: how is
    ``"exact"``, ``"overfetch"`` (width = candidates to ask for) or ``"walk"``
    (width = the walk's ef)."""
    costs: Costs | None = getattr(index, "costs", None)
    if costs is None:
        if m <= EXACT_BELOW:
            return "exact", m, m * 2.5
        if m >= OVERFETCH_MIN * n:
            kk = max(int(OVERFETCH_FACTOR * (k * n / m * 1.5 + k)), ef + 2 * k)
            return "overfetch", kk, 300.0 * max(1.0, n / m)
        return "walk", ef, 300.0 + 600.0 * min(20.0, n / max(m, 1)) ** 0.5
    share = m / max(n, 1)
    options = [("exact", m, costs.row_us * m)]
    kk = max(ef + 2 * k, math.ceil(costs.overfetch * k / max(share, 1e-9)))
    if kk <= max(n * OVERFETCH_LIMIT, 2 * ef):
        options.append(("overfetch", kk, costs.cand_us * kk))
    wef = costs.walk_ef(ef, share)
    options.append(("walk", wef, costs.cand_us * max(k, wef) * costs.walk_mult))
    return min(options, key=lambda o: o[2])


def thresholds(index: Any, n: int, k: int, ef: int) -> str:
    """Where the plan changes for a segment of ``n`` rows, for ``explain()``."""
    costs: Costs | None = getattr(index, "costs", None)
    if costs is None:
        return (f"fixed thresholds: exact scan up to {EXACT_BELOW} matching rows, over-fetch "
                f"from {OVERFETCH_MIN:.0%} of a segment, filtered walk in between")
    last, edges = None, []
    for m in sorted({max(1, int(n * s / 1000)) for s in range(1, 1001)}):
        how = plan(index, m, n, k, ef)[0]
        if how != last:
            edges.append(f"{how} from {m} rows ({m / n:.1%})")
            last = how
    return (f"measured costs ({type(index).__name__}: exact {costs.row_us:g} us/row, HNSW "
            f"{costs.cand_us:g} us per beam slot, walk x{costs.walk_mult:g}): "
            f"for {n} rows at k={k}, ef={ef}: " + ", ".join(edges))

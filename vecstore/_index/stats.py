"""``stats().index``: what searches each partition, and what it holds in RAM.

:func:`index_stats` takes a published state's partitions
(``engine.state.parts``: name -> an object with ``sealed``, a list of sealed
segments with an ``index``, and ``growing``) and returns plain data for
``Stats.index``.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

_LIBRARY = {"faiss": "faiss-cpu", "hnswlib": "hnswlib"}


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "?"


def _quantization(index: Any) -> str:
    q = getattr(index, "params", {}).get("quantization")
    if q is None or getattr(index, "exact", True):  # (PQ on too few rows to train: float32)
        return "float32"
    return "sq8" if q == "sq8" else f"pq{q['pq'][0]}x{q['pq'][1]}"


def index_stats(parts: Mapping[str, Any]) -> dict[str, Any]:
    """``{"engines": {"faiss": "faiss-cpu 1.15.1", ...}, "partitions": {name:
    {"kinds": [...], "quantization": [...], "segments": n, "indexed_rows": n,
    "resident_bytes": index bytes, "growing_bytes": exact-searched rows' bytes}}}``
    (a kind or quantization is listed once per partition, however many
    segments use it)."""
    engines: dict[str, str] = {}
    out: dict[str, Any] = {}
    for name, pm in parts.items():
        kinds: list[str] = []
        quants: list[str] = []
        resident = rows = 0
        for seg in pm.sealed:
            ix = seg.index
            if ix.kind not in kinds:
                kinds.append(ix.kind)
            q = _quantization(ix)
            if q not in quants:
                quants.append(q)
            resident += int(ix.memory_bytes())
            rows += int(ix.n)
            lib = _LIBRARY.get(ix.kind)
            if lib is not None and ix.kind not in engines:
                engines[ix.kind] = f"{lib} {_version(lib)}"
        g = pm.growing
        grow = 0 if g is None else int(g.n) * int(g.vecs.shape[1]) * 4
        out[name] = {"kinds": kinds, "quantization": quants, "segments": len(pm.sealed),
                     "indexed_rows": rows, "resident_bytes": resident, "growing_bytes": grow}
    return {"engines": engines, "partitions": out}

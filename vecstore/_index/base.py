"""The index-kind protocol (see :mod:`vecstore._index`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .._types import Distance

Cancelled = Callable[[], bool]
Vectors = Callable[[np.ndarray], np.ndarray]  # labels -> prepared float32 vectors
Progress = Callable[[int], None]  # rows added so far (read by progress displays)


class BuildCancelled(Exception):
    """A segment build was stopped because the store is closing."""


class AnnIndex(Protocol):
    """One segment's search structure.  Immutable once published: readers
    in many threads call :meth:`search` at once, nobody mutates it."""

    kind: str
    params: dict[str, Any]  # the build parameters (recorded in the manifest)
    n: int  # rows (labels 0..n-1)
    dim: int

    def search(self, q: np.ndarray, k: int, ef: int, allow: np.ndarray | None = None,
               cap: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """The best ``max(k, ef)`` labels (at most ``cap``, at most ``n``) and
        their distances, best first, searching with a beam of at least
        ``ef``; only labels with ``allow[label]`` when given.  Distances are
        the library's (lower is better: 1 - dot for ip, squared L2).  None
        when the index cannot return that many."""
        ...

    def write(self, path: str) -> None:
        """Write the index to ``path`` (a new file; the caller fsyncs and
        renames it).  Raises OSError when the bytes did not all land."""
        ...

    def memory_bytes(self) -> int:
        """Resident bytes of the structure (vectors included if it holds them)."""
        ...

    def manifest(self) -> dict[str, Any]:
        """Kind-specific fields for the segment's manifest entry (e.g. a file
        format number), handed back to :meth:`AnnKind.load` in ``entry``."""
        ...


class AnnKind(Protocol):
    """Builds and loads one kind of :class:`AnnIndex`."""

    name: str

    def params(self, config: Any) -> dict[str, Any]:
        """The build parameters this kind takes from a ``Config``; recorded in
        the manifest with each segment."""
        ...

    def build(self, vecs: np.ndarray, distance: Distance, params: Mapping[str, Any],
              threads: int, seed: int, cancelled: Cancelled | None = None,
              progress: Progress | None = None) -> AnnIndex:
        """An index over ``vecs`` (prepared, float32, C-contiguous), labels
        = positions; checks ``cancelled()`` every few thousand rows (raising
        :class:`BuildCancelled`) and reports ``progress(rows so far)``."""
        ...

    def extend(self, base: AnnIndex, vecs: np.ndarray, threads: int, scratch: str,
               cancelled: Cancelled | None = None,
               progress: Progress | None = None) -> AnnIndex | None:
        """A new index holding ``base``'s rows and then ``vecs`` (labels
        continue from ``base.n``), leaving ``base`` untouched; None when the
        kind cannot extend (the caller rebuilds).  ``scratch`` is a path the
        kind may use for a temporary file (removed before it returns)."""
        ...

    def load(self, path: str, distance: Distance, dim: int, n: int,
             entry: Mapping[str, Any], vectors: Vectors) -> AnnIndex:
        """Load the file written by :meth:`AnnIndex.write`.  ``entry`` is the
        segment's manifest entry.  Raises CorruptionError, OSError or
        RuntimeError when the file cannot be used (the caller rebuilds)."""
        ...


@dataclass(frozen=True)
class Costs:
    """An index kind's measured costs (microseconds, one query, one thread):
    an index may state them as ``costs`` (see :mod:`vecstore._segments.costs`)."""

    row_us: float  # exact scan: per eligible row
    cand_us: float  # HNSW search: per unit of beam width (max(k, ef))
    walk_mult: float  # a filtered walk costs this many plain searches of the same ef
    overfetch: float  # over-fetch: candidates per result wanted, per inverse share
    walk_ef_max: float = 4.0  # a walk raises ef by sqrt(0.1 / share), at most this much

    def walk_ef(self, ef: int, share: float) -> int:
        return int(ef * min(self.walk_ef_max, max(1.0, math.sqrt(0.1 / max(share, 1e-9)))))


DEFAULT_KIND = "hnswlib"
DEFAULT_M = 16  # Config.hnsw_m for a new store
DEFAULT_EF_CONSTRUCTION = 200  # Config.ef_construction for a new store


def graph_params(config: Any) -> dict[str, Any]:
    """``{"m", "ef_construction"}`` from a ``Config`` (None: the defaults)."""
    m, efc = getattr(config, "hnsw_m", None), getattr(config, "ef_construction", None)
    return {"m": DEFAULT_M if m is None else int(m),
            "ef_construction": DEFAULT_EF_CONSTRUCTION if efc is None else int(efc)}


def entry_kind(entry: Mapping[str, Any]) -> str:
    """A manifest entry's kind; entries written before kinds existed are hnswlib's."""
    return str(entry.get("kind", DEFAULT_KIND))


def entry_params(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest entry's build parameters (old entries kept m/efc at top level)."""
    if "params" in entry:
        return dict(entry["params"])
    return {"m": entry["m"], "ef_construction": entry["efc"]}

"""ANN index kinds: the seam between a sealed segment and the library that
searches it.

A sealed segment holds its rows (rowids, born, died, metadata columns) and
one :class:`AnnIndex` over their vectors, labelled by position ``0..n-1``.
A *kind* (:class:`AnnKind`) builds, loads and extends such indexes; the
manifest records each segment's kind and parameters, and :data:`KINDS`
maps a kind's name to its implementation.  Adding a kind is one module that
defines it plus one :func:`register` line (see ``hnsw.py``, and the exact
``flat`` kind in ``tests/_flat_kind.py``).

Vectors are stored once, in LMDB: a kind's file may leave them out and take
them back at load through ``vectors(labels)``, which returns those labels'
vectors prepared for search (``vecstore._segments.segment.prepare``).
"""

from __future__ import annotations

from .._errors import CorruptionError
from .base import (
    DEFAULT_KIND,
    AnnIndex,
    AnnKind,
    BuildCancelled,
    Cancelled,
    Progress,
    Vectors,
    entry_kind,
    entry_params,
)
from .faiss_hnsw import FaissKind
from .hnsw import HnswlibKind

KINDS: dict[str, AnnKind] = {}


def register(kind: AnnKind) -> AnnKind:
    """Make ``kind`` available under ``kind.name`` (Config.index_kind, manifest)."""
    KINDS[kind.name] = kind
    return kind


def kind_named(name: str) -> AnnKind:
    try:
        return KINDS[name]
    except KeyError:
        raise CorruptionError(
            f"index kind {name!r} is not available in this vecstore (known: "
            f"{', '.join(sorted(KINDS))}); install the version that wrote the store, or "
            f"rebuild its segments") from None


register(HnswlibKind())
register(FaissKind())

__all__ = ["DEFAULT_KIND", "KINDS", "AnnIndex", "AnnKind", "BuildCancelled", "Cancelled",
           "Progress", "Vectors", "entry_kind", "entry_params", "kind_named", "register"]

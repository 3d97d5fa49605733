"""Exporting a store snapshot to one of the four formats."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .._query.hybrid import has_sparse, sparse_vectors
from .._query.snapshot import Snapshot
from ._writers import write_export

_U64 = (1 << 64) - 1


def _qdrant_id(rid: str) -> str | int:
    """Qdrant point ids are unsigned ints or UUIDs: a canonical decimal id
    goes out as the int it was imported from (and reads back as the same
    string); anything else stays a string."""
    if rid.isascii() and rid.isdigit() and (rid == "0" or rid[0] != "0"):
        n = int(rid)
        if n <= _U64:
            return n
    return rid


def export_rows(snap: Snapshot, fmt: str, text_field: str,
                progress: Callable[[int, int], Any] | None = None,
                total: int = 0) -> Iterator[tuple[Any, ...]]:
    """``(id, vector, metadata, document[, sparse])`` rows of a snapshot, by id
    (``sparse``, ``{index: weight}``, only for a record that has one).

    Chroma gets the text field back out of the metadata as the document;
    the other formats keep the metadata as stored.  Empty metadata is
    written as null/omitted (it reads back as ``{}``).
    """
    done = 0
    sparse = fmt in ("pinecone", "qdrant") and has_sparse(snap)
    for rec, sp in _with_sparse(snap.scan(batch_size=1000), snap, sparse):
        meta: Any = rec.metadata
        doc = None
        if fmt == "chroma" and isinstance(meta.get(text_field), str):
            meta = dict(meta)
            doc = meta.pop(text_field)
        rid: Any = _qdrant_id(rec.id) if fmt == "qdrant" else rec.id
        if sp is not None:
            yield rid, rec.vector, (meta or None), doc, sp
        else:
            yield rid, rec.vector, (meta or None), doc
        done += 1
        if progress is not None and done % 1000 == 0:
            progress(done, max(total, done))
    if progress is not None:
        progress(done, done)


def _with_sparse(records: Iterator[Any], snap: Snapshot, on: bool
                 ) -> Iterator[tuple[Any, dict[int, float] | None]]:
    """Records with their sparse vectors (looked up 1,000 at a time), when ``on``."""
    if not on:
        yield from ((r, None) for r in records)
        return
    batch: list[Any] = []
    for rec in records:
        batch.append(rec)
        if len(batch) == 1000:
            yield from zip(batch, sparse_vectors(snap, [r.id for r in batch]))
            batch = []
    if batch:
        yield from zip(batch, sparse_vectors(snap, [r.id for r in batch]))


def export_snapshot(snap: Snapshot, fmt: str, path: str, text_field: str,
                    progress: Callable[[int, int], Any] | None = None) -> int:
    """Write every record of the snapshot's partition to ``path``."""
    total = snap.count() if progress is not None else 0
    if progress is not None:
        progress(0, total)
    return write_export(fmt, path, export_rows(snap, fmt, text_field, progress, total))

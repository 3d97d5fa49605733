"""Incremental exports (``vecstore export ... --since V``) and their import.

An incremental export holds, for every record of the partition that changed
after version ``since`` up to ``version``, its state at ``version``: the
record as usual if it is live, else a *tombstone*:

========= ==========================================================================
format    tombstone / where the versions are recorded
========= ==========================================================================
qdrant    a line ``{"id": ..., "deleted": true}``; the first line is the header
          ``{"vecstore": {"since", "version", "partition"}}`` (not a record)
pinecone  ``{"id": ..., "deleted": true}`` in ``vectors``; the header is the
          top-level key ``"vecstore"`` after ``vectors``
weaviate  as pinecone
chroma    the id with a null embedding, metadata ``{"deleted": true}`` and a null
          document; the header is the top-level key ``"vecstore"``
========= ==========================================================================

Each record appears once, so applying the file to the partition's state at
``since`` (or at any version between ``since`` and ``version``) gives its
state at ``version``.  Importing applies upserts and deletes of a batch in
one version (:class:`UpsertDelete`), with the import's progress, so an
interrupted import resumes exactly once, as any import does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .._engine.ops import Upsert
from .._engine.txn import TxnCtx
from .._query.changes import open_changes


@dataclass
class UpsertDelete(Upsert):
    """An import batch's upserts, then its tombstones' deletes: one version."""

    deletes: list[str] = field(default_factory=list)

    def apply(self, ctx: TxnCtx) -> Any:
        if self.ids:
            super().apply(ctx)
        else:
            for key, value in (self.meta_puts or {}).items():
                ctx.storage.put_meta(ctx.txn, key, value)
        pid = ctx.pid_for(self.partition, create=False)
        if pid is not None and self.deletes:
            ctx.delete_ids(pid, self.deletes)
        return ctx.version


def with_deletes(req: Upsert | None, partition: str, deletes: list[str], message: str,
                 dim: int | None) -> Upsert:
    import numpy as np

    if req is None:
        return UpsertDelete(partition, [], np.empty((0, dim or 1), np.float32), [], message,
                            deletes=deletes)
    return UpsertDelete(req.partition, req.ids, req.vectors, req.metas, req.message,
                        req.meta_puts, req.dicts, deletes=deletes)


def change_rows(engine: Any, partition: str, since: int, until: int, fmt: str,
                text_field: str, qdrant_id: Callable[[str], Any],
                progress: Callable[[int, int], Any] | None = None
                ) -> Iterator[tuple[Any, Any, Any, Any]]:
    """``(id, vector, metadata, document)`` rows of an incremental export;
    a tombstone is ``(id, None, None, None)``."""
    done = 0
    for c in open_changes(engine, since, until, [partition], last_only=True):
        rid = qdrant_id(c.id) if fmt == "qdrant" else c.id
        if c.op == "delete":
            yield rid, None, None, None
        else:
            meta: Any = c.metadata
            doc = None
            if fmt == "chroma" and isinstance(meta.get(text_field), str):
                meta = dict(meta)
                doc = meta.pop(text_field)
            yield rid, c.vector, (meta or None), doc
        done += 1
        if progress is not None and done % 1000 == 0:
            progress(done, done)
    if progress is not None:
        progress(done, done)


def export_changes(snap: Any, fmt: str, path: str, text_field: str, since: int,
                   progress: Callable[[int, int], Any] | None = None) -> int:
    """Write the changes of the snapshot's partition after ``since`` up to
    the snapshot's version (an incremental export); return how many rows."""
    from ._export import _qdrant_id
    from ._writers import write_export

    part, until = snap.partition_name, snap.version
    rows = change_rows(snap._engine, part, since, until, fmt, text_field, _qdrant_id, progress)
    header = {"since": since, "version": until, "partition": part}
    return write_export(fmt, path, rows, header=header)

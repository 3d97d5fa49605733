"""The writer's in-memory partitions: each partition's sealed segments and
growing segment, the metadata index definitions their columns follow, the
vector dimension, and how far into the WAL memory reflects.

Only the writer changes it (after each commit, each finished segment job,
at load); readers never look at it but at the immutable :class:`State`
published from it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import lmdb
import numpy as np

from .._metaindex.columns import ColumnBuilder, encode_values, lookup_path
from .._metaindex.indexing import (
    TERM_KINDS,
    IndexDef,
    Path,
    index_values,
    load_defs,
    segment_column,
)
from .._metaindex.text import SPARSE, TermBuilder, encode_docs
from .._metaindex.textstore import row_terms
from .._segments.segment import GrowingSegment, prepare
from .._storage.env import Storage
from .._types import Distance
from .state import Effects, PartMem, State

log = logging.getLogger("vecstore")


class Partitions:
    def __init__(self, distance: Distance, dim: int | None) -> None:
        self.distance = distance
        self.dim = dim  # None until the first vector is written
        self.last_seq = 0  # the last WAL entry applied
        self.parts: dict[str, PartMem] = {}
        self.by_pid: dict[int, PartMem] = {}
        self.indexes: dict[Path, IndexDef] = {}

    def reset(self, parts: dict[str, PartMem]) -> None:
        """Take the partitions recovery built."""
        self.parts = parts
        self.by_pid = {pm.pid: pm for pm in parts.values()}

    def add(self, name: str, pid: int) -> None:
        self.parts[name] = self.by_pid[pid] = PartMem(pid, name, True)

    def state(self, version: int, old: State | None, changed: Sequence[int] | None = None
              ) -> State:
        """The state to publish: ``old`` with the partitions ``changed``
        replaced (all of them when either is None)."""
        if old is None or changed is None:
            parts = {pm.name: pm.state() for pm in self.parts.values()}
        else:
            parts = dict(old.parts)
            for pid in changed:
                pm = self.by_pid[pid]
                parts[pm.name] = pm.state()
        return State(version, parts, self.dim, self.distance, dict(self.indexes))

    # -- a committed batch --------------------------------------------------------

    def apply(self, effs: list[Effects], touched: set[int]) -> None:
        """Memory side of a committed batch: every add (one append per
        partition), then every kill (a kill may hit a row the batch added)."""
        adds: dict[int, list[tuple[int, int, np.ndarray, list[dict[str, Any]], int]]] = {}
        terms: dict[tuple[int, Path], list[Any]] = {}  # analysed in the transaction
        for eff in effs:
            for pid, r0, mat, dicts in eff.adds:
                adds.setdefault(pid, []).append((eff.version, r0, mat, dicts, eff.seq))
            terms.update(eff.terms)
        for pid, items in adds.items():
            pm = self.by_pid[pid]
            if pm.growing is None:
                assert self.dim is not None
                pm.growing = GrowingSegment(pid, self.dim, self.distance)
                pm.growing.cols = {p: TermBuilder() if ix.kind in TERM_KINDS else ColumnBuilder()
                                   for p, ix in self.indexes.items()}
            mat = items[0][2] if len(items) == 1 else np.concatenate([it[2] for it in items])
            rowids = np.concatenate([np.arange(r0, r0 + m.shape[0], dtype=np.int64)
                                     for _v, r0, m, _d, _s in items])
            born = np.concatenate([np.full(m.shape[0], v, np.int64)
                                   for v, _r, m, _d, _s in items])
            if self.indexes:
                dicts = [d for it in items for d in it[3]]
                for path, ix in self.indexes.items():
                    if ix.kind in TERM_KINDS:
                        col: Any = encode_docs(
                            [t for _v, r0, m, d, _s in items
                             for t in _terms(terms, r0, path, ix, d, m.shape[0])],
                            sparse=ix.kind == SPARSE)
                    else:
                        col = encode_values((lookup_path(d, path) for d in dicts), ix.fd)
                    pm.growing.cols[path].append(col)
            pm.growing.append(rowids, born, prepare(mat, self.distance))
            for _v, r0, m, _d, seq in items:
                pm.adds.append((r0, r0 + m.shape[0] - 1, seq))
            touched.add(pid)
        for eff in effs:
            kills: dict[int, list[int]] = {}
            for pid, rowid in eff.kills:
                kills.setdefault(pid, []).append(rowid)
            for pid, rowids_ in kills.items():
                self._kill(self.by_pid[pid], np.asarray(rowids_, np.int64), eff.version)
                touched.add(pid)

    def _kill(self, pm: PartMem, rowids: np.ndarray, version: int) -> None:
        g = pm.growing
        if g is not None and g.n:
            sel = rowids > pm.upto
            if sel.any():
                pos = np.searchsorted(g.rowids[: g.n], rowids[sel])
                g.kill(pos, version)
                rowids = rowids[~sel]
        for seg in pm.sealed:
            if not rowids.size:
                break
            pos = np.minimum(np.searchsorted(seg.rowids, rowids), seg.n - 1)
            hit = seg.rowids[pos] == rowids
            if hit.any():
                seg.kill(pos[hit], version)
                rowids = rowids[~hit]
        if rowids.size:
            log.error("rows %s of partition %r not found in memory", rowids[:5], pm.name)

    # -- metadata index columns ------------------------------------------------------

    def adopt_indexes(self, st: Storage) -> None:
        """Indexes were created or dropped: rebuild the affected columns."""
        with st.read() as txn:
            new = load_defs(st, txn, self.indexes)
            gone = set(self.indexes) - set(new)
            fresh = [p for p, ix in new.items()  # (a new dictionary: another analyzer)
                     if p not in self.indexes or self.indexes[p].fd is not ix.fd]
            self.indexes = new
            for pm in self.parts.values():
                for seg in pm.sealed:
                    for p in gone:
                        seg.cols.pop(p, None)
                if pm.growing is not None:
                    for p in gone:
                        pm.growing.cols.pop(p, None)
            self.attach_columns(st, txn, fresh)

    def attach_columns(self, st: Storage, txn: lmdb.Transaction, paths: Iterable[Path]) -> None:
        """(Re)build the columns of ``paths`` on every segment (writer or load)."""
        for path in paths:
            ix = self.indexes[path]
            values = index_values(st, txn, ix)
            for pm in self.parts.values():
                for seg in pm.sealed:
                    seg.cols[path] = segment_column(values, seg.rowids, ix)
                g = pm.growing
                if g is not None:
                    g.cols[path] = ColumnBuilder.of(segment_column(values, g.rowids[: g.n], ix))

    # -- questions ------------------------------------------------------------------------

    def referenced_rowids(self) -> np.ndarray:
        """Every rowid some segment holds (compaction keeps those rows)."""
        parts = [s.rowids for pm in self.parts.values() for s in pm.sealed]
        parts += [pm.growing.rowids[: pm.growing.n] for pm in self.parts.values()
                  if pm.growing is not None]
        return np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)

    def optimized(self, below_rowid: int) -> bool:
        """Are all rows older than ``below_rowid`` in one segment per partition?"""
        for pm in self.parts.values():
            g = pm.growing
            if g is not None and g.n and int(g.rowids[0]) < below_rowid:
                return False
            if len(pm.sealed) > 1:
                return False
        return True


def _terms(terms: dict[tuple[int, Path], list[Any]], r0: int, path: Path, ix: IndexDef,
           dicts: list[dict[str, Any]], n: int) -> list[Any]:
    """The (term ids, weights) of an add's rows for a text or sparse index:
    as the transaction analysed them, else from the metadata (text) or none
    (no sparse vectors)."""
    got = terms.get((r0, path))
    if got is not None:
        return got
    if ix.kind == SPARSE or ix.text is None or len(dicts) != n:
        return [None] * n
    return [row_terms(ix.fd, ix.text.analyzer, d, path) for d in dicts]

"""BM25 text indexes and sparse vectors: their in-memory columns.

Persistent part (written by the writer in the same transaction as the rows,
see :mod:`.textstore`): ``tdocs`` (field · rowid -> the row's postings:
length, terms, frequencies) per text index; ``sparse``
(rowid -> the row's sparse vector).

In-memory part, per segment and index, aligned with the segment's
positions like the metadata columns (:mod:`.columns`) and carried by the
same ``seg.cols`` machinery (built at open, appended by the writer, taken
and concatenated when segments are sealed, merged or compacted): a
:class:`TermColumn` -- a document-major CSR of (term id, weight) with each
document's length.  Text term ids come from the index's append-only
:class:`TermDict`; a sparse vector's term ids are its indices.  Columns of
sealed segments also get a term-major (inverted) copy, built on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .analysis import Analyzer

TEXT, SPARSE = "text", "sparse"
SPARSE_FIELD = "\x00sparse"  # the registry name of the (implicit) sparse index
SPARSE_PATH = (SPARSE_FIELD,)
INVERT_MIN = 4096  # postings a sealed column needs before it builds the inverted copy


class TermDict:
    """Append-only term dictionary of one text index (readers look terms up
    while the writer adds new ones)."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.terms: list[str] = []

    def code(self, term: str) -> int:
        c = self.codes.get(term)
        if c is None:
            c = len(self.terms)
            self.terms.append(term)
            self.codes[term] = c
        return c

    def get(self, term: str) -> int:
        return self.codes.get(term, -1)


@dataclass
class TextSpec:
    """A text index's recorded analyzer and BM25 parameters."""

    analyzer: Analyzer
    k1: float = 1.2
    b: float = 0.75

    def to_dict(self) -> dict[str, Any]:
        return {"analyzer": self.analyzer.to_dict(), "k1": self.k1, "b": self.b}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TextSpec:
        return cls(Analyzer.from_dict(d.get("analyzer", {})), float(d.get("k1", 1.2)),
                   float(d.get("b", 0.75)))


@dataclass(eq=False)
class TermColumn:
    """Terms of a segment's documents: position ``p`` has terms
    ``dterm[doff[p]:doff[p+1]]`` with weights ``dtf`` (term frequencies, or
    sparse weights) and length ``dlen[p]`` (-1: the record has no text)."""

    doff: np.ndarray  # int64, n+1
    dterm: np.ndarray  # int64
    dtf: np.ndarray  # float32
    dlen: np.ndarray  # float32, n
    n: int
    frozen: bool = True  # a sealed segment's: may build the inverted copy
    _inv: Any = field(default=None, repr=False)
    _stats: dict[int, tuple[int, float]] = field(default_factory=dict, repr=False)
    _tw: dict[tuple[float, float, float], Any] = field(default_factory=dict, repr=False)

    # -- what the segment machinery asks of a column ------------------------------------

    def take(self, positions: np.ndarray) -> TermColumn:
        positions = np.asarray(positions, np.int64)
        starts = self.doff[positions]
        counts = self.doff[positions + 1] - starts
        doff = np.zeros(len(positions) + 1, np.int64)
        np.cumsum(counts, out=doff[1:])
        total = int(doff[-1])
        idx = np.arange(total, dtype=np.int64) - np.repeat(doff[:-1], counts) + \
            np.repeat(starts, counts)
        return TermColumn(doff, self.dterm[idx], self.dtf[idx], self.dlen[positions],
                          len(positions))

    @staticmethod
    def concat(cols: list[TermColumn]) -> TermColumn:
        if len(cols) == 1 and cols[0].frozen:
            return cols[0]
        offs = [np.zeros(1, np.int64)]
        base = 0
        for c in cols:
            offs.append(c.doff[1: c.n + 1] + base)
            base += int(c.doff[c.n])
        return TermColumn(np.concatenate(offs),
                          np.concatenate([c.dterm[: int(c.doff[c.n])] for c in cols]),
                          np.concatenate([c.dtf[: int(c.doff[c.n])] for c in cols]),
                          np.concatenate([c.dlen[: c.n] for c in cols]),
                          sum(c.n for c in cols))

    def builder(self) -> TermBuilder:
        b = TermBuilder(max(1024, self.n))
        b.append(self)
        return b

    # -- search support ---------------------------------------------------------------

    def postings(self, qterms: np.ndarray, tw: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(positions, query term index, weight) of every posting of the
        (distinct) term ids ``qterms`` among the first ``n`` positions
        (``tw``: other weights, aligned with the inverted copy)."""
        nnz = int(self.doff[self.n])
        if not self.frozen or nnz < INVERT_MIN:
            dterm = self.dterm[:nnz]
            ent = np.flatnonzero(np.isin(dterm, qterms))
            if ent.size == 0:
                return _NONE
            pos = np.searchsorted(self.doff[: self.n + 1], ent, side="right") - 1
            order = np.argsort(qterms, kind="stable")
            which = order[np.searchsorted(qterms[order], dterm[ent])]
            return pos, which, self.dtf[ent]
        uterms, toff, tpos, ttf = self._inverted()
        if tw is not None:
            ttf = tw
        at = np.searchsorted(uterms, qterms)
        parts_p, parts_q, parts_w = [], [], []
        for qi, (i, t) in enumerate(zip(at.tolist(), qterms.tolist())):
            if i < uterms.size and uterms[i] == t:
                s, e = int(toff[i]), int(toff[i + 1])
                parts_p.append(tpos[s:e])
                parts_q.append(np.full(e - s, qi, np.int64))
                parts_w.append(ttf[s:e])
        if not parts_p:
            return _NONE
        if len(parts_p) == 1:
            return parts_p[0], parts_q[0], parts_w[0]
        return np.concatenate(parts_p), np.concatenate(parts_q), np.concatenate(parts_w)

    def postings_bm25(self, qterms: np.ndarray, k1: float, b: float, avgdl: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`postings`, with each weight turned into BM25's term
        part ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))``; a
        sealed segment's column keeps those per ``avgdl`` (one corpus state)."""
        if not self.inverted:
            pos, qi, tf = self.postings(qterms)
            return pos, qi, _bm25_part(tf, self.dlen[pos], k1, b, avgdl)
        return self.postings(qterms, self.bm25_weights(k1, b, avgdl)[0])

    @property
    def inverted(self) -> bool:
        """Is the term-major copy searched (a sealed column, enough postings)?"""
        return self.frozen and int(self.doff[self.n]) >= INVERT_MIN

    def bm25_weights(self, k1: float, b: float, avgdl: float
                     ) -> tuple[np.ndarray, np.ndarray]:
        """BM25's term part of every posting of the inverted copy, and its
        maximum per term (kept per ``avgdl``: one corpus state)."""
        key = (k1, b, avgdl)
        got = self._tw.get(key)
        if got is None:
            _u, toff, tpos, ttf = self._inverted()
            tw = _bm25_part(ttf, self.dlen[tpos], k1, b, avgdl)
            tmax = np.maximum.reduceat(tw, toff[:-1]) if tw.size else np.empty(0)
            if len(self._tw) >= 4:
                self._tw.clear()
            got = self._tw[key] = (tw, tmax)
        return got  # type: ignore[no-any-return]

    def _inverted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        inv = self._inv
        if inv is None:
            nnz = int(self.doff[self.n])
            dterm = self.dterm[:nnz]
            pos = np.repeat(np.arange(self.n, dtype=np.int64), np.diff(self.doff[: self.n + 1]))
            order = np.argsort(dterm, kind="stable")
            st = dterm[order]
            uterms, starts = np.unique(st, return_index=True)
            toff = np.append(starts, nnz).astype(np.int64)
            inv = self._inv = (uterms, toff, pos[order], self.dtf[:nnz][order])
        return inv  # type: ignore[no-any-return]

    def stats(self, born: np.ndarray, died: np.ndarray, version: int, all_visible: bool
              ) -> tuple[int, float]:
        """(documents with text, their total length) among the rows visible
        at ``version`` -- fixed once ``version`` is published, so cached."""
        key = -1 if all_visible else version
        got = self._stats.get(key)
        if got is None:
            n = self.n
            lens = self.dlen[:n]
            has = lens >= 0
            if not all_visible:
                has &= (born[:n] <= version) & (died[:n] > version)
            got = (int(np.count_nonzero(has)), float(lens[has].sum(dtype=np.float64)))
            if len(self._stats) > 32:
                self._stats.clear()
            self._stats[key] = got
        return got


_NONE = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))


def _bm25_part(tf: np.ndarray, dl: np.ndarray, k1: float, b: float, avgdl: float
               ) -> np.ndarray:
    tf = tf.astype(np.float64)
    return tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * dl.astype(np.float64) / (avgdl or 1.0)))


def encode_docs(items: list[tuple[list[int], list[float]] | None], sparse: bool = False
                ) -> TermColumn:
    """A column for a batch of documents: (term ids, weights) each, or
    None for a record without text (writer only).  A text document's
    length is the sum of its term frequencies; a sparse vector's is 0."""
    n = len(items)
    counts = np.zeros(n, np.int64)
    dlen = np.full(n, -1.0, np.float32)
    terms: list[int] = []
    weights: list[float] = []
    for i, it in enumerate(items):
        if it is None:
            continue
        t, w = it
        counts[i] = len(t)
        dlen[i] = 0.0 if sparse else float(sum(w))
        terms.extend(t)
        weights.extend(w)
    doff = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=doff[1:])
    return TermColumn(doff, np.asarray(terms, np.int64), np.asarray(weights, np.float32),
                      dlen, n)


def text_terms(td: TermDict, an: Analyzer, text: Any) -> tuple[list[int], list[float]] | None:
    """(term ids, term frequencies) of one document's text, or None if it
    has none (not a str)."""
    if not isinstance(text, str):
        return None
    counts: dict[str, int] = {}
    for t in an.terms(text):
        counts[t] = counts.get(t, 0) + 1
    return [td.code(t) for t in counts], [float(c) for c in counts.values()]


def empty_column() -> TermColumn:
    return encode_docs([])


class TermBuilder:
    """A growing segment's term column: appended by the writer, viewed by readers."""

    def __init__(self, cap: int = 1024) -> None:
        self.n = 0
        self.nnz = 0
        self.doff = np.zeros(cap + 1, np.int64)
        self.dlen = np.full(cap, -1.0, np.float32)
        self.dterm = np.empty(max(cap * 8, 64), np.int64)
        self.dtf = np.empty(max(cap * 8, 64), np.float32)

    def append(self, col: TermColumn) -> None:
        m, mz = col.n, int(col.doff[col.n])
        if self.n + m > len(self.dlen):
            cap = max(2 * len(self.dlen), self.n + m)
            doff = np.zeros(cap + 1, np.int64)
            doff[: self.n + 1] = self.doff[: self.n + 1]
            dlen = np.full(cap, -1.0, np.float32)
            dlen[: self.n] = self.dlen[: self.n]
            self.doff, self.dlen = doff, dlen
        if self.nnz + mz > len(self.dterm):
            cap = max(2 * len(self.dterm), self.nnz + mz)
            dterm = np.empty(cap, np.int64)
            dterm[: self.nnz] = self.dterm[: self.nnz]
            dtf = np.empty(cap, np.float32)
            dtf[: self.nnz] = self.dtf[: self.nnz]
            self.dterm, self.dtf = dterm, dtf
        # entries first, then offsets and lengths: a reader's view has n rows
        self.dterm[self.nnz: self.nnz + mz] = col.dterm[:mz]
        self.dtf[self.nnz: self.nnz + mz] = col.dtf[:mz]
        self.doff[self.n + 1: self.n + m + 1] = col.doff[1: m + 1] + self.nnz
        self.dlen[self.n: self.n + m] = col.dlen[:m]
        self.n += m
        self.nnz += mz

    def view(self) -> TermColumn:
        return TermColumn(self.doff, self.dterm, self.dtf, self.dlen, self.n, frozen=False)

    @classmethod
    def of(cls, col: TermColumn) -> TermBuilder:
        return col.builder()


def build_term_column(docs: Mapping[int, tuple[list[int], list[float]]], rowids: np.ndarray,
                      sparse: bool = False) -> TermColumn:
    """A column over ``rowids`` from rowid -> (term ids, weights)."""
    return encode_docs([docs.get(r) for r in rowids.tolist()], sparse)

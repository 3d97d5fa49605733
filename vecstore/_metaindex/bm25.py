"""BM25 and sparse dot-product scoring over a partition's segments at a version.

Corpus statistics are those of the rows visible at the snapshot's version
in the whole partition (not only the rows a filter leaves, as in Lucene):

* ``N``: visible rows whose field holds a str; ``avgdl``: their mean length
  in terms (after analysis);
* ``df(t)``: visible rows containing term ``t``;

combined across the partition's segments (each segment's column caches
its own ``N`` and total length per version).  A row is scored

    sum over distinct query terms t of
        idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)),
    idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))

(Lucene's and tantivy's formula, so the ranking is theirs; ``k1`` = 1.2,
``b`` = 0.75 unless the index records others).  A sparse query scores rows
by the dot product of its weights with their sparse vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .text import TermColumn


@dataclass
class TextHits:
    """The best rows of one partition and what explain() reports."""

    scores: np.ndarray  # float64, best first
    rowids: np.ndarray  # int64
    candidates: int = 0  # rows with a query term, visible (and matching the filter)
    docs: int = 0  # N
    avgdl: float = 0.0
    df: list[int] = field(default_factory=list)


def _visible_all(seg: Any, version: int) -> bool:
    n = seg.n
    return bool(n == 0 or (seg.n_dead == 0 and int(seg.born[n - 1]) <= version))


def _top(scores: np.ndarray, rowids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if scores.size > k:
        part = np.argpartition(-scores, k - 1)[:k]
        scores, rowids = scores[part], rowids[part]
    order = np.lexsort((rowids, -scores))
    return scores[order], rowids[order]


def _accumulate(pos: np.ndarray, contrib: np.ndarray, n: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """(distinct positions, summed contributions): dense over the segment's
    ``n`` positions when there are many postings, else by sorting them."""
    if pos.size == 0:
        return pos, contrib.astype(np.float64)
    if pos.size * 16 >= n:
        dense = np.bincount(pos, weights=contrib, minlength=n)
        uniq = np.flatnonzero(dense)
        return uniq, dense[uniq]
    uniq, inv = np.unique(pos, return_inverse=True)
    return uniq, np.bincount(inv, weights=contrib, minlength=uniq.size)


def search(segs: Sequence[Any], path: tuple[str, ...], qterms: np.ndarray,
           qweights: np.ndarray | None, version: int, masks: Sequence[np.ndarray | None],
           k: int, k1: float = 1.2, b: float = 0.75) -> TextHits:
    """The ``k`` best rows of ``segs`` (one partition) for the distinct term
    ids ``qterms``: BM25 when ``qweights`` is None, else the sparse dot
    product with those weights.  ``masks``: per segment, the rows a filter
    leaves (visibility included), or None."""
    nq = qterms.size
    empty = TextHits(np.empty(0), np.empty(0, np.int64), df=[0] * nq)
    if nq == 0:
        return empty
    found = []
    n_docs, total = 0, 0.0
    df = np.zeros(nq, np.int64)
    cols = []
    for seg in segs:
        col: TermColumn | None = seg.cols.get(path)
        if col is None or seg.n == 0:
            cols.append(None)
            continue
        allvis = _visible_all(seg, version)
        cols.append((col, allvis))
        if qweights is None:
            nd, tl = col.stats(seg.born, seg.died, version, allvis)
            n_docs += nd
            total += tl
    avgdl = total / n_docs if n_docs else 1.0
    for seg, mask, c in zip(segs, masks, cols):
        if c is None:
            continue
        col, allvis = c
        if qweights is None:  # weights: BM25's term part, before idf
            pos, qi, w = col.postings_bm25(qterms, k1, b, avgdl)
        else:
            pos, qi, w = col.postings(qterms)
        if pos.size and not allvis:
            keep = (seg.born[pos] <= version) & (seg.died[pos] > version)
            pos, qi, w = pos[keep], qi[keep], w[keep]
        if qweights is None and pos.size:
            df += np.bincount(qi, minlength=nq)
        if mask is not None and pos.size:
            keep = mask[pos]
            pos, qi, w = pos[keep], qi[keep], w[keep]
        if pos.size:
            found.append((seg, pos, qi, w))
    if not found:
        empty.docs, empty.df = n_docs, df.tolist()
        return empty
    qw = np.log1p((n_docs - df + 0.5) / (df + 0.5)) if qweights is None else qweights
    s_parts, r_parts = [], []
    cand = 0
    for seg, pos, qi, w in found:
        contrib = qw[qi] * w
        upos, sc = _accumulate(pos, contrib, seg.n)
        cand += upos.size
        sc, rows = _top(sc, seg.rowids[upos], k)
        s_parts.append(sc)
        r_parts.append(rows)
    scores, rowids = _top(np.concatenate(s_parts), np.concatenate(r_parts), k)
    return TextHits(scores, rowids, cand, n_docs, avgdl, df.tolist())


def merge(parts: Sequence[TextHits], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` (scores, rowids) of several partitions' hits."""
    if not parts:
        return np.empty(0), np.empty(0, np.int64)
    return _top(np.concatenate([p.scores for p in parts]),
                np.concatenate([p.rowids for p in parts]), k)

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

from .bm25prune import term_slices
from .bm25prune import top_k as pruned_top
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
    qw: np.ndarray | None = None  # per query term: idf (BM25) or the sparse weight


def _visible_all(seg: Any, version: int) -> bool:
    n = seg.n
    return bool(n == 0 or (seg.n_dead == 0 and int(seg.born[n - 1]) <= version))


def _top(scores: np.ndarray, rowids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best, best first; ties by rowid (also at the k-th place)."""
    if scores.size > k:
        kth = np.partition(scores, scores.size - k)[scores.size - k]
        above = np.flatnonzero(scores > kth)
        tied = np.flatnonzero(scores == kth)
        if tied.size > k - above.size:
            tied = tied[np.argsort(rowids[tied], kind="stable")[: k - above.size]]
        part = np.concatenate([above, tied])
        scores, rowids = scores[part], rowids[part]
    order = np.lexsort((rowids, -scores))
    return scores[order], rowids[order]


def _accumulate(pos: np.ndarray, contrib: np.ndarray, n: int, k: int
                ) -> tuple[np.ndarray, np.ndarray, int]:
    """(positions, summed contributions) -- at least the best ``k`` of them
    -- and how many distinct positions there were: dense over the
    segment's ``n`` positions when there are many postings, else by sorting."""
    if pos.size == 0:
        return pos, contrib.astype(np.float64), 0
    if pos.size * 16 >= n:
        dense = np.bincount(pos, weights=contrib, minlength=n)
        hits = int(np.count_nonzero(dense))
        if hits > k:
            kth = np.partition(dense, n - k)[n - k]
            keep = np.flatnonzero(dense >= kth) if kth > 0 else np.flatnonzero(dense)
        else:
            keep = np.flatnonzero(dense)
        return keep, dense[keep], hits
    uniq, inv = np.unique(pos, return_inverse=True)
    return uniq, np.bincount(inv, weights=contrib, minlength=uniq.size), int(uniq.size)


def search(segs: Sequence[Any], path: tuple[str, ...], qterms: np.ndarray,
           qweights: np.ndarray | None, version: int, masks: Sequence[np.ndarray | None],
           k: int, k1: float = 1.2, b: float = 0.75, prune: bool = True) -> TextHits:
    """The ``k`` best rows of ``segs`` (one partition) for the distinct term
    ids ``qterms``: BM25 when ``qweights`` is None, else the sparse dot
    product with those weights.  ``masks``: per segment, the rows a filter
    leaves (visibility included), or None.  ``prune``: sealed segments may
    skip their commonest terms' postings (:mod:`.bm25prune`; exact, but the
    candidate count is then a lower bound)."""
    nq = qterms.size
    empty = TextHits(np.empty(0), np.empty(0, np.int64), df=[0] * nq)
    if nq == 0:
        return empty
    n_docs, total = 0, 0.0
    df = np.zeros(nq, np.int64)
    cols = []
    for seg, mask in zip(segs, masks):
        col: TermColumn | None = seg.cols.get(path)
        if col is None or seg.n == 0:
            continue
        allvis = _visible_all(seg, version)
        cols.append((seg, col, allvis, mask))
        if qweights is None:
            nd, tl = col.stats(seg.born, seg.died, version, allvis)
            n_docs += nd
            total += tl
    avgdl = total / n_docs if n_docs else 1.0
    found = []
    for seg, col, allvis, mask in cols:
        if qweights is None and prune and allvis and col.inverted:
            sl = term_slices(col, qterms)  # document frequencies: the postings' lengths
            for qi, _i, st, en in sl:
                df[qi] += en - st
            found.append((seg, col, mask, sl))
            continue
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
            found.append((seg, col, None, (pos, qi, w)))
    qw = np.log1p((n_docs - df + 0.5) / (df + 0.5)) if qweights is None else qweights
    s_parts, r_parts = [], []
    cand = 0
    for seg, col, mask, post in found:
        if isinstance(post, list):  # a prunable segment
            got = pruned_top(col, post, qw, k, k1, b, avgdl, mask)
            if got is not None:
                s_parts.append(got[0])
                r_parts.append(seg.rowids[got[1]])
                cand += got[1].size
                continue
            if not post:
                continue
            pos, qi, w = col.postings(qterms[[qi for qi, _i, _s, _e in post]],
                                      col.bm25_weights(k1, b, avgdl)[0])
            qi = np.asarray([p[0] for p in post], np.int64)[qi]
            if mask is not None and pos.size:
                keep = mask[pos]
                pos, qi, w = pos[keep], qi[keep], w[keep]
        else:
            pos, qi, w = post
        upos, sc, hits = _accumulate(pos, qw[qi] * w, seg.n, k)
        cand += hits
        sc, rows = _top(sc, seg.rowids[upos], k)
        s_parts.append(sc)
        r_parts.append(rows)
    if not s_parts:
        return TextHits(np.empty(0), np.empty(0, np.int64), 0, n_docs, avgdl, df.tolist(), qw)
    scores, rowids = _top(np.concatenate(s_parts), np.concatenate(r_parts), k)
    return TextHits(scores, rowids, cand, n_docs, avgdl, df.tolist(), qw)


def merge(parts: Sequence[TextHits], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` (scores, rowids) of several partitions' hits."""
    if not parts:
        return np.empty(0), np.empty(0, np.int64)
    return _top(np.concatenate([p.scores for p in parts]),
                np.concatenate([p.rowids for p in parts]), k)


def score_rows(segs: Sequence[Any], path: tuple[str, ...], qterms: np.ndarray, hits: TextHits,
               rowids: np.ndarray, sparse: bool, k1: float = 1.2, b: float = 0.75
               ) -> np.ndarray:
    """The score of each of ``rowids`` (rows of this partition's ``segs``,
    visible) for the query ``search`` answered with ``hits`` -- the same
    statistics, so a row scores here as it would there; 0 without a query
    term.  (Hybrid fusion scores every candidate on both sides.)"""
    out = np.zeros(rowids.size)
    qw = hits.qw
    if qw is None or rowids.size == 0 or qterms.size == 0:
        return out
    order = np.argsort(qterms)
    sq = qterms[order]
    left = np.ones(rowids.size, bool)
    for seg in segs:
        col: TermColumn | None = seg.cols.get(path)
        n = seg.n
        if col is None or n == 0 or not left.any():
            continue
        want = np.flatnonzero(left)
        at = np.minimum(np.searchsorted(seg.rowids[:n], rowids[want]), n - 1)
        hit = seg.rowids[at] == rowids[want]
        idx, p = want[hit], at[hit]
        left[idx] = False
        starts = col.doff[p]
        counts = col.doff[p + 1] - starts
        if not counts.sum():
            continue
        ent = np.repeat(starts - np.cumsum(counts) + counts, counts) + \
            np.arange(int(counts.sum()))  # every entry of those rows
        owner = np.repeat(np.arange(p.size), counts)
        terms = col.dterm[ent]
        j = np.minimum(np.searchsorted(sq, terms), sq.size - 1)
        m = sq[j] == terms
        if not m.any():
            continue
        ent, owner, qi = ent[m], owner[m], order[j[m]]
        w = col.dtf[ent].astype(np.float64)
        if not sparse:
            dl = col.dlen[p[owner]].astype(np.float64)
            w = w * (k1 + 1.0) / (w + k1 * (1.0 - b + b * dl / (hits.avgdl or 1.0)))
        out[idx] += np.bincount(owner, weights=qw[qi] * w, minlength=p.size)
    return out

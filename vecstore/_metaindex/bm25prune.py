"""Exact BM25 top-k of one sealed segment without touching every posting
of its commonest query terms (MaxScore, as search engines prune).

The query's terms are split into *rare* ones and *common* ones (postings on
more than 1/32 of the segment's rows); a query of rare terms only is scored
from their postings directly.  Rows holding a rare term are the
candidates: they get their full score -- the rare terms' postings summed,
plus each common term's contribution looked up by binary search in its
(position-sorted) postings.  A row holding only common terms scores at most
``R``, the sum of their upper bounds (idf x the largest term part of the
term's postings).  If the k-th best candidate beats ``R`` strictly, the
top k is exact; otherwise the caller scores every posting.

Used only where every row of the segment is visible at the snapshot's
version (document frequencies are then the postings' lengths).
"""

from __future__ import annotations

from typing import Any

import numpy as np

COMMON = 32  # a term is common when it is in more than n / COMMON rows


def term_slices(col: Any, qterms: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(query term index, term index, start, end) of each query term the
    segment's inverted copy holds."""
    uterms, toff, _p, _w = col._inverted()
    at = np.searchsorted(uterms, qterms)
    out = []
    for qi, (i, t) in enumerate(zip(at.tolist(), qterms.tolist())):
        if i < uterms.size and uterms[i] == t:
            out.append((qi, i, int(toff[i]), int(toff[i + 1])))
    return out


def top_k(col: Any, slices: list[tuple[int, int, int, int]], idf: np.ndarray, k: int,
          k1: float, b: float, avgdl: float, mask: np.ndarray | None
          ) -> tuple[np.ndarray, np.ndarray] | None:
    """(scores, positions) of the segment's exact top k (with every row
    tied at the k-th place), or None when pruning cannot prove it (the
    caller scores every posting)."""
    n = col.n
    common = [s for s in slices if (s[3] - s[2]) * COMMON > n]
    rare = [s for s in slices if (s[3] - s[2]) * COMMON <= n]
    if not rare:
        return None
    _u, _o, tpos, _w = col._inverted()
    tw, tmax = col.bm25_weights(k1, b, avgdl)
    bound = float(sum(idf[qi] * tmax[i] for qi, i, _s, _e in common))
    pos = np.concatenate([tpos[s:e] for _q, _i, s, e in rare])
    contrib = np.concatenate([idf[qi] * tw[s:e] for qi, _i, s, e in rare])
    cand, inv = np.unique(pos, return_inverse=True)
    sc = np.bincount(inv, weights=contrib, minlength=cand.size)
    if mask is not None:
        keep = mask[cand]
        cand, sc = cand[keep], sc[keep]
    if not common:  # every row with a query term is a candidate: exact as it is
        return sc, cand
    if cand.size < k:
        return None
    for qi, _i, s, e in common:
        plist = tpos[s:e]
        j = np.searchsorted(plist, cand)
        j[j >= plist.size] = 0
        hit = plist[j] == cand
        sc[hit] += idf[qi] * tw[s + j[hit]]
    kth = float(np.partition(sc, cand.size - k)[cand.size - k])
    if kth <= bound:
        return None
    keep = np.flatnonzero(sc >= kth)  # ties at the k-th place all kept: the caller picks
    return sc[keep], cand[keep]

"""Recommendations: content-based (Qdrant's recommend semantics),
collaborative (item-based, from interactions the caller provides) and a
hybrid of both.  Every function reads one snapshot and never returns the
ids it was given as input.

Content-based, ``recommend(source, positive, negative, k, filter, strategy)``;
examples are record ids (read at the snapshot) or raw vectors:

* ``"average_vector"`` (alias ``"average"``): one k-NN query with
  ``avg(pos) + (avg(pos) - avg(neg))`` (``avg(pos)`` without negatives),
  examples prepared as the store compares them (unit length under cosine).
  Scores are the store's (cosine/dot similarity, or Euclidean distance).
* ``"best_score"``: each candidate's similarity to every example; its score
  is the best positive one if that beats the best negative one, else
  ``-(best negative)**2``.  Candidates come from k-NN queries of each
  positive example, fetched deeper until each list holds ``k`` candidates
  that a positive wins (so the top ``k`` are exact when the k-NN search is).
* ``"sum_scores"``: sum of similarities to the positives minus the sum to
  the negatives (for cosine and dot, one k-NN query with ``sum(pos) -
  sum(neg)``).

Similarity for the custom strategies: the dot product of prepared vectors
(cosine, dot) or minus the Euclidean distance (euclidean); higher is better.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .._errors import InvalidArgumentError, InvalidArgumentTypeError
from .._query.snapshot import Snapshot
from .._segments.segment import prepare
from .._types import Distance, Result
from .._validate import check_id
from .source import need, to_snapshot

STRATEGIES = ("average_vector", "best_score", "sum_scores")


def _strategy(name: str) -> str:
    s = {"average": "average_vector"}.get(name, name)
    if s not in STRATEGIES:
        raise InvalidArgumentError(
            f"strategy must be one of {', '.join(STRATEGIES)} (or 'average'), got {name!r}")
    return s


def _examples(snap: Snapshot, items: Iterable[Any], what: str
              ) -> tuple[list[str], list[np.ndarray]]:
    """(ids, prepared vectors) of the examples: ids are read at the snapshot."""
    if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
        raise InvalidArgumentTypeError(f"{what} must be a list of ids or vectors")
    dist = snap._state.distance
    ids: list[str] = []
    vecs: list[np.ndarray] = []
    raw_ids: list[str] = []
    for it in items:
        if isinstance(it, (str, int, np.integer)) and not isinstance(it, bool):
            raw_ids.append(check_id(it))
        else:
            v = np.asarray(it, np.float32)
            if v.ndim != 1 or v.shape[0] != (snap._state.dim or -1) or not np.isfinite(v).all():
                raise InvalidArgumentError(f"{what}: a vector example must be "
                                           f"{snap._state.dim} finite floats")
            vecs.append(prepare(v[None, :], dist)[0])
    for rid, rec in zip(raw_ids, snap.get_many(raw_ids)):
        if rec is None:
            raise InvalidArgumentError(
                f"{what}: no record {rid!r} at version {snap.version} "
                f"(partition {snap.partition_name!r})")
        ids.append(rid)
        vecs.append(prepare(rec.vector[None, :], dist)[0])
    return ids, vecs


def _sim(dist: Distance, cand: np.ndarray, ex: np.ndarray) -> np.ndarray:
    """(candidates x examples) similarities, higher is better."""
    if dist is Distance.EUCLIDEAN:
        d2 = (cand * cand).sum(1)[:, None] - 2 * cand @ ex.T + (ex * ex).sum(1)[None, :]
        return -np.sqrt(np.maximum(d2, 0.0))
    return cand.astype(np.float64) @ ex.T.astype(np.float64)


def custom_scores(dist: Distance, cand: np.ndarray, pos: np.ndarray, neg: np.ndarray,
                  strategy: str) -> tuple[np.ndarray, np.ndarray]:
    """(scores, won-by-a-positive) of prepared candidate rows."""
    sp = _sim(dist, cand, pos) if len(pos) else np.full((len(cand), 0), 0.0)
    sn = _sim(dist, cand, neg) if len(neg) else np.full((len(cand), 0), 0.0)
    if strategy == "sum_scores":
        s = sp.sum(1) - sn.sum(1)
        return s, np.ones(len(cand), bool)
    bp = sp.max(1) if sp.shape[1] else np.full(len(cand), -np.inf)
    bn = sn.max(1) if sn.shape[1] else np.full(len(cand), -np.inf)
    won = bp > bn
    return np.where(won, bp, -(bn * bn)), won


def recommend(source: Any, positive: Sequence[Any] = (), negative: Sequence[Any] = (),
              k: int = 10, filter: Any = None, strategy: str = "average_vector", *,
              ef: int | None = None, include_vectors: bool = False) -> list[Result]:
    """The ``k`` records most like ``positive`` and unlike ``negative``
    (ids or vectors), excluding the example ids; see the module docstring."""
    strategy = _strategy(strategy)
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InvalidArgumentError(f"k must be a positive int, got {k!r}")
    snap = to_snapshot(source)
    pos_ids, pos = _examples(snap, positive, "positive")
    neg_ids, neg = _examples(snap, negative, "negative")
    if not pos:
        raise InvalidArgumentError("recommend needs at least one positive example")
    exclude = set(pos_ids) | set(neg_ids)
    dist = snap._state.distance
    P = np.stack(pos)
    N = np.stack(neg) if neg else np.empty((0, P.shape[1]), np.float32)
    linear = strategy == "average_vector" or (strategy == "sum_scores"
                                               and dist is not Distance.EUCLIDEAN)
    if linear:
        if strategy == "average_vector":
            avg = P.mean(0)
            q = avg + (avg - N.mean(0)) if len(N) else avg
        else:
            q = P.sum(0) - N.sum(0)
        if not np.any(q):
            raise InvalidArgumentError("the examples cancel out: the query vector is zero")
        hits = snap.query(q.astype(np.float32), k + len(exclude), filter, ef,
                          include_vectors or strategy == "sum_scores")
        out = [h for h in hits if h.id not in exclude][:k]
        if strategy == "sum_scores":  # the strategy's own score, not the query's
            vecs = prepare(np.stack([_vec(h) for h in out]), dist) if out else P[:0]
            sc = custom_scores(dist, vecs, P, N, strategy)[0]
            out = [h._replace(score=float(s), vector=h.vector if include_vectors else None)
                   for h, s in zip(out, sc)]
        return out
    return _deepening(snap, P, N, k, filter, ef, strategy, exclude, include_vectors)


def _vec(h: Result) -> np.ndarray:
    assert h.vector is not None  # (queried with include_vectors)
    return h.vector


def _deepening(snap: Snapshot, P: np.ndarray, N: np.ndarray, k: int, filter: Any,
               ef: int | None, strategy: str, exclude: set[str],
               include_vectors: bool) -> list[Result]:
    dist = snap._state.distance
    total = snap.count(filter)
    pool: dict[str, tuple[float, bool, Result]] = {}
    for p in P:
        depth = max(4 * k, 32) + len(exclude)
        while True:
            hits = snap.query(p, min(depth, max(total, 1)), filter,
                              max(ef or 0, min(depth, max(total, 1))), True)
            fresh = [h for h in hits if h.id not in exclude and h.id not in pool]
            if fresh:
                vecs = prepare(np.stack([_vec(h) for h in fresh]), dist)
                sc, won = custom_scores(dist, vecs, P, N, strategy)
                for h, s, w in zip(fresh, sc.tolist(), won.tolist()):
                    pool[h.id] = (s, w, h)
            accepted = sum(1 for h in hits if h.id in pool and pool[h.id][1])
            if accepted >= k or len(hits) < depth or depth >= total:
                break
            depth *= 2
    ranked = sorted(pool.values(), key=lambda t: (-t[0], t[2].id))[:k]
    return [h._replace(score=float(s), vector=h.vector if include_vectors else None)
            for s, _w, h in ranked]


# -- collaborative ----------------------------------------------------------------


def _interactions(interactions: Iterable[Any]) -> tuple[list[str], list[str], np.ndarray]:
    users: list[str] = []
    items: list[str] = []
    weights: list[float] = []
    for row in interactions:
        if len(row) == 2:
            u, i = row
            w = 1.0
        elif len(row) == 3:
            u, i, w = row
        else:
            raise InvalidArgumentError(
                "each interaction must be (user, item) or (user, item, weight)")
        users.append(str(u))
        items.append(check_id(i))
        weights.append(float(w))
    return users, items, np.asarray(weights, np.float64)


def collaborative_scores(interactions: Iterable[Any], user: Any) -> tuple[dict[str, float],
                                                                          set[str]]:
    """Item-based collaborative filtering: ``score(j) = sum over the user's
    items i of weight(user, i) * cosine(i, j)``, cosine between items'
    columns of the user x item matrix (repeated pairs add up).  Returns
    (scores of every other item co-interacted with, the user's items)."""
    sparse = need("scipy.sparse")
    users, items, w = _interactions(interactions)
    if not users:
        return {}, set()
    uidx = {u: n for n, u in enumerate(dict.fromkeys(users))}
    iidx = {i: n for n, i in enumerate(dict.fromkeys(items))}
    names = list(iidx)
    R = sparse.csr_matrix((w, ([uidx[u] for u in users], [iidx[i] for i in items])),
                          shape=(len(uidx), len(iidx)))
    norms = np.sqrt(np.asarray(R.multiply(R).sum(0)).ravel())
    norms[norms == 0] = 1.0
    Rn = R @ sparse.diags(1.0 / norms)
    u = uidx.get(str(user))
    if u is None:
        return {}, set()
    mine = R.getrow(u).toarray().ravel()
    seen = {names[j] for j in np.flatnonzero(mine)}
    s = Rn.T @ (Rn @ mine)
    out = {names[j]: float(s[j]) for j in np.flatnonzero(s) if names[j] not in seen}
    return out, seen


def recommend_collaborative(source: Any, interactions: Iterable[Any], user: Any, k: int = 10,
                            filter: Any = None) -> list[Result]:
    """The ``k`` items (records of the snapshot, matching ``filter``) with the
    highest item-based collaborative score for ``user``, excluding the items
    the user interacted with.  ``interactions``: ``(user, item)`` or ``(user,
    item, weight)`` rows; items are record ids."""
    snap = to_snapshot(source)
    scores, _seen = collaborative_scores(interactions, user)
    ranked = sorted(scores.items(), key=lambda t: (-t[1], t[0]))
    return _present(snap, ranked, k, filter)


def _present(snap: Snapshot, ranked: list[tuple[str, float]], k: int, filter: Any
             ) -> list[Result]:
    """Results for the best ``k`` of ``ranked`` that are records of the
    snapshot matching ``filter`` (read in chunks, in rank order)."""
    from .._filter.core import parse_filter

    flt = parse_filter(filter)
    out: list[Result] = []
    for s in range(0, len(ranked), max(4 * k, 64)):
        chunk = ranked[s:s + max(4 * k, 64)]
        for (rid, sc), rec in zip(chunk, snap.get_many([r for r, _ in chunk])):
            if rec is None or (flt is not None and not flt.matches(rec.metadata, id=rid)):
                continue
            out.append(Result(rid, sc, rec.metadata, None, snap.partition_name))
            if len(out) == k:
                return out
    return out


def recommend_hybrid(source: Any, interactions: Iterable[Any], user: Any, k: int = 10,
                     filter: Any = None, *, alpha: float = 0.5, negative: Sequence[Any] = (),
                     strategy: str = "average_vector", pool: int = 100) -> list[Result]:
    """``alpha * content + (1 - alpha) * collaborative``, each min-max
    normalised over the candidates: the top ``pool`` of each side (content:
    :func:`recommend` with the user's items as positives; collaborative:
    :func:`recommend_collaborative`).  Each candidate's content score is
    computed exactly from its vector; one absent from the collaborative
    scores counts 0 there.  Excludes the user's items and ``negative``."""
    if not 0.0 <= alpha <= 1.0:
        raise InvalidArgumentError("alpha must be in [0, 1]")
    snap = to_snapshot(source)
    cscores, seen = collaborative_scores(interactions, user)
    present = [r for r, rec in zip(sorted(seen), snap.get_many(sorted(seen))) if rec is not None]
    collab = recommend_collaborative(snap, interactions, user, pool, filter)
    if not present:  # cold start in content terms: collaborative only
        return collab[:k]
    content = recommend(snap, present, negative, pool, filter, strategy, include_vectors=True)
    dist = snap._state.distance
    _pids, P = _examples(snap, present, "positive")
    _nids, N = _examples(snap, negative, "negative")
    Pm = np.stack(P)
    Nm = np.stack(N) if N else np.empty((0, Pm.shape[1]), np.float32)
    exclude = seen | set(_nids)
    cand: dict[str, Result] = {h.id: h for h in content if h.id not in exclude}
    extra = [h.id for h in collab if h.id not in cand and h.id not in exclude]
    for rid, rec in zip(extra, snap.get_many(extra)):
        if rec is not None:
            cand[rid] = Result(rid, 0.0, rec.metadata, rec.vector, snap.partition_name)
    if not cand:
        return []
    ids = list(cand)
    vecs = prepare(np.stack([_vec(cand[i]) for i in ids]), dist)
    s = _strategy(strategy)
    if s == "average_vector":
        avg = Pm.mean(0)
        q = avg + (avg - Nm.mean(0)) if len(Nm) else avg
        cs = _sim(dist, vecs, q[None, :])[:, 0]
        if dist is Distance.COSINE:
            cs = cs / max(float(np.linalg.norm(q)), 1e-30)
    else:
        cs = custom_scores(dist, vecs, Pm, Nm, s)[0]
    fs = np.array([cscores.get(i, 0.0) for i in ids])

    def norm(a: np.ndarray) -> np.ndarray:
        lo, hi = float(a.min()), float(a.max())
        return np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo)

    h = alpha * norm(cs) + (1 - alpha) * norm(fs)
    order = sorted(range(len(ids)), key=lambda j: (-h[j], ids[j]))[:k]
    return [Result(ids[j], float(h[j]), cand[ids[j]].metadata, None, snap.partition_name)
            for j in order]

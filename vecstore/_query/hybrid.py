"""Hybrid search: a :class:`HybridQuery` run on a snapshot.

Two sides, each over the partitions asked and filtered by the same filter:

* *vector*: the snapshot's k-NN search (:meth:`Snapshot.query`), asked for
  ``depth`` candidates;
* *lexical*: BM25 over a text index, or the sparse dot product over the
  records' sparse vectors (:mod:`vecstore._metaindex.bm25`), with the
  partition's corpus statistics at the snapshot's version.

Fusion (``alpha`` weighs the vector side):

* ``"weighted"`` (default): each side's scores min-max normalised over its
  candidates (the best -> 1, the worst -> 0; a side that did not return a
  record contributes 0), then ``alpha * v + (1 - alpha) * t``;
* ``"rrf"``: ``alpha / (60 + rank_v) + (1 - alpha) / (60 + rank_t)``.

A query with one side only (``HybridQuery(None, text)``: pure BM25) scores
with that side's own scores.  Results carry ``vector_score`` and
``text_score`` (None where that side did not return the record).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InvalidArgumentError
from .._filter.core import parse_filter
from .._metaindex.bm25 import TextHits, merge, score_rows, search
from .._metaindex.text import SPARSE_PATH, TEXT
from .._metaindex.textstore import read_sparse
from .._segments.segment import exact_distances, merge_hits, prepare, to_scores
from .._storage.records import Reader
from .._types import Distance, HybridQuery, Query, Result
from .._validate import check_partition
from .plan import QueryPlan, choose

RRF_K = 60
DEPTH = 30  # candidates each side contributes to a fusion (at least k): measured


def with_args(q: HybridQuery, k: Any, filter: Any, partitions: Any) -> HybridQuery:
    changes: dict[str, Any] = {}
    if k is not None:
        changes["k"] = k
    if filter is not None:
        changes["filter"] = filter
    if partitions is not None:
        changes["partitions"] = partitions
    return q._replace(**changes) if changes else q


def _text_index(snap: Any, q: HybridQuery) -> Any:
    """The index the lexical side searches (an IndexDef)."""
    indexes = snap._state.indexes
    if q.sparse is not None:
        return indexes.get(SPARSE_PATH)
    texts = [ix for ix in indexes.values() if ix.kind == TEXT]
    name = q.text_field or snap._engine.config.text_field
    if name is not None:
        for ix in texts:
            if ix.field == name:
                return ix
        raise InvalidArgumentError(
            f"no text index on {name!r}: create_index({name!r}, 'text') makes one")
    if len(texts) == 1:
        return texts[0]
    if not texts:
        raise InvalidArgumentError("this store has no text index: open it with "
                                   "Config(text_field=...) or create_index(field, 'text')")
    raise InvalidArgumentError(f"several text indexes ({', '.join(ix.field for ix in texts)}):"
                               f" name one with text_field=")


def _query_terms(ix: Any, q: HybridQuery) -> tuple[np.ndarray, np.ndarray | None]:
    """(distinct term ids, sparse weights or None)."""
    if q.sparse is not None:
        items = sorted(_sparse_items(q.sparse))
        return (np.asarray([i for i, _w in items], np.int64),
                np.asarray([w for _i, w in items], np.float64))
    assert q.text is not None
    ids = [ix.fd.get(t) for t in dict.fromkeys(ix.text.analyzer.terms(q.text))]
    return np.asarray([i for i in ids if i >= 0], np.int64), None


def _sparse_items(sparse: Any) -> list[tuple[int, float]]:
    from .._validate import check_sparse

    idx, w = check_sparse(sparse)
    return list(zip(idx.tolist(), w.tolist()))


def _names(snap: Any, q: HybridQuery) -> list[str]:
    if q.partitions is None:
        return [snap._partition]
    return [check_partition(p) for p in dict.fromkeys(q.partitions)]


@dataclass
class Lexical:
    """The lexical side's result and what scoring more rows the same way needs."""

    scores: np.ndarray
    rowids: np.ndarray
    parts: list[tuple[Any, TextHits]]  # (PartState, its hits)
    kind: str  # "bm25" or "sparse"
    ix: Any = None
    qterms: np.ndarray | None = None

    def score(self, rowids: list[int], pids: dict[int, int]) -> list[float]:
        """These rows' scores as this side scores (0 without a query term)."""
        out = dict.fromkeys(rowids, 0.0)
        spec = self.ix.text if self.ix is not None else None
        k1, b = (spec.k1, spec.b) if spec is not None else (1.2, 0.75)
        for ps, hits in self.parts:
            mine = np.asarray([r for r in rowids if pids.get(r) == ps.pid], np.int64)
            if mine.size and self.qterms is not None:
                sc = score_rows(ps.segments(), self.ix.path, self.qterms, hits, mine,
                                self.kind == "sparse", k1, b)
                out.update(zip(mine.tolist(), sc.tolist()))
        return [out[r] for r in rowids]


def lexical(snap: Any, q: HybridQuery, depth: int, reader: Reader) -> Lexical:
    """The lexical side's best ``depth`` rows, per-partition hits (for
    explain and for scoring other rows)."""
    ix = _text_index(snap, q)
    kind = "sparse" if q.sparse is not None else "bm25"
    if ix is None:  # no record has a sparse vector yet
        return Lexical(np.empty(0), np.empty(0, np.int64), [], kind)
    qterms, qweights = _query_terms(ix, q)
    flt = parse_filter(q.filter)
    version = snap._version
    spec = ix.text
    parts = []
    for name in _names(snap, q):
        ps = snap._state.parts.get(name)
        if ps is None:
            continue
        segs = ps.segments()
        masks = [None] * len(segs) if flt is None else \
            [snap._mask(seg, flt, reader) for seg in segs]
        parts.append((ps, search(segs, ix.path, qterms, qweights, version, masks, depth,
                                 spec.k1 if spec else 1.2, spec.b if spec else 0.75)))
    scores, rowids = merge([h for _ps, h in parts], depth)
    return Lexical(scores, rowids, parts, kind, ix, qterms)


@dataclass
class Vectors:
    scores: np.ndarray  # higher is better (a Euclidean distance negated)
    rowids: np.ndarray
    pids: dict[int, int]  # rowid -> pid of every candidate
    query: np.ndarray | None = None  # as searched (unit length under cosine)

    def score(self, snap: Any, reader: Reader, rowids: list[int], pids: dict[int, int]
              ) -> list[float]:
        """Exact scores of these rows (as the search scores them)."""
        state = snap._state
        dist = state.distance
        out: dict[int, float] = {}
        by_pid: dict[int, list[int]] = {}
        for r in rowids:
            by_pid.setdefault(pids[r], []).append(r)
        parts = {ps.pid: ps for ps in state.parts.values()}
        for pid, rows in by_pid.items():
            want = np.asarray(rows, np.int64)
            got = _in_memory(parts[pid], want, self.query, dist) if pid in parts else {}
            rest = want[[r not in got for r in rows]] if got else want
            if rest.size:
                mat = prepare(reader.vectors(pid, rest, state.dim), dist)
                got.update(zip(rest.tolist(), exact_distances(mat, self.query, dist).tolist()))
            d = np.asarray([got[r] for r in rows], np.float64)
            sc = to_scores(d, dist)
            out.update(zip(rows, (-sc if dist is Distance.EUCLIDEAN else sc).tolist()))
        return [out[r] for r in rowids]


def _in_memory(ps: Any, rowids: np.ndarray, q: np.ndarray, dist: Distance) -> dict[int, float]:
    """Distances of the rows a segment holds in RAM: the growing segment's
    vectors, a sealed index that scans its own exact rows (``scan``)."""
    out: dict[int, float] = {}
    for seg in ps.segments():
        n = seg.n
        if n == 0:
            continue
        at = np.minimum(np.searchsorted(seg.rowids[:n], rowids), n - 1)
        hit = seg.rowids[at] == rowids
        if not hit.any():
            continue
        pos = at[hit]
        index = getattr(seg, "index", None)
        if index is None:  # growing: prepared vectors in RAM
            d = exact_distances(seg.vecs[pos], q, dist)
        elif getattr(index, "scan", None) is not None and getattr(index, "exact", True):
            d = index.scan(q, pos)
        else:
            continue
        out.update(zip(rowids[hit].tolist(), np.asarray(d, np.float64).tolist()))
    return out


def vector_side(snap: Any, q: HybridQuery, depth: int, prep: Any, reader: Reader) -> Vectors:
    """The vector side's best ``depth`` rows, searched as
    :meth:`Snapshot.query` searches (``prep``: its query-vector check)."""
    t0 = time.perf_counter()
    state = snap._state
    if state.dim is None:
        return Vectors(np.empty(0), np.empty(0, np.int64), {})
    vec = prep(q.vector, state.dim, state.distance)
    flt = parse_filter(q.filter)
    ef = max(snap._engine.config.ef_search, depth)
    hits = []
    pids: dict[int, int] = {}
    tally: list[Any] = [0, 0]
    for name in _names(snap, q):
        ps = state.parts.get(name)
        if ps is not None:
            h = snap._search_part(ps, vec, depth, ef, flt, reader, tally)
            pids.update(dict.fromkeys(h[1].tolist(), ps.pid))
            hits.append(h)
    d, rowids = merge_hits(hits, depth)
    scores = to_scores(d.astype(np.float64), state.distance)
    if state.distance is Distance.EUCLIDEAN:
        scores = -scores
    snap._engine.metrics.query(
        choose(tally[0] if flt is not None else tally[1], tally[1], flt is not None,
               tally[2] if len(tally) > 2 else None, depth, ef), time.perf_counter() - t0)
    return Vectors(scores, rowids, pids, vec)


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return np.ones_like(x) if hi <= lo else (x - lo) / (hi - lo)


def _dbsf(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return np.zeros_like(x) if sd <= 0 else (x - float(x.mean())) / (3.0 * sd)


def _rranks(x: np.ndarray) -> np.ndarray:
    """1 / (60 + rank), rank from 1; tied scores share the better rank."""
    ranks = np.searchsorted(np.sort(-x), -x, side="left")
    return 1.0 / (RRF_K + 1.0 + ranks)


NORMS = {"weighted": _minmax, "dbsf": _dbsf, "rrf": _rranks}


def fuse(fusion: str, alpha: float, v: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Fused scores of candidates scored on both sides (``v``, ``t``)."""
    norm = NORMS[fusion]
    return alpha * norm(v) + (1.0 - alpha) * norm(t)


def run(snap: Any, q: HybridQuery, prep: Any) -> list[Result]:
    """The ``q.k`` best records of ``snap`` for ``q`` (see the module doc);
    ``prep``: the snapshot's query-vector check."""
    k = q.k
    has_vec = q.vector is not None
    has_lex = q.text is not None or q.sparse is not None
    depth = max(k, DEPTH) if has_vec and has_lex else k
    sign = -1.0 if snap._state.distance is Distance.EUCLIDEAN else 1.0
    with snap._reader() as txn:
        reader = Reader(snap._engine.storage, txn, zero_copy=True)
        vec = vector_side(snap, q, depth, prep, reader) if has_vec else None
        lex = None
        if has_lex:
            t1 = time.perf_counter()
            lex = lexical(snap, q, depth, reader)
            snap._engine.metrics.query(lex.kind, time.perf_counter() - t1)
        if vec is not None and lex is not None:
            pids = dict(vec.pids)
            for ps, h in lex.parts:
                pids.update(dict.fromkeys(h.rowids.tolist(), ps.pid))
            vmap = dict(zip(vec.rowids.tolist(), vec.scores.tolist()))
            tmap = dict(zip(lex.rowids.tolist(), lex.scores.tolist()))
            union = list(dict.fromkeys([*vmap, *tmap]))
            need_v = [r for r in union if r not in vmap]
            need_t = [r for r in union if r not in tmap]
            if need_v:
                vmap.update(zip(need_v, vec.score(snap, reader, need_v, pids)))
            if need_t:
                tmap.update(zip(need_t, lex.score(need_t, pids)))
            vs = np.asarray([vmap[r] for r in union])
            ts = np.asarray([tmap[r] for r in union])
            fused = fuse(q.fusion, q.alpha, vs, ts)
            top = np.lexsort((np.asarray(union), -fused))[:k].tolist()
            rowids = [union[i] for i in top]
            scores = [float(fused[i]) for i in top]
            vsc: list[float | None] = [sign * float(vs[i]) for i in top]
            tsc: list[float | None] = [float(ts[i]) for i in top]
        elif vec is not None:
            rowids = vec.rowids[:k].tolist()
            scores = (sign * vec.scores[:k]).tolist()
            vsc, tsc = list(scores), [None] * len(rowids)
        else:
            assert lex is not None
            rowids, scores = lex.rowids[:k].tolist(), lex.scores[:k].tolist()
            vsc, tsc = [None] * len(rowids), list(scores)
        rows = reader.rows(rowids)
    pid_names = {ps.pid: ps.name for ps in snap._state.parts.values()}
    return [Result(rid, f, meta, None, pid_names.get(pid, "?"), v, t)
            for f, v, t, (pid, rid, meta) in zip(scores, vsc, tsc, rows)]


def has_sparse(snap: Any) -> bool:
    """Has any record of the store ever had a sparse vector?"""
    return SPARSE_PATH in snap._state.indexes


def sparse_vectors(snap: Any, ids: list[str]) -> list[dict[int, float] | None]:
    """The sparse vectors of records ``ids`` of the snapshot's partition at
    its version (None where a record has none), in one read transaction."""
    ps = snap._state.parts.get(snap._partition)
    if ps is None:
        return [None] * len(ids)
    out: list[dict[int, float] | None] = []
    with snap._reader() as txn:
        reader = Reader(snap._engine.storage, txn)
        for rid in ids:
            hit = reader.find(ps.pid, rid, snap._version)
            sv = None if hit is None else read_sparse(snap._engine.storage, txn, hit[1])
            out.append(None if sv is None else dict(zip(sv[0].tolist(), sv[1].tolist())))
    return out


def explain(snap: Any, q: HybridQuery) -> QueryPlan:
    """Both sides' strategies and candidate counts."""
    hints = []
    sides: dict[str, Any] = {}
    names = _names(snap, q)
    total = 0
    if q.vector is not None:
        vp = snap.explain(Query(q.vector, max(q.k, DEPTH), q.filter, partitions=names))
        sides["vector"] = {"strategy": vp.strategy, "estimated_matches": vp.estimated_matches}
        hints.append(f"vector side: {vp.strategy}, ~{vp.estimated_matches} matching rows")
        hints.extend(vp.hints)
        total = vp.total_rows
    cands = 0
    if q.text is not None or q.sparse is not None:
        with snap._reader() as txn:
            reader = Reader(snap._engine.storage, txn)
            lex = lexical(snap, q, max(q.k, DEPTH), reader)
        parts, kind = [h for _ps, h in lex.parts], lex.kind
        cands = sum(p.candidates for p in parts)
        docs = sum(p.docs for p in parts)
        info: dict[str, Any] = {"strategy": kind, "candidates": cands}
        if kind == "bm25":
            ix = _text_index(snap, q)
            info.update(field=ix.field, docs=docs, df=[p.df for p in parts])
            hints.append(f"text side: bm25 on {ix.field!r}: {cands} visible rows hold a "
                         f"query term, of {docs} with text")
        else:
            hints.append(f"sparse side: dot product, {cands} rows share an index with the query")
        sides["text"] = info
    strategy = "+".join(s["strategy"] for s in sides.values())
    if len(sides) == 2:
        strategy = f"hybrid({strategy}, {q.fusion})"
    return QueryPlan(strategy, cands, 0.0, hints, total, [], [])

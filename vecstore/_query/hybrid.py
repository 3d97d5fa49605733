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
from typing import Any

import numpy as np

from .._errors import InvalidArgumentError
from .._filter.core import parse_filter
from .._metaindex.bm25 import TextHits, merge, search
from .._metaindex.text import SPARSE, SPARSE_PATH, TEXT
from .._storage.records import Reader
from .._types import Distance, HybridQuery, Query, Result
from .._validate import check_partition
from .plan import QueryPlan

RRF_K = 60
DEPTH = 50  # candidates each side contributes to a fusion (at least k)


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


def lexical(snap: Any, q: HybridQuery, depth: int, reader: Reader
            ) -> tuple[np.ndarray, np.ndarray, list[TextHits], str]:
    """The lexical side's best ``depth`` (scores, rowids), per-partition
    hits (for explain) and kind ("bm25" or "sparse")."""
    ix = _text_index(snap, q)
    kind = "sparse" if q.sparse is not None else "bm25"
    if ix is None:  # no record has a sparse vector yet
        return np.empty(0), np.empty(0, np.int64), [], kind
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
        parts.append(search(segs, ix.path, qterms, qweights, version, masks, depth,
                            spec.k1 if spec else 1.2, spec.b if spec else 0.75))
    scores, rowids = merge(parts, depth)
    return scores, rowids, parts, kind


def _minmax(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    return np.ones_like(x) if hi <= lo else (x - lo) / (hi - lo)


def run(snap: Any, q: HybridQuery) -> list[Result]:
    """The ``q.k`` best records of ``snap`` for ``q`` (see the module doc)."""
    t0 = time.perf_counter()
    k = q.k
    has_vec = q.vector is not None
    has_lex = q.text is not None or q.sparse is not None
    depth = max(k, DEPTH) if has_vec and has_lex else k
    vres: list[Result] = []
    if has_vec:
        vres = snap.query(Query(q.vector, depth, q.filter, partitions=_names(snap, q)))
    with snap._reader() as txn:
        reader = Reader(snap._engine.storage, txn, zero_copy=True)
        tscores = np.empty(0)
        trows = np.empty(0, np.int64)
        kind = "bm25"
        if has_lex:
            tscores, trows, _parts, kind = lexical(snap, q, depth, reader)
            snap._engine.metrics.query(kind, time.perf_counter() - t0)
        pid_names = {ps.pid: ps.name for ps in snap._state.parts.values()}
        rows = reader.rows(trows.tolist())
        text = {(pid_names.get(pid, "?"), rid): (float(s), meta)
                for s, (pid, rid, meta) in zip(tscores.tolist(), rows)}
    if not has_vec:
        return [Result(rid, s, meta, None, part, None, s)
                for (part, rid), (s, meta) in list(text.items())[:k]]
    vec = {(r.partition, r.id): r for r in vres}
    if not has_lex:
        return [r._replace(vector_score=r.score) for r in vres[:k]]
    keys = list(dict.fromkeys([*vec, *text]))
    a = q.alpha
    if q.fusion == "rrf":
        vrank = {key: i for i, key in enumerate(vec)}
        trank = {key: i for i, key in enumerate(text)}
        fused = [(a / (RRF_K + 1 + vrank[key]) if key in vrank else 0.0) +
                 ((1 - a) / (RRF_K + 1 + trank[key]) if key in trank else 0.0) for key in keys]
    else:
        vs = np.asarray([r.score for r in vec.values()], np.float64)
        if snap._state.distance is Distance.EUCLIDEAN:
            vs = -vs  # lower is better
        vn = dict(zip(vec, _minmax(vs).tolist()))
        tn = dict(zip(text, _minmax(np.asarray([s for s, _m in text.values()])).tolist()))
        fused = [a * vn.get(key, 0.0) + (1 - a) * tn.get(key, 0.0) for key in keys]
    order = sorted(range(len(keys)), key=lambda i: -fused[i])[:k]
    out = []
    for i in order:
        key = keys[i]
        r = vec.get(key)
        t = text.get(key)
        meta = r.metadata if r is not None else t[1]  # type: ignore[index]
        out.append(Result(key[1], fused[i], meta, None, key[0],
                          None if r is None else r.score, None if t is None else t[0]))
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
            _s, _r, parts, kind = lexical(snap, q, max(q.k, DEPTH), reader)
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

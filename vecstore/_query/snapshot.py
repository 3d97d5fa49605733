"""Snapshots: immutable read views at one version.

A snapshot holds a published :class:`State` and a version; reading from it
never waits for the writer.  Row contents (ids, metadata, vectors) are
immutable per rowid in LMDB, so any read transaction serves them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .._engine.engine import Engine
from .._engine.state import PartState, State
from .._errors import InvalidArgumentError, InvalidArgumentTypeError, InvalidVectorError
from .._filter.core import Filter, parse_filter
from .._metaindex.masks import id_masks, prefilter, row_matches
from .._segments.costs import thresholds
from .._segments.matching import Segment, segment_mask
from .._segments.segment import EXACT_BELOW, Hits, merge_hits, prepare, to_scores, visible
from .._storage.records import Reader
from .._types import Distance, HybridQuery, Query, Record, Result
from .._validate import as_vector, check_id, check_partition
from . import hybrid
from .plan import QueryPlan, choose, cost_ms

DEFAULT = "default"
SAMPLE = 300  # rows sampled to estimate an unindexed filter's selectivity
QueryLike = Query | HybridQuery | Sequence[float] | np.ndarray


def query_vector(raw: Any, dim: int, distance: Distance) -> np.ndarray:
    """Validate a query vector; unit length under cosine."""
    if isinstance(raw, np.ndarray) and raw.dtype == np.float32 and raw.shape == (dim,):
        vec = raw
    else:
        vec = as_vector(raw, dim)
    qq = float(vec @ vec)
    if not math.isfinite(qq):
        if not np.isfinite(vec).all():
            raise InvalidVectorError("query vector contains NaN or infinity")
        vec = vec.astype(np.float64)
        qq = float(vec @ vec)
    if distance is Distance.COSINE:
        if qq == 0.0:
            raise InvalidVectorError("zero query vector has no direction under cosine")
        return (vec / math.sqrt(qq)).astype(np.float32)
    return vec.astype(np.float32, copy=False)


def make_query(q: Any, k: int | None, filter: Any, ef: int | None,
               include_vectors: bool | None, partitions: Sequence[str] | None) -> Query:
    """Accept ``query(Query(...))`` or ``query(vector, k=..., filter=...)``."""
    if isinstance(q, HybridQuery):  # (its own fields; ef/include_vectors do not apply)
        return hybrid.with_args(q, k, filter, partitions)  # type: ignore[return-value]
    if isinstance(q, Query):
        changes: dict[str, Any] = {}
        if k is not None:
            changes["k"] = k
        if filter is not None:
            changes["filter"] = filter
        if ef is not None:
            changes["ef"] = ef
        if include_vectors is not None:
            changes["include_vectors"] = include_vectors
        if partitions is not None:
            changes["partitions"] = partitions
        return q._replace(**changes) if changes else q
    return Query(q, 10 if k is None else k, filter, ef, bool(include_vectors), partitions)


class Snapshot:
    """The store as of one version, scoped to one partition (``"default"``).

    ``query``, ``get``, ``count``, ``scan`` and ``len`` read that version
    only, however many writes follow.
    """

    def __init__(self, engine: Engine, state: State, version: int | None = None,
                 partition: str = DEFAULT) -> None:
        self._engine = engine
        self._state = state
        self._version = state.version if version is None else version
        self._partition = partition
        self._parent: Snapshot | None = None

    @property
    def version(self) -> int:
        return self._version

    @property
    def partition_name(self) -> str:
        return self._partition

    def partition(self, name: str) -> Snapshot:
        """The same version, scoped to partition ``name``."""
        view = Snapshot(self._engine, self._state, self._version, check_partition(name))
        view._parent = self  # keeps this snapshot (and its pin) alive
        return view

    def __repr__(self) -> str:
        return f"<Snapshot version={self._version} partition={self._partition!r}>"

    # -- helpers -------------------------------------------------------------

    def _part(self, name: str | None = None) -> PartState | None:
        return self._state.parts.get(name or self._partition)

    def _reader(self) -> Any:
        return self._engine.storage.read()

    # -- point reads -----------------------------------------------------------

    def get(self, id: Any) -> Record | None:
        """The record with ``id`` at this version, or None."""
        rid = check_id(id)
        ps = self._part()
        if ps is None:
            return None
        with self._reader() as txn:
            r = Reader(self._engine.storage, txn, zero_copy=True)
            hit = r.find(ps.pid, rid, self._version)
            if hit is None:
                return None
            born, rowid = hit
            _pid, _id, meta = r.row(rowid)
            return Record(rid, r.vector(rowid, ps.pid), meta, born, self._partition)

    def get_many(self, ids: Iterable[Any]) -> list[Record | None]:
        """The records with ``ids`` at this version, in the order asked
        (``None`` for an id with no live record), read in one transaction."""
        if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
            raise InvalidArgumentTypeError(
                f"ids must be a list of ids, got {type(ids).__name__}")
        rids = [check_id(i) for i in ids]
        ps = self._part()
        if ps is None or not rids:
            return [None] * len(rids)
        found: list[tuple[int, str, int, int]] = []  # (position, id, born, rowid)
        with self._reader() as txn:
            r = Reader(self._engine.storage, txn, zero_copy=True)
            for pos, rid in enumerate(rids):
                hit = r.find(ps.pid, rid, self._version)
                if hit is not None:
                    found.append((pos, rid, hit[0], hit[1]))
            rowids = [f[3] for f in found]
            rows = r.rows(rowids)
            vecs = r.vectors(ps.pid, np.asarray(rowids, np.int64), self._state.dim or 0) \
                if found else []
            out: list[Record | None] = [None] * len(rids)
            for (pos, rid, born, _rowid), (_p, _i, meta), vec in zip(found, rows, vecs):
                out[pos] = Record(rid, np.array(vec, np.float32), meta, born, self._partition)
        return out

    def __contains__(self, id: Any) -> bool:
        return self.get(id) is not None

    # -- counting and scanning ---------------------------------------------------

    def count(self, filter: str | Mapping[str, Any] | Filter | None = None) -> int:
        """How many records live at this version (matching ``filter``)."""
        flt = parse_filter(filter)
        ps = self._part()
        if ps is None:
            return 0
        if flt is None:
            return ps.count_visible(self._version)
        return self._count_matching(ps, flt)

    def __len__(self) -> int:
        return self.count()

    def scan(self, filter: str | Mapping[str, Any] | Filter | None = None,
             batch_size: int = 1000) -> Iterator[Record]:
        """Every record live at this version, ordered by id.

        Reads in batches of ``batch_size`` (one short read transaction each),
        so a long scan never holds the store's pages pinned.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise InvalidArgumentTypeError(f"batch_size must be an int, got {batch_size!r}")
        if batch_size <= 0:
            raise InvalidArgumentError("batch_size must be positive")
        flt = parse_filter(filter)
        ps = self._part()
        if ps is None:
            return
        after: str | None = None
        while True:
            hits: list[tuple[str, int, int, dict[str, Any]]] = []
            with self._reader() as txn:
                r = Reader(self._engine.storage, txn, zero_copy=True)
                for rid, born, rowid in r.live_ids(ps.pid, self._version, after):
                    after = rid
                    _p, _i, meta = r.row(rowid)
                    if flt is None or flt.matches(meta, id=rid):
                        hits.append((rid, born, rowid, meta))
                    if len(hits) >= batch_size:
                        break
                else:
                    after = None
                dim = self._state.dim or 0
                vecs = r.vectors(ps.pid, np.fromiter((h[2] for h in hits), np.int64, len(hits)),
                                 dim) if hits else []
            yield from (Record(rid, vec, meta, born, self._partition)
                        for (rid, born, _r, meta), vec in zip(hits, vecs))
            if after is None:
                return

    def vectors(self, filter: str | Mapping[str, Any] | Filter | None = None,
                batch_size: int = 65536) -> tuple[list[str], np.ndarray]:
        """``(ids, matrix)``: every record live at this version (matching
        ``filter``), ordered by id as :meth:`scan` orders them, with its
        original float32 vector in the same row of ``matrix``.

        The bulk read for analytics: visible rows come from the segments'
        columns, then ids and vectors are read ``batch_size`` rows at a time
        in rowid (= block) order, one short read transaction per batch."""
        flt = parse_filter(filter)
        ps = self._part()
        dim = self._state.dim or 0
        if ps is None or not dim:
            return [], np.empty((0, dim), np.float32)
        parts = []
        with self._reader() as txn:
            reader = Reader(self._engine.storage, txn)
            for seg in ps.segments():
                n = seg.n
                keep = visible(seg.born[:n], seg.died[:n], self._version) if flt is None \
                    else self._mask(seg, flt, reader)
                parts.append(np.asarray(seg.rowids[:n])[keep])
        rowids = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)
        ids: list[str] = []
        mat = np.empty((rowids.size, dim), np.float32)
        for s in range(0, rowids.size, max(1, batch_size)):
            chunk = rowids[s:s + batch_size]
            with self._reader() as txn:
                r = Reader(self._engine.storage, txn, zero_copy=True)
                ids.extend(row[1] for row in r.rows(chunk.tolist()))
                mat[s:s + chunk.size] = r.vectors(ps.pid, chunk, dim)
        order = sorted(range(len(ids)), key=ids.__getitem__)
        return [ids[i] for i in order], mat[np.asarray(order, np.int64)]

    # -- k-NN -------------------------------------------------------------------------

    def query(self, query: QueryLike, k: int | None = None,
              filter: str | Mapping[str, Any] | Filter | None = None, ef: int | None = None,
              include_vectors: bool | None = None,
              partitions: Sequence[str] | None = None) -> list[Result]:
        """The ``k`` nearest records live at this version (a :class:`Query`,
        or a vector and keywords)."""
        if isinstance(query, HybridQuery):  # dense + BM25/sparse, fused: _query/hybrid.py
            return hybrid.run(self, hybrid.with_args(query, k, filter, partitions), query_vector)
        t0 = time.perf_counter()
        if isinstance(query, Query) or (k is not None and not isinstance(k, int)) or \
                ef is not None or partitions is not None:
            q = make_query(query, k, filter, ef, include_vectors, partitions)
            raw, k, filter, ef = q.vector, q.k, q.filter, q.ef
            include_vectors, partitions = q.include_vectors, q.partitions
        else:  # the common shorthand: skip building a Query
            raw = query
            k = 10 if k is None else k
            if isinstance(k, bool) or k <= 0:
                make_query(query, k, None, None, None, None)  # raises the usual error
        flt = parse_filter(filter)
        state = self._state
        if state.dim is None:
            as_vector(raw, None)
            self._engine.metrics.query("exact_scan", time.perf_counter() - t0)
            return []
        vec = query_vector(raw, state.dim, state.distance)
        names = [self._partition] if partitions is None else \
            [check_partition(p) for p in dict.fromkeys(partitions)]
        ef_ = max(ef or self._engine.config.ef_search, k)
        with self._reader() as txn:
            reader = Reader(self._engine.storage, txn, zero_copy=True)
            hits: list[Hits] = []
            tally: list[Any] = [0, 0]  # rows matching, rows visible (+ an index): for explain()
            for name in names:
                ps = state.parts.get(name)
                if ps is not None:
                    hits.append(self._search_part(ps, vec, k, ef_, flt, reader, tally))
            d, rowids = merge_hits(hits, k)
            scores = to_scores(d.astype(np.float64), state.distance).tolist()
            rows = reader.rows(rowids.tolist())
            if len(names) == 1:
                out = [Result(rid, sc, meta, None, names[0])
                       for sc, (_p, rid, meta) in zip(scores, rows)]
            else:
                pid_names = {ps.pid: ps.name for ps in state.parts.values()}
                out = [Result(rid, sc, meta, None, pid_names.get(pid, "?"))
                       for sc, (pid, rid, meta) in zip(scores, rows)]
            if include_vectors:
                out = [r._replace(vector=reader.vector(rowid, pid))
                       for r, rowid, (pid, _i, _m) in zip(out, rowids.tolist(), rows)]
        strategy = choose(tally[0] if flt is not None else tally[1], tally[1], flt is not None,
                          tally[2] if len(tally) > 2 else None, k, ef_)
        self._engine.metrics.query(strategy, time.perf_counter() - t0)
        return out

    def _search_part(self, ps: PartState, vec: np.ndarray, k: int, ef: int,
                     flt: Filter | None, reader: Reader, tally: list[Any]) -> Hits:
        """Best ``k`` of one partition; adds its matching and visible row
        counts to ``tally`` (for the strategy the metrics count)."""
        v = self._version
        state = self._state
        dist = state.distance
        dim = state.dim
        assert dim is not None

        def fetch(rowids: np.ndarray) -> np.ndarray:
            return prepare(reader.vectors(ps.pid, rowids, dim), dist)

        sealed_rows = sum(s.count_visible(v) for s in ps.sealed)
        if ps.sealed and len(tally) < 3:  # the index the planner asks for costs
            tally.append(max(ps.sealed, key=lambda s: s.n).index)
        exact = sealed_rows < EXACT_BELOW
        tally[1] += sealed_rows
        out: list[Hits] = []
        for seg in ps.sealed:
            mask = None if flt is None else self._mask(seg, flt, reader)
            if mask is not None:
                tally[0] += int(np.count_nonzero(mask))
            out.append(seg.search(vec, k, ef, v, dist, fetch, mask, force_exact=exact))
        if ps.growing is not None:
            g = ps.growing
            mask = None if flt is None else self._mask(g, flt, reader)
            if mask is not None:
                tally[0] += int(np.count_nonzero(mask))
            tally[1] += g.count_visible(v)
            out.append(g.search(vec, k, ef, v, dist, mask))
        return merge_hits(out, k)

    def _mask(self, seg: Segment, flt: Filter, reader: Reader) -> np.ndarray:
        """Rows of ``seg`` visible at this version whose metadata matches."""
        return segment_mask(seg, flt, self._version, self._state.indexes, reader)

    def _count_matching(self, ps: PartState, flt: Filter) -> int:
        with self._reader() as txn:
            reader = Reader(self._engine.storage, txn)
            return sum(int(self._mask(seg, flt, reader).sum()) for seg in ps.segments())

    # -- planning ---------------------------------------------------------------------

    def explain(self, query: QueryLike, k: int | None = None,
                filter: str | Mapping[str, Any] | Filter | None = None,
                partitions: Sequence[str] | None = None) -> QueryPlan:
        """How ``query`` would run: strategy, estimated matches and cost, and
        hints (e.g. which index would make it cheaper)."""
        if isinstance(query, HybridQuery):
            return hybrid.explain(self, hybrid.with_args(query, k, filter, partitions))
        q = make_query(query, k, filter, None, None, partitions)
        flt = parse_filter(q.filter)
        names = [self._partition] if q.partitions is None else list(q.partitions)
        v = self._version
        total = matches = unindexed_rows = 0
        biggest = None
        indexed = set(self._state.indexes)
        fields = sorted(flt.fields()) if flt is not None else []
        missing = [".".join(f) for f in fields if f not in indexed]
        with self._reader() as txn:
            reader = Reader(self._engine.storage, txn)
            for name in names:
                ps = self._state.parts.get(name)
                if ps is None:
                    continue
                if ps.sealed and biggest is None:
                    biggest = max(ps.sealed, key=lambda s: s.n).index
                for seg in ps.segments():
                    n_vis = seg.count_visible(v)
                    total += n_vis
                    if flt is None:
                        matches += n_vis
                        continue
                    m, scanned = self._estimate(seg, flt, reader)
                    matches += m
                    unindexed_rows += scanned
        k_, ef_ = q.k, max(self._engine.config.ef_search, q.k)
        strategy = choose(matches, total, flt is not None, biggest, k_, ef_)
        dim = self._state.dim or 0
        hints = []
        share = matches / total if total else 0.0
        for f in missing:
            hints.append(
                f"no index on {f!r}: create_index({f!r}, 'btree') would cut this query from a "
                f"full scan of the metadata to ~{share:.1%} of rows")
        if flt is not None and not missing:
            hints.append("every filtered field is indexed: matches are counted exactly")
        if flt is not None:
            hints.append(thresholds(biggest, total, k_, ef_))
        return QueryPlan(strategy, matches, round(cost_ms(strategy, matches, total, dim,
                                                          unindexed_rows, biggest, k_, ef_), 3),
                         hints, total, [".".join(f) for f in fields if f in indexed], missing)

    def _estimate(self, seg: Segment, flt: Filter, reader: Reader
                  ) -> tuple[int, int]:
        """(estimated matches, rows whose metadata a query must check)."""
        n = seg.n
        dicts = {p: ix.fd for p, ix in self._state.indexes.items()}
        base = visible(seg.born[:n], seg.died[:n], self._version)
        ids = id_masks(reader, seg, self._version) if flt.uses_ids else None  # HAS_ID
        pre, exact = prefilter(flt.root, seg.cols, dicts, ids)
        cand = base if pre is None else base & pre[:n]
        if exact:
            return int(cand.sum()), 0
        pos = np.flatnonzero(cand)
        if pos.size == 0:
            return 0, 0
        sample = pos if pos.size <= SAMPLE else \
            np.random.default_rng(0).choice(pos, SAMPLE, replace=False)
        hits = sum(1 for p in sample.tolist()
                   if row_matches(flt, reader, int(seg.rowids[p])))
        return round(hits / sample.size * pos.size), int(pos.size)

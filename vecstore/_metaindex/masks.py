"""Filter masks over a segment's metadata index columns.

``eligible`` turns a filter into a boolean mask over one segment's
positions: leaves on indexed fields are evaluated with numpy over the
segment's columns (:mod:`.columns`); anything else is checked row by row
against the stored metadata (only on the rows the indexed part of an AND
leaves, when there is one).  ``HAS_ID`` leaves are answered from the
history table (:class:`IdLookup`).  Used by both the query layer (search,
count, explain) and the writer (delete by filter).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from functools import reduce
from typing import Any

import numpy as np

from .._errors import FilterError
from .._filter.anyof import element_safe
from .._filter.core import (
    And,
    AnyElem,
    Compare,
    Contains,
    Exists,
    Filter,
    HasId,
    InList,
    IsNull,
    Not,
    Or,
    StartsWith,
)
from .._filter.ids import compile_rows
from .._storage.records import lookup
from .columns import BOOL, LIST, MISSING, NULL, NUM, STR, Column, FieldDict, vkey

Cols = Mapping[tuple[str, ...], Column]
Dicts = Mapping[tuple[str, ...], FieldDict]
MetaFn = Callable[[int], Mapping[str, Any]]  # position -> metadata
IdMasks = Callable[[HasId], np.ndarray]  # HAS_ID leaf -> mask over a segment's positions

_ORD = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_KIND = {"z": NULL, "b": BOOL, "n": NUM, "s": STR}


def _leaf(node: Any, col: Column, fd: FieldDict) -> np.ndarray:
    n = col.n
    kind, code = col.kind[:n], col.code[:n]
    if isinstance(node, Compare):
        k = vkey(node.value)
        assert k is not None
        fam = k[0]
        if node.op == "=":
            if fam == "z":
                return kind == NULL
            c = fd.get(k)
            return code == c if c >= 0 else np.zeros(n, bool)
        if node.op == "!=":
            if fam == "z":
                return np.zeros(n, bool)
            return (kind == _KIND[fam]) & (code != fd.get(k))
        op = _ORD[node.op]
        if fam == "n":
            with np.errstate(invalid="ignore"):
                return op(col.num[:n], k[1])  # type: ignore[no-any-return]
        if fam == "s":
            v = k[1]
            return np.isin(code, fd.matching("s", lambda x: op(x, v)))
        return np.zeros(n, bool)
    if isinstance(node, InList):
        codes = [c for c in (fd.get(vkey(v)) for v in node.values) if c >= 0]
        hit = np.isin(code, codes)
        if node.negate:
            return np.isin(kind, (NULL, BOOL, NUM, STR)) & ~hit
        return hit
    if isinstance(node, Contains):
        out = np.zeros(n, bool)
        c = fd.get(vkey(node.value))
        if c >= 0:
            nl = int(col.loff[n])
            hits = np.flatnonzero(col.lcodes[:nl] == c)
            if hits.size:
                rows = np.searchsorted(col.loff[: n + 1], hits, side="right") - 1
                out[rows] = True
            out &= kind == LIST
        if isinstance(node.value, str):
            v = node.value
            out |= (kind == STR) & np.isin(code, fd.matching("s", lambda x: v in x))
        return out
    if isinstance(node, StartsWith):
        p = node.prefix
        return (kind == STR) & np.isin(code, fd.matching("s", lambda x: x.startswith(p)))
    if isinstance(node, Exists):
        return kind != MISSING
    if isinstance(node, IsNull):
        return kind > NULL if node.negate else kind <= NULL
    raise TypeError(f"not a leaf: {node!r}")


def _element_column(col: Column, fd: FieldDict) -> Column:
    """The scalar list elements of ``col`` as a column of their own."""
    nl = int(col.loff[col.n])
    codes = col.lcodes[:nl]
    keys = fd.keys[: len(fd.keys)]
    kinds = np.fromiter((_KIND[f] for f, _v in keys), np.int8, len(keys))
    nums = np.fromiter((v if f == "n" else np.nan for f, v in keys), np.float64, len(keys))
    return Column(kinds[codes], codes, nums[codes], np.zeros(nl + 1, np.int64),
                  np.empty(0, np.int32), nl)


def _any_mask(node: AnyElem, col: Column, fd: FieldDict) -> np.ndarray | None:
    """``ANY(item)``: item on the row's own value, or on some list element.
    Only for items false on dicts and nested lists (which the index drops)."""
    if not element_safe(node.item):
        return None
    path = node.path  # type: ignore[attr-defined]
    n = col.n
    own = index_mask(node.item, {path: col}, {path: fd})
    if own is None:  # pragma: no cover - the item is on this one indexed field
        return None
    is_list = col.kind[:n] == LIST
    out = own[:n] & ~is_list
    ecol = _element_column(col, fd)
    emask = index_mask(node.item, {path: ecol}, {path: fd})
    assert emask is not None
    hits = np.flatnonzero(emask[: ecol.n])
    if hits.size:
        rows = np.searchsorted(col.loff[: n + 1], hits, side="right") - 1
        out[rows] = True
    return out


def index_mask(node: Any, cols: Cols, dicts: Dicts, ids: IdMasks | None = None
               ) -> np.ndarray | None:
    """The exact mask of ``node``, or None if it needs an unindexed field (or
    ids, without ``ids`` to resolve them)."""
    if isinstance(node, (And, Or)):
        parts = [index_mask(c, cols, dicts, ids) for c in node.items]
        if any(p is None for p in parts):
            return None
        return reduce(operator.and_ if isinstance(node, And) else operator.or_, parts)  # type: ignore[arg-type]
    if isinstance(node, Not):
        inner = index_mask(node.item, cols, dicts, ids)
        return None if inner is None else ~inner
    if isinstance(node, HasId):
        return None if ids is None else ids(node)
    col = cols.get(node.path)
    fd = dicts.get(node.path)
    if col is None or fd is None or not isinstance(col, Column):  # (a text index's column)
        return None
    if isinstance(node, AnyElem):
        return _any_mask(node, col, fd)
    return _leaf(node, col, fd)


def prefilter(node: Any, cols: Cols, dicts: Dicts, ids: IdMasks | None = None
              ) -> tuple[np.ndarray | None, bool]:
    """(mask, exact): a superset mask from the indexed conjuncts."""
    m = index_mask(node, cols, dicts, ids)
    if m is not None:
        return m, True
    if isinstance(node, And):
        parts = [p for p in (index_mask(c, cols, dicts, ids) for c in node.items)
                 if p is not None]
        if parts:
            return reduce(operator.and_, parts), False
    return None, False


def eligible(flt: Filter, cols: Cols, dicts: Dicts, n: int, meta: MetaFn,
             base: np.ndarray | None = None, ids: IdMasks | None = None) -> np.ndarray:
    """Exact mask of rows (among ``base``, if given) matching ``flt``.
    A filter with ``HAS_ID`` needs ``ids`` (see :func:`id_masks`)."""
    if flt.uses_ids and ids is None:
        raise FilterError("a HAS_ID filter needs the segment's id masks")
    pre, exact = prefilter(flt.root, cols, dicts, ids)
    if pre is not None:
        pre = pre[:n]
    cand = pre if base is None else (base if pre is None else pre & base)
    if exact:
        return cand if cand is not None else np.ones(n, bool)
    positions = np.arange(n) if cand is None else np.flatnonzero(cand)
    out = np.zeros(n, bool)
    if ids is not None and flt.uses_ids:  # HAS_ID answered per position from its mask
        masks: dict[int, np.ndarray] = {}

        def leaf(h: HasId) -> Callable[[Any, int], bool]:
            m = masks.setdefault(id(h), ids(h))
            return lambda _md, p: bool(m[p])

        rmatch = compile_rows(flt.root, leaf)
        for p in positions.tolist():
            if rmatch(meta(p), p):
                out[p] = True
        return out
    match = flt.predicate
    for p in positions.tolist():
        if match(meta(p)):
            out[p] = True
    return out


class IdLookup:
    """``HAS_ID`` for one partition at one version: each id is looked up once
    (one history seek), each segment's mask is a binary search of its
    ascending rowids -- never a scan of the records."""

    def __init__(self, reader: Any, pid: int, version: int) -> None:
        self.reader, self.pid, self.version = reader, pid, version
        self._rows: dict[frozenset[str], np.ndarray] = {}

    def rowids(self, node: HasId) -> np.ndarray:
        """Sorted rowids of the listed ids' records live at the version."""
        key = node.idset  # type: ignore[attr-defined]
        got = self._rows.get(key)
        if got is None:
            r = self.reader
            found = []
            with r.txn.cursor(db=r.hist) as cur:
                for rid in node.ids:
                    hit = lookup(cur, self.pid, rid, self.version)
                    if hit is not None:
                        found.append(hit[1])
            got = np.unique(np.asarray(found, np.int64))
            self._rows[key] = got
        return got

    def masks(self, seg_rowids: np.ndarray, n: int) -> IdMasks:
        rowids = seg_rowids[:n]

        def mask(node: HasId) -> np.ndarray:
            want = self.rowids(node)
            out = np.zeros(n, bool)
            if want.size and n:
                pos = np.searchsorted(rowids, want)
                ok = pos < n
                pos = pos[ok]
                out[pos[rowids[pos] == want[ok]]] = True
            return out

        return mask


def id_masks(reader: Any, seg: Any, version: int) -> IdMasks:
    """The ``HAS_ID`` masks of a segment (a ``SealedSegment``/``GrowingView``)
    at ``version``; the look-ups are shared by every segment read through
    ``reader`` (one read transaction)."""
    cache = reader.__dict__.setdefault("_id_lookups", {})
    key = (seg.pid, version)
    lk = cache.get(key)
    if lk is None:
        lk = cache[key] = IdLookup(reader, seg.pid, version)
    return lk.masks(seg.rowids, seg.n)  # type: ignore[no-any-return]


def row_matches(flt: Filter, reader: Any, rowid: int) -> bool:
    """``flt`` on one stored row (its id too, when the filter tests ids)."""
    _pid, rid, meta = reader.row(rowid)
    return flt.matches(meta, id=rid)

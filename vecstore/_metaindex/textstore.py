"""BM25 text indexes and sparse vectors in LMDB.

Written by the writer in the same transaction as the rows they describe
(so a kill never leaves them disagreeing), purged with their rows:

* ``tdocs``: field id · rowid -> the row's postings: the text's length in
  terms, its distinct terms and their frequencies (``keys.tdocs_value``);
  one key per row whose field holds a str (the rows BM25 counts).  Grouped
  by row, not by term: a write appends one value per row (term-major keys
  would be ~10 random B-tree inserts per row), and the term-major order
  searches need is built in memory per segment anyway;
* ``sparse``: rowid -> the row's sparse vector (indices ascending).

Rows are immutable, so entries are only ever added, and deleted with their
row by compaction (or all of a field's when its index is dropped).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import lmdb
import numpy as np

from .._storage.env import Storage
from .._storage.keys import (
    U16,
    k64,
    sparse_value,
    split_sparse_value,
    split_tdocs_key,
    split_tdocs_value,
    tdocs_key,
    tdocs_value,
    u64,
)
from .analysis import Analyzer
from .columns import lookup_path
from .text import TermDict, text_terms

Sparse = tuple[np.ndarray, np.ndarray]  # (indices int64 ascending, weights float32)


def analyze(an: Analyzer, meta: Mapping[str, Any], path: tuple[str, ...]
            ) -> dict[str, int] | None:
    """term -> frequency of the row's text at ``path``, None if not a str."""
    present, text = lookup_path(meta, path)
    if not present or not isinstance(text, str):
        return None
    counts: dict[str, int] = {}
    for t in an.terms(text):
        counts[t] = counts.get(t, 0) + 1
    return counts


def write_text(st: Storage, txn: lmdb.Transaction, fid: int,
               rows: Iterable[tuple[int, dict[str, int]]]) -> None:
    """Write the postings of ``(rowid, term counts)`` rows (one ``tdocs``
    value per row: keys ascend with the rowids, so a batch appends)."""
    items = [(tdocs_key(fid, rowid), tdocs_value(counts)) for rowid, counts in rows]
    if items:
        with txn.cursor(db=st.db("tdocs")) as c:
            c.putmulti(items)


def delete_text(st: Storage, txn: lmdb.Transaction, fid: int, counts: dict[str, int] | None,
                rowid: int) -> None:
    if counts is not None:
        txn.delete(tdocs_key(fid, rowid), db=st.db("tdocs"))


def drop_text(st: Storage, txn: lmdb.Transaction, fid: int) -> None:
    """Delete every entry of the text index ``fid``."""
    prefix = U16.pack(fid)
    with txn.cursor(db=st.db("tdocs")) as cur:
        if cur.set_range(prefix):
            while cur.key()[:2] == prefix:
                if not cur.delete():
                    break


def load_text(st: Storage, txn: lmdb.Transaction, fid: int, td: TermDict
              ) -> dict[int, tuple[list[int], list[float]]]:
    """rowid -> (term ids, frequencies) of the text index ``fid``."""
    docs: dict[int, tuple[list[int], list[float]]] = {}
    db = st.db("tdocs")
    prefix = U16.pack(fid)
    if db is None:
        return docs
    code = td.code
    with txn.cursor(db=db) as cur:
        if not cur.set_range(prefix):
            return docs
        for key, val in cur:
            if key[:2] != prefix:
                break
            _len, terms, tfs = split_tdocs_value(val)
            docs[split_tdocs_key(key)[1]] = ([code(t) for t in terms], [float(x) for x in tfs])
    return docs


def row_terms(td: TermDict, an: Analyzer, meta: Mapping[str, Any], path: tuple[str, ...]
              ) -> tuple[list[int], list[float]] | None:
    return text_terms(td, an, lookup_path(meta, path)[1])


# -- sparse vectors ----------------------------------------------------------------------


def write_sparse(st: Storage, txn: lmdb.Transaction, r0: int, vecs: list[Sparse | None]
                 ) -> None:
    items = [(k64(r0 + j), sparse_value(*sv)) for j, sv in enumerate(vecs) if sv is not None]
    if items:
        with txn.cursor(db=st.db("sparse")) as c:
            c.putmulti(items, append=True)


def read_sparse(st: Storage, txn: lmdb.Transaction, rowid: int) -> Sparse | None:
    db = st.db("sparse")
    raw = None if db is None else txn.get(k64(rowid), db=db)
    return None if raw is None else split_sparse_value(raw)


def load_sparse(st: Storage, txn: lmdb.Transaction
                ) -> dict[int, tuple[list[int], list[float]]]:
    docs: dict[int, tuple[list[int], list[float]]] = {}
    db = st.db("sparse")
    if db is None:
        return docs
    for key, raw in txn.cursor(db=db):
        idx, w = split_sparse_value(raw)
        docs[u64(key)] = (idx.tolist(), w.tolist())
    return docs


def as_items(sv: Sparse | None) -> tuple[list[int], list[float]] | None:
    return None if sv is None else (sv[0].tolist(), sv[1].tolist())


def index_text_rows(st: Storage, txn: lmdb.Transaction, defs: Iterable[Any],
                    dicts: list[dict[str, Any]], r0: int
                    ) -> dict[tuple[str, ...], list[tuple[list[int], list[float]] | None]]:
    """Write the text indexes' entries of rows ``r0, r0+1, ...`` (their
    metadata ``dicts``); return each text index's (term ids, frequencies)
    per row, for the growing segment's columns."""
    out: dict[tuple[str, ...], list[tuple[list[int], list[float]] | None]] = {}
    for ix in defs:
        if ix.kind != "text" or ix.text is None:
            continue
        an, td = ix.text.analyzer, ix.fd
        rows = []
        items: list[tuple[list[int], list[float]] | None] = []
        for j, d in enumerate(dicts):
            counts = analyze(an, d, ix.path)
            if counts is None:
                items.append(None)
                continue
            rows.append((r0 + j, counts))
            items.append(([td.code(t) for t in counts], [float(c) for c in counts.values()]))
        write_text(st, txn, ix.fid, rows)
        out[ix.path] = items
    return out


def purge_row(st: Storage, txn: lmdb.Transaction, defs: Iterable[Any],
              meta: Mapping[str, Any] | None, rowid: int) -> None:
    """Delete a purged row's text postings, document lengths and sparse vector."""
    if meta is not None:
        for ix in defs:
            if ix.kind == "text" and ix.text is not None:
                delete_text(st, txn, ix.fid, analyze(ix.text.analyzer, meta, ix.path), rowid)
    db = st.db("sparse")
    if db is not None:
        txn.delete(k64(rowid), db=db)

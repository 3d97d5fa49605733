"""``vecstore check``, text indexes and sparse vectors: postings against records.

For every BM25 text index (``meta["indexes"]``, kind ``text``): the
``tdocs`` entries (per row: length, terms, frequencies) must be exactly
those the index's recorded analyzer makes of the records' text -- no
postings of a missing row, none missing for a row.
For sparse vectors: each ``sparse`` entry decodes (indices ascending,
weights finite) and belongs to a record.
"""

from __future__ import annotations

from typing import Any

import lmdb
import numpy as np

from .._metaindex.text import TEXT, TextSpec
from .._metaindex.textstore import analyze
from .._storage.env import Storage
from .._storage.keys import U16, split_sparse_value, split_tdocs_key, split_tdocs_value, u64
from .._storage.records import decode_row

Report = Any  # check._Report: problem(text), checked


def check_text(st: Storage, txn: lmdb.Transaction, rep: Report) -> None:
    reg = st.get_meta(txn, "indexes", {}) or {}
    texts = {f: d for f, d in reg.items() if d.get("kind") == TEXT}
    if st.db("tdocs") is None:
        if texts:
            rep.problem("text indexes are registered but the postings table is missing")
        return
    n_post = 0
    for field, d in texts.items():
        n_post += _check_index(st, txn, rep, field, d)
    rep.checked["text_postings"] = n_post
    rep.checked["sparse_vectors"] = _check_sparse(st, txn, rep)


def _expected(st: Storage, txn: lmdb.Transaction, field: str, spec: TextSpec
              ) -> dict[int, tuple[int, dict[str, int]]]:
    docs: dict[int, tuple[int, dict[str, int]]] = {}
    path = tuple(field.split("."))
    for key, raw in txn.cursor(db=st.db("rows")):
        try:
            meta = decode_row(raw)[2]
        except Exception:
            continue  # reported by the records' check
        counts = analyze(spec.analyzer, meta, path)
        if counts is not None:
            docs[u64(key)] = (sum(counts.values()), counts)
    return docs


def _actual(st: Storage, txn: lmdb.Transaction, fid: int, rep: Report, field: str
            ) -> dict[int, tuple[int, dict[str, int]]]:
    prefix = U16.pack(fid)
    docs: dict[int, tuple[int, dict[str, int]]] = {}
    with txn.cursor(db=st.db("tdocs")) as cur:
        if cur.set_range(prefix):
            for key, val in cur:
                if key[:2] != prefix:
                    break
                rowid = split_tdocs_key(key)[1]
                try:
                    length, terms, tfs = split_tdocs_value(val)
                    docs[rowid] = (length, dict(zip(terms, tfs)))
                except Exception:
                    rep.problem(f"text index {field!r}: the postings of row {rowid} are damaged")
    return docs


def _check_index(st: Storage, txn: lmdb.Transaction, rep: Report, field: str,
                 d: dict[str, Any]) -> int:
    spec = TextSpec.from_dict(d.get("text") or {})
    want = _expected(st, txn, field, spec)
    got = _actual(st, txn, d["fid"], rep, field)
    for rowid in sorted(set(want) - set(got))[:20]:
        rep.problem(f"text index {field!r}: row {rowid} has text but no postings")
    for rowid in sorted(set(got) - set(want))[:20]:
        rep.problem(f"text index {field!r}: postings of row {rowid}, which has no such text")
    bad = [r for r in want.keys() & got.keys() if want[r] != got[r]]
    for rowid in sorted(bad)[:20]:
        rep.problem(f"text index {field!r}: the postings of row {rowid} do not match its "
                    f"text ({got[rowid]} vs {want[rowid]})")
    return sum(len(c) for _l, c in got.values())


def _check_sparse(st: Storage, txn: lmdb.Transaction, rep: Report) -> int:
    db = st.db("sparse")
    if db is None:
        return 0
    n = 0
    rows = st.db("rows")
    for key, raw in txn.cursor(db=db):
        n += 1
        rowid = u64(key)
        try:
            idx, w = split_sparse_value(raw)
            ok = (idx.size < 2 or bool((np.diff(idx) > 0).all())) and bool(np.isfinite(w).all())
        except Exception:
            ok = False
        if not ok:
            rep.problem(f"sparse vector of row {rowid} is damaged")
        if txn.get(key, db=rows) is None:
            rep.problem(f"sparse vector of row {rowid} has no record")
    return n

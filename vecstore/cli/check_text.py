"""``vecstore check``, text indexes and sparse vectors: postings against records.

For every BM25 text index (``meta["indexes"]``, kind ``text``): the
``tpost`` entries (term, rowid, frequency) and ``tdocs`` entries (rowid,
length) must be exactly those the index's recorded analyzer makes of the
records' text -- no posting of a missing row, none missing for a row.
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
from .._storage.keys import U16, U32, split_sparse_value, split_tdocs_key, split_tpost_key, u64
from .._storage.records import decode_row

Report = Any  # check._Report: problem(text), checked


def check_text(st: Storage, txn: lmdb.Transaction, rep: Report) -> None:
    reg = st.get_meta(txn, "indexes", {}) or {}
    texts = {f: d for f, d in reg.items() if d.get("kind") == TEXT}
    if st.db("tpost") is None:
        if texts:
            rep.problem("text indexes are registered but the postings table is missing")
        return
    n_post = 0
    for field, d in texts.items():
        n_post += _check_index(st, txn, rep, field, d)
    rep.checked["text_postings"] = n_post
    rep.checked["sparse_vectors"] = _check_sparse(st, txn, rep)


def _expected(st: Storage, txn: lmdb.Transaction, field: str, spec: TextSpec
              ) -> tuple[set[tuple[bytes, int, int]], dict[int, int]]:
    posts: set[tuple[bytes, int, int]] = set()
    docs: dict[int, int] = {}
    path = tuple(field.split("."))
    for key, raw in txn.cursor(db=st.db("rows")):
        try:
            meta = decode_row(raw)[2]
        except Exception:
            continue  # reported by the records' check
        counts = analyze(spec.analyzer, meta, path)
        if counts is None:
            continue
        rowid = u64(key)
        docs[rowid] = sum(counts.values())
        posts.update((t.encode("utf-8"), rowid, c) for t, c in counts.items())
    return posts, docs


def _actual(st: Storage, txn: lmdb.Transaction, fid: int
            ) -> tuple[set[tuple[bytes, int, int]], dict[int, int]]:
    prefix = U16.pack(fid)
    posts: set[tuple[bytes, int, int]] = set()
    docs: dict[int, int] = {}
    with txn.cursor(db=st.db("tpost")) as cur:
        if cur.set_range(prefix):
            for key, val in cur:
                if key[:2] != prefix:
                    break
                _f, term, rowid = split_tpost_key(key)
                posts.add((term, rowid, U32.unpack(val)[0]))
    with txn.cursor(db=st.db("tdocs")) as cur:
        if cur.set_range(prefix):
            for key, val in cur:
                if key[:2] != prefix:
                    break
                docs[split_tdocs_key(key)[1]] = U32.unpack(val)[0]
    return posts, docs


def _check_index(st: Storage, txn: lmdb.Transaction, rep: Report, field: str,
                 d: dict[str, Any]) -> int:
    spec = TextSpec.from_dict(d.get("text") or {})
    want_p, want_d = _expected(st, txn, field, spec)
    got_p, got_d = _actual(st, txn, d["fid"])
    for term, rowid, tf in sorted(want_p - got_p)[:20]:
        rep.problem(f"text index {field!r}: row {rowid} lacks its posting for "
                    f"{term.decode('utf-8', 'replace')!r} (tf {tf})")
    for term, rowid, tf in sorted(got_p - want_p)[:20]:
        rep.problem(f"text index {field!r}: posting {term.decode('utf-8', 'replace')!r} -> "
                    f"row {rowid} (tf {tf}) does not match the record")
    if want_d != got_d:
        bad = sorted(set(want_d.items()) ^ set(got_d.items()))
        rep.problem(f"text index {field!r}: {len(bad)} document lengths disagree with the "
                    f"records (first: row {bad[0][0]})")
    return len(got_p)


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

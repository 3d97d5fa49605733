"""Index management: the registry, creating (with backfill) and dropping
an index in a write transaction, and a field's values read back from the
LMDB entries (to build segments' columns).

Kinds: ``hash``/``btree``/``inverted`` (metadata, :mod:`.columns`),
``text`` (BM25, :mod:`.text`; its analyzer and k1/b recorded in the
registry entry) and the implicit ``sparse`` index of records' sparse
vectors (registered at the first sparse write)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import lmdb
import numpy as np

from .._errors import InvalidArgumentError
from .._storage.env import Storage
from .._storage.keys import field_prefix, u64
from .._storage.records import decode_row
from .._types import TextIndex
from .analysis import Analyzer
from .columns import (
    KINDS,
    MAX_STR,
    Column,
    FieldDict,
    decode_entry,
    encode_values,
    entry_keys,
    lookup_path,
    path_of,
)
from .text import SPARSE, SPARSE_FIELD, TEXT, TermColumn, TermDict, TextSpec, build_term_column
from .textstore import analyze, drop_text, load_sparse, load_text, write_text

Path = tuple[str, ...]
TERM_KINDS = (TEXT, SPARSE)  # kinds whose columns are TermColumns


@dataclass
class IndexDef:
    field: str
    path: Path
    kind: str
    fid: int
    fd: Any  # FieldDict (metadata kinds) or TermDict (text)
    text: TextSpec | None = None  # a text index's analyzer and BM25 parameters


def registry(st: Storage, txn: lmdb.Transaction) -> dict[str, dict[str, Any]]:
    return st.get_meta(txn, "indexes", {})  # type: ignore[no-any-return]


def row_index_keys(indexes: Iterable[IndexDef], meta: Mapping[str, Any], rowid: int
                   ) -> list[bytes]:
    """The ``ix`` keys of a row (metadata kinds only: text postings are
    :func:`.textstore.write_text`'s)."""
    keys: list[bytes] = []
    for ix in indexes:
        if ix.kind not in TERM_KINDS:
            keys.extend(entry_keys(ix.fid, meta, ix.path, rowid))
    return keys


def check_kind(kind: Any) -> str | TextIndex:
    if isinstance(kind, TextIndex):
        text_spec(kind)  # the language must have a stemmer
        return kind
    if kind not in (*KINDS, TEXT):
        raise InvalidArgumentError(
            f"index kind must be one of {', '.join((*KINDS, TEXT))} or a TextIndex; "
            f"got {kind!r}")
    return kind  # type: ignore[no-any-return]


def text_spec(kind: str | TextIndex) -> TextSpec:
    t = kind if isinstance(kind, TextIndex) else TextIndex()
    sw = t.stopwords if isinstance(t.stopwords, bool) else tuple(t.stopwords)
    return TextSpec(Analyzer(t.language, t.stem, sw, t.fold_accents), float(t.k1), float(t.b))


def create_index(st: Storage, txn: lmdb.Transaction, field: str, kind: str | TextIndex
                 ) -> str | None:
    """Register an index on ``field`` and write its entries for every row
    (backfill).  Returns ``"create"``, ``"kind"`` (it existed with another
    kind, or a text index with another analyzer: now as asked) or None (it
    exists as asked)."""
    reg = registry(st, txn)
    name = TEXT if isinstance(kind, TextIndex) else kind
    spec = text_spec(kind).to_dict() if name == TEXT else None
    if field in reg:
        old = reg[field]
        if old["kind"] == name and old.get("text") == spec:
            return None
        if TEXT in (old["kind"], name):
            if old["kind"] != name:
                raise InvalidArgumentError(
                    f"{field!r} has a {old['kind']!r} index: drop_index({field!r}) before "
                    f"indexing it as {name!r}")
            drop_text(st, txn, old["fid"])  # another analyzer: index the text again
            reg[field]["text"] = spec
            st.put_meta(txn, "indexes", reg)
            _backfill_text(st, txn, old["fid"], path_of(field), TextSpec.from_dict(spec or {}))
            return "kind"
        reg[field]["kind"] = name
        st.put_meta(txn, "indexes", reg)
        return "kind"
    fid = st.get_meta(txn, "next_fid", 1)
    st.put_meta(txn, "next_fid", fid + 1)
    reg[field] = {"kind": name, "fid": fid}
    if spec is not None:
        reg[field]["text"] = spec
    st.put_meta(txn, "indexes", reg)
    path = path_of(field)
    if spec is not None:
        _backfill_text(st, txn, fid, path, TextSpec.from_dict(spec))
        return "create"
    ix_db = st.db("ix")
    pending = []
    for key, raw in txn.cursor(db=st.db("rows")):
        meta = decode_row(raw)[2]
        pending.extend(entry_keys(fid, meta, path, u64(key)))
    pending.sort()
    with txn.cursor(db=ix_db) as cur:
        cur.putmulti([(k, b"") for k in pending])
    return "create"


def _backfill_text(st: Storage, txn: lmdb.Transaction, fid: int, path: Path, spec: TextSpec
                   ) -> None:
    an = spec.analyzer
    rows = []
    for key, raw in txn.cursor(db=st.db("rows")):
        counts = analyze(an, decode_row(raw)[2], path)
        if counts is not None:
            rows.append((u64(key), counts))
    write_text(st, txn, fid, rows)


def ensure_text_index(st: Storage, field: str) -> None:
    """``Config.text_field``: a text index on ``field`` (default analyzer),
    created -- and backfilled -- in one transaction unless the field is
    indexed already."""
    with st.read() as txn:
        if field in registry(st, txn):
            return
    st.write(lambda txn: create_index(st, txn, field, TEXT))


def ensure_sparse(st: Storage, txn: lmdb.Transaction) -> bool:
    """Register the sparse index (at the first sparse write); True if new."""
    reg = registry(st, txn)
    if SPARSE_FIELD in reg:
        return False
    fid = st.get_meta(txn, "next_fid", 1)
    st.put_meta(txn, "next_fid", fid + 1)
    reg[SPARSE_FIELD] = {"kind": SPARSE, "fid": fid}
    st.put_meta(txn, "indexes", reg)
    return True


def drop_index(st: Storage, txn: lmdb.Transaction, field: str) -> bool:
    """Unregister ``field``'s index and delete its entries; False if none."""
    reg = registry(st, txn)
    entry = reg.pop(field, None)
    if entry is None or entry["kind"] == SPARSE:
        return False
    st.put_meta(txn, "indexes", reg)
    if entry["kind"] == TEXT:
        drop_text(st, txn, entry["fid"])
        return True
    prefix = field_prefix(entry["fid"])
    with txn.cursor(db=st.db("ix")) as cur:
        if cur.set_range(prefix):
            while cur.key().startswith(prefix):
                if not cur.delete():
                    break
    return True


def load_defs(st: Storage, txn: lmdb.Transaction, old: Mapping[Path, IndexDef]
              ) -> dict[Path, IndexDef]:
    out = {}
    for fieldname, d in registry(st, txn).items():
        path = (SPARSE_FIELD,) if d["kind"] == SPARSE else path_of(fieldname)
        prev = old.get(path)
        spec = TextSpec.from_dict(d.get("text") or {}) if d["kind"] == TEXT else None
        if prev is not None and prev.fid == d["fid"] and prev.text == spec and \
                (prev.kind in TERM_KINDS) == (d["kind"] in TERM_KINDS):
            fd = prev.fd
        else:
            fd = TermDict() if d["kind"] in TERM_KINDS else FieldDict()
        out[path] = IndexDef(fieldname, path, d["kind"], d["fid"], fd, spec)
    return out


def index_values(st: Storage, txn: lmdb.Transaction, ix: IndexDef) -> Mapping[int, Any]:
    """rowid -> what a segment's column of ``ix`` is built from (any kind)."""
    if ix.kind == TEXT:
        return load_text(st, txn, ix.fid, ix.fd)
    if ix.kind == SPARSE:
        return load_sparse(st, txn)
    return field_values(st, txn, ix)


def segment_column(values: Mapping[int, Any], rowids: np.ndarray, ix: IndexDef
                   ) -> Column | TermColumn:
    """A segment's column of ``ix`` over ``rowids`` (any kind)."""
    if ix.kind in TERM_KINDS:
        return build_term_column(values, rowids, sparse=ix.kind == SPARSE)
    return build_column(values, rowids, ix.fd)


def field_values(st: Storage, txn: lmdb.Transaction, ix: IndexDef
                 ) -> dict[int, tuple[bool, Any]]:
    """rowid -> (present, value) for one field, from the ``ix`` entries."""
    vals: dict[int, tuple[bool, Any]] = {}
    lists: dict[int, list[Any]] = {}
    prefix = field_prefix(ix.fid)
    db = st.db("ix")
    if db is None:
        return vals
    with txn.cursor(db=db) as cur:
        if not cur.set_range(prefix):
            return vals
        for key in cur.iternext(keys=True, values=False):
            if not key.startswith(prefix):
                break
            _fid, tag, v, rowid = decode_entry(key)
            if tag == "L":
                lists.setdefault(rowid, [])
            elif tag == "E":
                lists.setdefault(rowid, []).append(v)
            elif tag == "D":
                vals[rowid] = (True, {})
            else:
                if tag == "S" and len(v.encode("utf-8")) >= MAX_STR:  # truncated key
                    raw = txn.get(key[-8:], db=st.db("rows"))
                    v = lookup_path(decode_row(raw)[2], ix.path)[1] if raw else v
                vals[rowid] = (True, v)
    for rowid, elems in lists.items():
        vals[rowid] = (True, elems)
    return vals


def build_column(values: Mapping[int, tuple[bool, Any]], rowids: np.ndarray, fd: FieldDict
                 ) -> Column:
    missing = (False, None)
    return encode_values((values.get(r, missing) for r in rowids.tolist()), fd)

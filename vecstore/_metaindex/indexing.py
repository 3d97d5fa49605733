"""Index management: the registry, creating (with backfill) and dropping
an index in a write transaction, and a field's values read back from the
LMDB entries (to build segments' columns)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import lmdb
import numpy as np

from .._errors import InvalidArgumentError
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
from .._storage.records import decode_row
from .._storage.env import Storage
from .._storage.keys import field_prefix, u64

Path = tuple[str, ...]


@dataclass
class IndexDef:
    field: str
    path: Path
    kind: str
    fid: int
    fd: FieldDict


def registry(st: Storage, txn: lmdb.Transaction) -> dict[str, dict[str, Any]]:
    return st.get_meta(txn, "indexes", {})  # type: ignore[no-any-return]


def row_index_keys(indexes: Iterable[IndexDef], meta: Mapping[str, Any], rowid: int
                   ) -> list[bytes]:
    keys: list[bytes] = []
    for ix in indexes:
        keys.extend(entry_keys(ix.fid, meta, ix.path, rowid))
    return keys


def check_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise InvalidArgumentError(f"index kind must be one of {', '.join(KINDS)}; got {kind!r}")
    return kind  # type: ignore[no-any-return]


def create_index(st: Storage, txn: lmdb.Transaction, field: str, kind: str) -> str | None:
    """Register an index on ``field`` and write its entries for every row
    (backfill).  Returns ``"create"``, ``"kind"`` (it existed with another
    kind: now ``kind``) or None (it exists as asked)."""
    reg = registry(st, txn)
    if field in reg:
        if reg[field]["kind"] != kind:
            reg[field]["kind"] = kind
            st.put_meta(txn, "indexes", reg)
            return "kind"
        return None
    fid = st.get_meta(txn, "next_fid", 1)
    st.put_meta(txn, "next_fid", fid + 1)
    reg[field] = {"kind": kind, "fid": fid}
    st.put_meta(txn, "indexes", reg)
    path = path_of(field)
    ix_db = st.db("ix")
    pending = []
    for key, raw in txn.cursor(db=st.db("rows")):
        meta = decode_row(raw)[2]
        pending.extend(entry_keys(fid, meta, path, u64(key)))
    pending.sort()
    with txn.cursor(db=ix_db) as cur:
        cur.putmulti([(k, b"") for k in pending])
    return "create"


def drop_index(st: Storage, txn: lmdb.Transaction, field: str) -> bool:
    """Unregister ``field``'s index and delete its entries; False if none."""
    reg = registry(st, txn)
    entry = reg.pop(field, None)
    if entry is None:
        return False
    st.put_meta(txn, "indexes", reg)
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
        path = path_of(fieldname)
        prev = old.get(path)
        fd = prev.fd if prev is not None and prev.fid == d["fid"] else FieldDict()
        out[path] = IndexDef(fieldname, path, d["kind"], d["fid"], fd)
    return out


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

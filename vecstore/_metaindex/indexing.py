"""Index management: the registry, create/drop requests (with backfill),
and building a field's columns for segments from the LMDB entries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import lmdb
import numpy as np

from .._errors import InvalidArgumentError, InvalidArgumentTypeError
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
from .._engine.ops import TxnCtx, WriteRequest
from .._storage.records import decode_row
from .._storage.env import Storage
from .._storage.keys import field_prefix, u64

if TYPE_CHECKING:
    from .._engine.engine import Engine

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


@dataclass
class CreateIndex(WriteRequest):
    field: str
    kind: str
    message: str | None = None
    partition: str = "default"

    def apply(self, ctx: TxnCtx) -> Any:
        ctx.abandon()  # an index is not data: no version
        st = ctx.engine.storage
        reg = registry(st, ctx.txn)
        if self.field in reg:
            if reg[self.field]["kind"] != self.kind:
                reg[self.field]["kind"] = self.kind
                st.put_meta(ctx.txn, "indexes", reg)
                ctx.index_changes.append(("kind", self.field))
            return False
        fid = st.get_meta(ctx.txn, "next_fid", 1)
        st.put_meta(ctx.txn, "next_fid", fid + 1)
        reg[self.field] = {"kind": self.kind, "fid": fid}
        st.put_meta(ctx.txn, "indexes", reg)
        path = path_of(self.field)
        ix_db = st.db("ix")
        pending = []
        for key, raw in ctx.txn.cursor(db=st.db("rows")):
            meta = decode_row(raw)[2]
            pending.extend(entry_keys(fid, meta, path, u64(key)))
        pending.sort()
        with ctx.txn.cursor(db=ix_db) as cur:
            cur.putmulti([(k, b"") for k in pending])
        ctx.index_changes.append(("create", self.field))
        return True


@dataclass
class DropIndex(WriteRequest):
    field: str
    message: str | None = None
    partition: str = "default"

    def apply(self, ctx: TxnCtx) -> Any:
        ctx.abandon()
        st = ctx.engine.storage
        reg = registry(st, ctx.txn)
        entry = reg.pop(self.field, None)
        if entry is None:
            return False
        st.put_meta(ctx.txn, "indexes", reg)
        prefix = field_prefix(entry["fid"])
        with ctx.txn.cursor(db=st.db("ix")) as cur:
            if cur.set_range(prefix):
                while cur.key().startswith(prefix):
                    if not cur.delete():
                        break
        ctx.index_changes.append(("drop", self.field))
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


def attach_columns(engine: Engine, txn: lmdb.Transaction, paths: Iterable[Path]) -> None:
    """(Re)build the columns of ``paths`` on every segment (writer or load)."""
    from .columns import ColumnBuilder

    st = engine.storage
    for path in paths:
        ix = engine.indexes[path]
        values = field_values(st, txn, ix)
        for pm in engine.parts.values():
            for seg in pm.sealed:
                seg.cols[path] = build_column(values, seg.rowids, ix.fd)
            g = pm.growing
            if g is not None:
                g.cols[path] = ColumnBuilder.of(build_column(values, g.rowids[: g.n], ix.fd))


def make_create_index(field: Any, kind: Any) -> CreateIndex:
    if not isinstance(field, str):
        raise InvalidArgumentTypeError(f"field must be a str, got {type(field).__name__}")
    path_of(field)
    return CreateIndex(field, check_kind(kind))

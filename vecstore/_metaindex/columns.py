"""Metadata indexes.

Persistent part (LMDB ``ix`` table, written by the writer in the same
transaction as the rows): one key per (indexed field, row, value)::

    fid (u16) · tag (1 byte) · encoded value · rowid (u64)   ->  b""

tags: ``Z`` null, ``B`` bool, ``N`` number (order-preserving float64), ``S``
string (utf-8, at most 200 bytes), ``E`` + scalar = one list element,
``L`` list marker, ``D`` dict marker.  A row with no key for a field does
not have it.  Rows are immutable, so entries are only ever added (and
purged with their rows by compaction).

In-memory part: per segment and field, typed columns aligned with the
segment's positions (``kind``, ``code``, ``num``, and a CSR of list element
codes), built from the LMDB entries at open and appended by the writer.
Values are dictionary-coded per field (an append-only list, so readers can
scan it while the writer grows it).  Predicates become numpy masks.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InvalidArgumentError
from .._storage.keys import ix_key, split_ix_key

KINDS = ("hash", "btree", "inverted")
# column kinds
MISSING, NULL, BOOL, NUM, STR, LIST, DICT = range(7)
_F64 = struct.Struct(">d")
_U64 = struct.Struct(">Q")
MAX_STR = 200


def path_of(field: str) -> tuple[str, ...]:
    parts = tuple(field.split("."))
    if not field or any(not p for p in parts):
        raise InvalidArgumentError(f"bad field path {field!r}: use dotted names like 'user.age'")
    return parts


def lookup_path(meta: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    cur: Any = meta
    for p in path:
        if not isinstance(cur, Mapping) or p not in cur:
            return False, None
        cur = cur[p]
    return True, cur


def vkey(v: Any) -> tuple[str, Any] | None:
    """Dictionary key of a scalar (numbers by value, bool apart)."""
    if v is None:
        return ("z", None)
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, (int, float)):
        return ("n", float(v))
    if isinstance(v, str):
        return ("s", v)
    return None


def _num(v: float) -> bytes:
    bits = _U64.unpack(_F64.pack(v))[0]
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
    return _U64.pack(bits)


def _unnum(b: bytes) -> float:
    bits = _U64.unpack(b)[0]
    bits = bits & ~(1 << 63) if bits >> 63 else bits ^ 0xFFFFFFFFFFFFFFFF
    return float(_F64.unpack(_U64.pack(bits))[0])


def _enc_scalar(v: Any) -> bytes | None:
    if v is None:
        return b"Z"
    if isinstance(v, bool):
        return b"B" + (b"\x01" if v else b"\x00")
    if isinstance(v, (int, float)):
        return b"N" + _num(float(v))
    if isinstance(v, str):
        return b"S" + v.encode("utf-8")[:MAX_STR]
    return None


def entry_keys(fid: int, meta: Mapping[str, Any], path: tuple[str, ...], rowid: int
               ) -> list[bytes]:
    present, v = lookup_path(meta, path)
    if not present:
        return []
    if isinstance(v, list):
        keys = [ix_key(fid, b"L", rowid)]
        for e in v:
            enc = _enc_scalar(e)
            if enc is not None:
                keys.append(ix_key(fid, b"E" + enc, rowid))
        return keys
    if isinstance(v, Mapping):
        return [ix_key(fid, b"D", rowid)]
    enc = _enc_scalar(v)
    return [] if enc is None else [ix_key(fid, enc, rowid)]


def decode_entry(key: bytes) -> tuple[int, str, Any, int]:
    """(fid, tag, value, rowid) of an ``ix`` key."""
    fid, body, rowid = split_ix_key(key)
    tag = chr(body[0])
    elem = tag == "E"
    if elem:
        body = body[1:]
    t = chr(body[0])
    if t == "Z":
        v: Any = None
    elif t == "B":
        v = body[1] == 1
    elif t == "N":
        v = _unnum(body[1:9])
    elif t == "S":
        v = body[1:].decode("utf-8", "replace")
    else:  # L or D markers
        return fid, t, None, rowid
    return fid, ("E" if elem else t), v, rowid


class FieldDict:
    """Append-only value dictionary of one field."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, Any]] = []
        self.codes: dict[tuple[str, Any], int] = {}

    def code(self, key: tuple[str, Any]) -> int:
        c = self.codes.get(key)
        if c is None:
            c = len(self.keys)
            self.keys.append(key)
            self.codes[key] = c
        return c

    def get(self, key: tuple[str, Any] | None) -> int:
        if key is None:
            return -1
        return self.codes.get(key, -1)

    def matching(self, family: str, pred: Any) -> np.ndarray:
        """Codes of the values of ``family`` satisfying ``pred``."""
        keys = self.keys[: len(self.keys)]
        return np.fromiter((c for c, (f, v) in enumerate(keys) if f == family and pred(v)),
                           dtype=np.int32)


@dataclass(frozen=True, slots=True)
class Column:
    """One field's values over a segment's positions (a view of length n)."""

    kind: np.ndarray  # int8
    code: np.ndarray  # int32, -1 unless a scalar
    num: np.ndarray  # float64, NaN unless a number
    loff: np.ndarray  # int64, n+1 offsets into lcodes
    lcodes: np.ndarray  # int32 list element codes
    n: int

    def take(self, positions: np.ndarray) -> Column:
        starts = self.loff[positions]
        counts = self.loff[positions + 1] - starts
        loff = np.zeros(len(positions) + 1, np.int64)
        np.cumsum(counts, out=loff[1:])
        total = int(loff[-1])
        idx = np.arange(total, dtype=np.int64) - np.repeat(loff[:-1], counts) + \
            np.repeat(starts, counts)
        lcodes = self.lcodes[idx]
        return Column(self.kind[positions], self.code[positions], self.num[positions],
                      loff, lcodes, len(positions))


def concat_columns(cols: list[Any]) -> Any:
    if cols and not isinstance(cols[0], Column):  # another kind's column (text.TermColumn)
        return type(cols[0]).concat(cols)
    if len(cols) == 1:
        return cols[0]
    offs = [np.zeros(1, np.int64)]
    base = 0
    for c in cols:
        offs.append(c.loff[1 : c.n + 1] + base)
        base += int(c.loff[c.n])
    return Column(np.concatenate([c.kind[: c.n] for c in cols]),
                  np.concatenate([c.code[: c.n] for c in cols]),
                  np.concatenate([c.num[: c.n] for c in cols]),
                  np.concatenate(offs),
                  np.concatenate([c.lcodes[: int(c.loff[c.n])] for c in cols]),
                  sum(c.n for c in cols))


def encode_values(values: Iterable[tuple[bool, Any]], fd: FieldDict) -> Column:
    """Columns for a batch of (present, value) pairs (writer only)."""
    vals = list(values)
    n = len(vals)
    kind = np.zeros(n, np.int8)
    code = np.full(n, -1, np.int32)
    num = np.full(n, np.nan)
    counts = np.zeros(n, np.int64)
    elems: list[int] = []
    for i, (present, v) in enumerate(vals):
        if not present:
            continue
        if isinstance(v, list):
            kind[i] = LIST
            cs = [fd.code(k) for k in map(vkey, v) if k is not None]
            counts[i] = len(cs)
            elems.extend(cs)
            continue
        if isinstance(v, Mapping):
            kind[i] = DICT
            continue
        k = vkey(v)
        if k is None:
            continue
        code[i] = fd.code(k)
        kind[i] = {"z": NULL, "b": BOOL, "n": NUM, "s": STR}[k[0]]
        if k[0] == "n":
            num[i] = k[1]
    loff = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=loff[1:])
    return Column(kind, code, num, loff, np.asarray(elems, np.int32), n)


class ColumnBuilder:
    """A growing segment's column: appended by the writer, viewed by readers."""

    def __init__(self, cap: int = 1024) -> None:
        self.n = 0
        self.nl = 0
        self.kind = np.zeros(cap, np.int8)
        self.code = np.full(cap, -1, np.int32)
        self.num = np.full(cap, np.nan)
        self.loff = np.zeros(cap + 1, np.int64)
        self.lcodes = np.empty(max(cap, 16), np.int32)

    def append(self, col: Column) -> None:
        m, ml = col.n, int(col.loff[col.n])
        if self.n + m > len(self.kind):
            cap = max(2 * len(self.kind), self.n + m)
            for name, fill in (("kind", 0), ("code", -1), ("num", np.nan)):
                old = getattr(self, name)
                new = np.full(cap, fill, old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
            loff = np.zeros(cap + 1, np.int64)
            loff[: self.n + 1] = self.loff[: self.n + 1]
            self.loff = loff
        if self.nl + ml > len(self.lcodes):
            lc = np.empty(max(2 * len(self.lcodes), self.nl + ml), np.int32)
            lc[: self.nl] = self.lcodes[: self.nl]
            self.lcodes = lc
        s = slice(self.n, self.n + m)
        self.kind[s], self.code[s], self.num[s] = col.kind, col.code, col.num
        self.loff[self.n + 1 : self.n + m + 1] = col.loff[1:] + self.nl
        self.lcodes[self.nl : self.nl + ml] = col.lcodes[:ml]
        self.n += m
        self.nl += ml

    def view(self) -> Column:
        return Column(self.kind, self.code, self.num, self.loff, self.lcodes, self.n)

    @classmethod
    def of(cls, col: Column) -> ColumnBuilder:
        if not isinstance(col, Column):  # another kind's column builds its own builder
            return col.builder()  # type: ignore[no-any-return]
        b = cls(max(1024, col.n))
        b.append(col)
        return b

"""Row encoding in LMDB and the record look-ups every reader shares.

``rows`` values: pid (u32 BE), id length (u16 BE), id (utf-8), metadata (CBOR).
Vectors: see ``_vectors.py`` (per row until sealed, then packed blocks).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import cbor2
import lmdb
import numpy as np

from .env import Storage
from .keys import TOP, hist_prefix, k64, pid_prefix, split_hist_key, u64
from .vectors import VectorTable

_HEAD = struct.Struct(">IH")


def encode_row(pid: int, rid: str, meta_cbor: bytes) -> bytes:
    b = rid.encode("utf-8")
    return _HEAD.pack(pid, len(b)) + b + meta_cbor


def decode_row(raw: bytes) -> tuple[int, str, dict[str, Any]]:
    pid, n = _HEAD.unpack_from(raw)
    end = 6 + n
    return pid, raw[6:end].decode("utf-8"), cbor2.loads(raw[end:])


def row_pid(raw: bytes) -> int:
    """The partition of an encoded row (its metadata left undecoded; a row cut
    short reads as whatever its first bytes say, for ``vecstore check``)."""
    return int.from_bytes(bytes(raw[:4]), "big")


def row_meta_cbor(raw: bytes) -> bytes:
    """An encoded row's metadata, still CBOR."""
    return bytes(raw[6 + _HEAD.unpack_from(raw)[1]:])


def lookup(cur: lmdb.Cursor[bytes], pid: int, rid: str,
           version: int | None = None) -> tuple[int, int] | None:
    """(version, rowid) of the id's newest history entry at or before
    ``version`` (None = latest); None if absent or deleted then."""
    prefix = hist_prefix(pid, rid)
    probe = prefix + (TOP if version is None else k64(version + 1))
    if cur.set_range(probe):
        if not cur.prev():
            return None
    elif not cur.last():
        return None
    key = cur.key()
    if not key.startswith(prefix) or len(key) != len(prefix) + 8:
        return None
    val = cur.value()
    if not val:
        return None
    return u64(key[-8:]), u64(val)


class Reader:
    """Decodes records by rowid inside one read transaction."""

    def __init__(self, storage: Storage, txn: lmdb.Transaction[bytes], zero_copy: bool = False
                 ) -> None:
        """``zero_copy``: see :class:`VectorTable` (snapshot reads only)."""
        self.storage = storage
        self.zero_copy = zero_copy
        self.txn = txn
        self.rows_db = storage.db("rows")
        self.hist = storage.db("hist")
        self._table: VectorTable | None = None

    def row(self, rowid: int) -> tuple[int, str, dict[str, Any]]:
        raw = self.txn.get(k64(rowid), db=self.rows_db)
        if raw is None:
            from .._errors import CorruptionError

            raise CorruptionError(f"row {rowid} is referenced but missing from the records")
        return decode_row(raw)

    def rows(self, rowids: list[int]) -> list[tuple[int, str, dict[str, Any]]]:
        """Decode several rows with one cursor pass."""
        if not rowids:
            return []
        with self.txn.cursor(db=self.rows_db) as cur:
            got = cur.getmulti([k64(r) for r in rowids])
        if len(got) != len(rowids):
            from .._errors import CorruptionError

            raise CorruptionError("rows referenced by an index are missing from the records")
        return [decode_row(raw) for _k, raw in got]

    def metadata(self, rowid: int) -> dict[str, Any]:
        return self.row(rowid)[2]

    def vector(self, rowid: int, pid: int | None = None) -> np.ndarray:
        """A row's original vector (``pid`` saves reading its record)."""
        if pid is None:
            pid = self.row(rowid)[0]
        vec = self.table().get(pid, rowid)
        if vec is None:
            from .._errors import CorruptionError

            raise CorruptionError(f"row {rowid} has no vector in the store")
        return vec

    def vectors(self, pid: int, rowids: np.ndarray, dim: int) -> np.ndarray:
        """Original vectors of rows of partition ``pid``; all must exist."""
        return self.table(dim).require(pid, rowids)

    def existing_vectors(self, pid: int, rowids: np.ndarray, dim: int
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`vectors`, skipping rows compaction has removed."""
        found, mat = self.table(dim).many(pid, rowids)
        return np.asarray(rowids, np.int64)[found], mat

    def table(self, dim: int | None = None) -> VectorTable:
        if self._table is None or (dim is not None and self._table.dim != dim):
            self._table = VectorTable(self.storage, self.txn, dim, self.zero_copy)
        return self._table

    def find(self, pid: int, rid: str, version: int | None = None) -> tuple[int, int] | None:
        if self.hist is None:
            return None
        with self.txn.cursor(db=self.hist) as cur:
            return lookup(cur, pid, rid, version)

    def live_ids(self, pid: int, version: int, start_after: str | None = None
                 ) -> Iterator[tuple[str, int, int]]:
        """(id, born version, rowid) of every record live at ``version``, by id."""
        if self.hist is None:
            return
        prefix = pid_prefix(pid)
        with self.txn.cursor(db=self.hist) as cur:
            start = prefix if start_after is None else hist_prefix(pid, start_after) + TOP
            if not cur.set_range(start):
                return
            current: str | None = None
            best: tuple[int, bytes] | None = None
            for key, val in cur:
                if not key.startswith(prefix):
                    break
                _p, rid, ver = split_hist_key(key)
                if rid != current:
                    if current is not None and best is not None and best[1]:
                        yield current, best[0], u64(best[1])
                    current, best = rid, None
                if ver <= version:
                    best = (ver, val)
            if current is not None and best is not None and best[1]:
                yield current, best[0], u64(best[1])

"""Implementation of :class:`WriteAheadLog` on top of LMDB named sub-databases."""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import cbor2
import lmdb

__all__ = ["CorruptEntryError", "WalError", "WriteAheadLog"]

_FORMAT = 1  # on-disk value layout: format byte + CRC32 (big-endian) + CBOR payload
_HEADER = 5
_HWM_KEY = b"hwm"  # key of the sequence high-water mark in the ``.meta`` sub-database
_MAX_SEQ = (1 << 64) - 1


class WalError(Exception):
    """Base class of every error raised by :mod:`wal`."""


class CorruptEntryError(WalError):
    """A stored entry failed its checksum, has a bad layout, or does not decode."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"WAL entry {seq} is corrupt: {reason}")
        self.seq = seq
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.seq, self.reason))


def _key(seq: int) -> bytes:
    return seq.to_bytes(8, "big")


def _encode(entry: Any) -> bytes:
    payload = cbor2.dumps(entry)
    return bytes((_FORMAT,)) + zlib.crc32(payload).to_bytes(4, "big") + payload


def _decode(key: bytes, value: bytes) -> tuple[int, Any]:
    """Return ``(seq, entry)`` for a raw record, raising :class:`CorruptEntryError` if damaged."""
    seq = int.from_bytes(key, "big")
    if len(key) != 8:
        raise CorruptEntryError(seq, f"key has {len(key)} bytes, expected 8")
    if len(value) < _HEADER:
        raise CorruptEntryError(seq, f"value too short ({len(value)} bytes)")
    if value[0] != _FORMAT:
        raise CorruptEntryError(seq, f"unknown format byte {value[0]}")
    payload = value[_HEADER:]
    if zlib.crc32(payload) != int.from_bytes(value[1:_HEADER], "big"):
        raise CorruptEntryError(seq, "CRC32 mismatch")
    stream = io.BytesIO(payload)
    try:
        entry = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:  # cbor2 raises several error types on malformed input
        raise CorruptEntryError(seq, f"CBOR decode failed: {exc}") from exc
    if stream.tell() != len(payload):
        raise CorruptEntryError(seq, "trailing bytes after CBOR payload")
    return seq, entry


class WriteAheadLog:
    """An append-only log of CBOR entries keyed by strictly increasing sequence numbers.

    Entries live in the named sub-database ``name``; the highest sequence number ever
    assigned lives in ``name + b".meta"``, so numbers are never reused, even after the
    whole log was truncated.  Every method accepts an optional LMDB transaction: pass the
    caller's write transaction to make log changes commit (or abort) atomically with the
    caller's own changes; with ``txn=None`` the method uses a transaction of its own.

    Construct on an environment opened with enough ``max_dbs`` (two are used here).  On a
    writable environment the sub-databases are created if missing (this starts a short
    write transaction, so do not construct while the same thread holds one).  On a
    read-only environment nothing is created and missing sub-databases read as empty.
    """

    def __init__(self, env: lmdb.Environment, name: bytes = b"wal") -> None:
        self.env = env
        self._names = (name, name + b".meta")
        self._readonly = bool(env.flags()["readonly"])
        self._log_db: Any = None
        self._meta_db: Any = None
        self._owns_env = False
        self._open_dbs()

    @classmethod
    def open(cls, path: str, *, map_size: int = 1 << 30, sync: bool = True) -> WriteAheadLog:
        """Open (creating if needed) a standalone log in directory ``path``; see :meth:`close`."""
        env = lmdb.open(path, map_size=map_size, max_dbs=4, sync=sync)
        try:
            log = cls(env)
        except BaseException:
            env.close()
            raise
        log._owns_env = True
        return log

    def close(self) -> None:
        """Close the environment if this log opened it itself (via :meth:`open`)."""
        if self._owns_env:
            self.env.close()

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _open_dbs(self) -> None:
        """Open whichever sub-databases are not open yet (read-only envs: only existing ones)."""
        for attr, name in zip(("_log_db", "_meta_db"), self._names):
            if getattr(self, attr) is None:
                try:
                    setattr(self, attr, self.env.open_db(name, create=not self._readonly))
                except lmdb.NotFoundError:
                    pass  # read-only environment and the sub-database does not exist yet

    def _dbs(self) -> tuple[Any, Any]:
        """Return ``(log_db, meta_db)``; either is ``None`` if it does not exist (read-only)."""
        if self._log_db is None or self._meta_db is None:
            self._open_dbs()  # a writer may have created them since
        return self._log_db, self._meta_db

    def _writable(self) -> tuple[Any, Any]:
        if self._readonly:
            raise WalError("the log's LMDB environment is read-only")
        return self._dbs()

    def _txn(
        self, txn: lmdb.Transaction[bytes] | None, write: bool = False
    ) -> AbstractContextManager[lmdb.Transaction[bytes]]:
        """Context manager yielding ``txn`` untouched, or a new transaction it commits/aborts."""
        return nullcontext(txn) if txn is not None else self.env.begin(write=write)

    def _hwm(self, txn: lmdb.Transaction[bytes], log_db: Any, meta_db: Any) -> int:
        """Highest sequence number ever assigned, as seen by ``txn``."""
        hwm = 0
        if meta_db is not None:
            raw = txn.get(_HWM_KEY, db=meta_db)
            hwm = int.from_bytes(raw, "big") if raw is not None else 0
        if log_db is not None:
            cursor = txn.cursor(log_db)
            if cursor.last():
                hwm = max(hwm, int.from_bytes(cursor.key(), "big"))
        return hwm

    @staticmethod
    def _iter_raw(
        txn: lmdb.Transaction[bytes], log_db: Any, from_seq: int
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield raw ``(key, value)`` records with ``key >= _key(from_seq)``."""
        if log_db is None or from_seq > _MAX_SEQ:
            return
        cursor = txn.cursor(log_db)
        if cursor.set_range(_key(max(from_seq, 0))):
            yield from cursor.iternext(keys=True, values=True)

    # -- public API ----------------------------------------------------------------------------

    def append(self, entry: Any, txn: lmdb.Transaction[bytes] | None = None) -> int:
        """Store ``entry`` under the next sequence number and return that number."""
        return self.append_many((entry,), txn)[0]

    def append_many(self, entries: Iterable[Any],
                    txn: lmdb.Transaction[bytes] | None = None) -> list[int]:
        """Store ``entries`` under consecutive new sequence numbers and return them in order.

        All entries are encoded before anything is written, so an unencodable entry raises
        (a ``cbor2`` encoding error) without leaving a partial batch in the caller's txn.
        """
        values = [_encode(e) for e in entries]
        log_db, meta_db = self._writable()
        with self._txn(txn, write=True) as t:
            first = self._hwm(t, log_db, meta_db) + 1
            seqs = list(range(first, first + len(values)))
            if not values:
                return seqs
            _, added = t.cursor(log_db).putmulti(
                [(_key(s), v) for s, v in zip(seqs, values)], append=True
            )
            if added != len(values):
                raise WalError("failed to append: sequence keys out of order")
            t.put(_HWM_KEY, _key(seqs[-1]), db=meta_db)
            return seqs

    def read(
        self, from_seq: int = 1, txn: lmdb.Transaction[bytes] | None = None
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(seq, entry)`` for every stored entry with ``seq >= from_seq``, in order.

        Raises :class:`CorruptEntryError` upon reaching a damaged entry (entries before it
        have already been yielded).  With ``txn=None`` one read transaction spans the whole
        iteration and is released when the iterator is exhausted or closed.
        """
        log_db = self._dbs()[0]
        with self._txn(txn) as t:
            for key, value in self._iter_raw(t, log_db, from_seq):
                yield _decode(key, value)

    def get(self, seq: int, txn: lmdb.Transaction[bytes] | None = None) -> Any:
        """Return the entry stored under ``seq``; ``KeyError`` if there is none."""
        log_db = self._dbs()[0]
        if log_db is None or not 0 <= seq <= _MAX_SEQ:
            raise KeyError(seq)
        with self._txn(txn) as t:
            raw = t.get(_key(seq), db=log_db)
            if raw is None:
                raise KeyError(seq)
            return _decode(_key(seq), raw)[1]

    def first_seq(self, txn: lmdb.Transaction[bytes] | None = None) -> int | None:
        """Lowest stored sequence number, or ``None`` if the log holds no entries."""
        log_db = self._dbs()[0]
        with self._txn(txn) as t:
            for key, _ in self._iter_raw(t, log_db, 0):
                return int.from_bytes(key, "big")
            return None

    def last_seq(self, txn: lmdb.Transaction[bytes] | None = None) -> int:
        """Highest sequence number ever assigned (0 if nothing was ever appended)."""
        log_db, meta_db = self._dbs()
        with self._txn(txn) as t:
            return self._hwm(t, log_db, meta_db)

    def truncate(self, before_seq: int, txn: lmdb.Transaction[bytes] | None = None) -> int:
        """Delete every entry with ``seq < before_seq``; return how many were deleted.

        The high-water mark is left alone, so deleted numbers are never handed out again.
        """
        log_db = self._writable()[0]
        limit = None if before_seq > _MAX_SEQ else _key(max(before_seq, 0))
        deleted = 0
        with self._txn(txn, write=True) as t:
            cursor = t.cursor(log_db)
            cursor.first()
            # cursor.delete() moves on to the next record; an empty key means past the end.
            while cursor.key() and (limit is None or cursor.key() < limit):
                cursor.delete()
                deleted += 1
        return deleted

    def verify(self, txn: lmdb.Transaction[bytes] | None = None) -> list[CorruptEntryError]:
        """Check every stored entry and return the problems found (never raises them)."""
        problems: list[CorruptEntryError] = []
        log_db = self._dbs()[0]
        with self._txn(txn) as t:
            for key, value in self._iter_raw(t, log_db, 0):
                try:
                    _decode(key, value)
                except CorruptEntryError as exc:
                    problems.append(exc)
        return problems

    def __len__(self) -> int:
        """Number of entries currently stored."""
        log_db = self._dbs()[0]
        if log_db is None:
            return 0
        with self.env.begin() as t:
            return int(t.stat(log_db)["entries"])


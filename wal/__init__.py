"""A small, generic write-ahead log stored in an LMDB environment.

Entries are arbitrary CBOR-encodable values kept under strictly increasing 8-byte
big-endian sequence numbers (starting at 1, never reused), each protected by a CRC32.
Appends can join a caller-supplied LMDB write transaction so the log entry and the
caller's own state changes commit atomically.  The module knows nothing about vectors.

    >>> log = WriteAheadLog.open("/tmp/my-wal")          # doctest: +SKIP
    >>> seq = log.append({"op": "put", "id": 7})         # doctest: +SKIP
    >>> list(log.read(seq))                              # doctest: +SKIP
    [(1, {'op': 'put', 'id': 7})]
"""

from ._log import CorruptEntryError, WalError, WriteAheadLog

__all__ = ["CorruptEntryError", "WalError", "WriteAheadLog"]

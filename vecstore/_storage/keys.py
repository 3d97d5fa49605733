"""Key codecs of the LMDB sub-databases, in one place (the tables are
listed in ``env.py``).  Every integer in a key is big-endian, so LMDB's
byte order is numeric order.

========== ===================================================
key        layout
========== ===================================================
u64        rowid, version, segment id: 8 bytes
pid        partition id: 4 bytes (the prefix of ``hist`` and ``vblocks`` keys)
hist       pid · id (utf-8) · 0x00 · version (u64)
chg        version (u64) · pid · id (utf-8): the change feed, by version
vblocks    pid · last rowid (u64) of the block
ix         field id (u16) · tag + encoded value · rowid (u64)
tdocs      field id (u16) · rowid (u64) -> the row's postings (``tdocs_value``)
sparse     rowid (u64) -> the row's sparse vector (``sparse_value``)
========== ===================================================

(The value encodings of an ``ix`` key's middle part are the metadata index's
business: :mod:`vecstore._metaindex.columns`.  ``tdocs`` holds the BM25 text
indexes' postings and document lengths, written in the same transaction as
their rows: :mod:`vecstore._metaindex.textstore`.)
"""

from __future__ import annotations

import struct

import numpy as np

U64 = struct.Struct(">Q")
U32 = struct.Struct(">I")
U16 = struct.Struct(">H")
TOP = b"\xff" * 8  # above every u64 suffix: seek past a prefix's last key


def k64(n: int) -> bytes:
    """A rowid, version or segment id as a key."""
    return U64.pack(n)


def u64(b: bytes | memoryview) -> int:
    return U64.unpack(b)[0]  # type: ignore[no-any-return]


def pid_prefix(pid: int) -> bytes:
    """The prefix every ``hist`` and ``vblocks`` key of partition ``pid`` has."""
    return U32.pack(pid)


# -- hist: pid · id · 0x00 · version ------------------------------------------------------


def hist_prefix(pid: int, rid: str) -> bytes:
    return U32.pack(pid) + rid.encode("utf-8") + b"\x00"


def hist_key(pid: int, rid: str, version: int) -> bytes:
    return hist_prefix(pid, rid) + U64.pack(version)


def split_hist_key(key: bytes) -> tuple[int, str, int]:
    """(pid, id, version) of a ``hist`` key."""
    pid = U32.unpack_from(key)[0]
    return pid, bytes(key[4:-9]).decode("utf-8"), U64.unpack_from(key, len(key) - 8)[0]


# -- chg: version · pid · id (the same entries as ``hist``, ordered by version) ----------


def chg_key(version: int, pid: int, rid: str) -> bytes:
    return U64.pack(version) + U32.pack(pid) + rid.encode("utf-8")


def split_chg_key(key: bytes) -> tuple[int, int, str]:
    """(version, pid, id) of a ``chg`` key."""
    return U64.unpack_from(key)[0], U32.unpack_from(key, 8)[0], bytes(key[12:]).decode("utf-8")


# -- vblocks: pid · last rowid ------------------------------------------------------------


def block_key(pid: int, last_rowid: int) -> bytes:
    return U32.pack(pid) + U64.pack(last_rowid)


def split_block_key(key: bytes | memoryview) -> tuple[int, int]:
    """(pid, last rowid) of a ``vblocks`` key."""
    return U32.unpack_from(key)[0], U64.unpack_from(key, 4)[0]


# -- ix: field id · tag + value · rowid ----------------------------------------------------


def field_prefix(fid: int) -> bytes:
    """The prefix of every ``ix`` key of one indexed field."""
    return U16.pack(fid)


def ix_key(fid: int, body: bytes, rowid: int) -> bytes:
    return U16.pack(fid) + body + U64.pack(rowid)


def split_ix_key(key: bytes) -> tuple[int, bytes, int]:
    """(field id, tag + encoded value, rowid) of an ``ix`` key."""
    return U16.unpack_from(key)[0], bytes(key[2:-8]), U64.unpack(key[-8:])[0]


# -- tdocs: BM25 text indexes --------------------------------------------------------------


def tdocs_key(fid: int, rowid: int) -> bytes:
    return U16.pack(fid) + U64.pack(rowid)


def split_tdocs_key(key: bytes) -> tuple[int, int]:
    """(field id, rowid) of a ``tdocs`` key."""
    return U16.unpack_from(key)[0], U64.unpack_from(key, 2)[0]


def tdocs_value(counts: dict[str, int]) -> bytes:
    """A row's postings: u32 length (terms in the text) · u32 n · n u32 term
    frequencies · the n distinct terms, utf-8, each ended by 0x00."""
    return (U32.pack(sum(counts.values())) + U32.pack(len(counts)) +
            np.fromiter(counts.values(), "<u4", len(counts)).tobytes() +
            "".join(t + "\x00" for t in counts).encode("utf-8"))


def split_tdocs_value(raw: bytes | memoryview) -> tuple[int, list[str], list[int]]:
    """(length, distinct terms, their frequencies) of a ``tdocs`` value."""
    buf = bytes(raw)
    length, n = U32.unpack_from(buf)[0], U32.unpack_from(buf, 4)[0]
    tfs = np.frombuffer(buf, "<u4", n, 8).tolist()
    terms = buf[8 + 4 * n:].decode("utf-8").split("\x00")[:n]
    return length, terms, tfs


# -- sparse: rowid -> u32 count · u32 indices (ascending) · f32 weights (little-endian) -----


def sparse_value(indices: np.ndarray, weights: np.ndarray) -> bytes:
    return (U32.pack(len(indices)) + np.asarray(indices, "<u4").tobytes() +
            np.asarray(weights, "<f4").tobytes())


def split_sparse_value(raw: bytes | memoryview) -> tuple[np.ndarray, np.ndarray]:
    """(indices uint32, weights float32) of a ``sparse`` value."""
    n = U32.unpack_from(raw)[0]
    buf = bytes(raw)
    return (np.frombuffer(buf, "<u4", n, 4).astype(np.int64),
            np.frombuffer(buf, "<f4", n, 4 + 4 * n).astype(np.float32))

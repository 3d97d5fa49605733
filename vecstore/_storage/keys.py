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
========== ===================================================

(The value encodings of an ``ix`` key's middle part are the metadata index's
business: :mod:`vecstore._metaindex.columns`.)
"""

from __future__ import annotations

import struct

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


def split_block_key(key: bytes) -> tuple[int, int]:
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

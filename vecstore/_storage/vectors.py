"""Where the vectors live in LMDB: one value per row until the row is
sealed, then packed blocks.

A vector is 4·dim bytes -- at 384-d, 1.5 KB, so LMDB fits two per 4 KB
page and leaves a quarter of each page empty.  When a seal moves rows out
of a partition's growing segment, :meth:`VectorTable.pack` moves their
vectors from ``vecs`` (one value per rowid) into ``vblocks``: values of
8 or more whole pages each (LMDB overflow pages, sized so that at most 2%
is lost; 21 rows of 384-d in 8 pages), keyed by partition and the block's
last rowid::

    key   pid (u32 BE) · last rowid (u64 BE)
    value count (u32 LE) · rowids (i64 LE, ascending) · vectors (float32)

A seal takes a partition's rows in rowid order, above every row sealed
before, so a partition's blocks cover disjoint rowid ranges and the block
that may hold rowid ``r`` is the first one whose key is >= (pid, r).
Merging segments does not move vectors; compaction's purge takes rows out
of their blocks (:meth:`VectorTable.remove`).  Vectors are the originals
as written (not normalised); they are never changed, only moved.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import lmdb
import numpy as np

from .._errors import CorruptionError
from .env import Storage
from .keys import U32, U64, block_key, k64, pid_prefix, split_block_key

_COUNT = struct.Struct("<I")
_FIRST = struct.Struct("<q")
PAGE = 4096
_OVERHEAD = 16 + _COUNT.size  # LMDB's overflow page header + our row count


def rows_per_block(dim: int) -> int:
    """Rows per block: the fewest pages (8 or more) that the rows fill to
    within 2%, so a look-up copies little and LMDB wastes little."""
    row = 8 + 4 * dim
    for pages in range(8, 65):
        n = (pages * PAGE - _OVERHEAD) // row
        if n >= 1 and pages * PAGE - (_OVERHEAD + n * row) <= 0.02 * pages * PAGE:
            return n
    return max(1, (64 * PAGE - _OVERHEAD) // row)


def worth_a_block(n: int, dim: int) -> bool:
    """Do ``n`` rows fill a block's pages at least as well as one value per
    row fills a page (LMDB puts ``4096 // (4*dim + 24)`` of those in one)?"""
    row = 4 * dim + 24
    per_page = max(1, (PAGE - 16) // row)
    single_fill = per_page * row / PAGE if row <= 2000 else row / (PAGE * -(-(row + 16) // PAGE))
    raw = _OVERHEAD + n * (8 + 4 * dim)
    return n > 1 and raw / (PAGE * -(-raw // PAGE)) >= single_fill


def encode_block(rowids: np.ndarray, mat: np.ndarray) -> bytes:
    return (_COUNT.pack(len(rowids)) + rowids.astype("<i8").tobytes()
            + np.ascontiguousarray(mat, dtype=np.float32).tobytes())


def decode_block(raw: bytes | memoryview, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    n = _COUNT.unpack_from(raw)[0]
    end = _COUNT.size + 8 * n
    if dim is None and n:
        dim = (len(raw) - end) // (4 * n)
    dim = dim or 0
    if n == 0 or len(raw) != end + 4 * dim * n:
        raise CorruptionError(f"vector block of {n} rows has {len(raw)} bytes, expected "
                              f"{end + 4 * dim * n} (dimension {dim})")
    rowids = np.frombuffer(raw, "<i8", n, _COUNT.size).astype(np.int64)
    return rowids, np.frombuffer(raw, np.float32, n * dim, end).reshape(n, dim)


class VectorTable:
    """Vector look-ups (and, in a write transaction, moves) in one txn."""

    def __init__(self, storage: Storage, txn: lmdb.Transaction, dim: int | None,
                 zero_copy: bool = False) -> None:
        """``zero_copy``: read blocks through a second, newer read
        transaction that returns buffers into the map instead of copies.
        Only for rows visible at a version the caller has pinned: a row's
        vector never changes, only moves, and is removed only when no
        retained version or open snapshot can see it."""
        self.storage = storage
        self.txn = txn
        self.zero_copy = zero_copy
        self.dim = dim
        self.vecs = storage.db("vecs")
        self.blocks = storage.db("vblocks")
        # the last block read: (pid, rowids, vectors) -- scans and look-ups of
        # neighbouring rows reuse it instead of copying the block again
        self._last: tuple[int, np.ndarray, np.ndarray] | None = None

    # -- reads ----------------------------------------------------------------

    def get(self, pid: int, rowid: int) -> np.ndarray | None:
        """One row's vector (a copy), or None if it has none."""
        if self.vecs is not None:
            raw = self.txn.get(k64(rowid), db=self.vecs)
            if raw is not None:
                return np.frombuffer(raw, np.float32).copy()
        found = self._block_of(pid, rowid)
        if found is None:
            return None
        rowids, mat = found
        i = int(np.searchsorted(rowids, rowid))
        return mat[i].copy() if i < rowids.size and rowids[i] == rowid else None

    def many(self, pid: int, rowids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found, vectors): the vectors of those of ``rowids`` that have one,
        in the given order; ``found`` is a boolean mask over ``rowids``."""
        rowids = np.asarray(rowids, np.int64)
        assert self.dim is not None
        n = rowids.size
        found = np.zeros(n, bool)
        if n == 0:
            return found, np.empty((0, self.dim), np.float32)
        order = np.argsort(rowids, kind="stable")
        out = np.empty((n, self.dim), np.float32)
        if self.blocks is not None:
            if self.zero_copy:
                with self.storage.begin_buffers() as txn:
                    self._gather(txn or self.txn, pid, rowids, order, out, found)
                if not found.all():  # (a row the newer transaction no longer has)
                    self._gather(self.txn, pid, rowids, order[~found[order]], out, found)
            else:
                self._gather(self.txn, pid, rowids, order, out, found)
        if not found.all() and self.vecs is not None:
            get, db = self.txn.get, self.vecs
            for i in np.flatnonzero(~found).tolist():
                raw = get(k64(int(rowids[i])), db=db)
                if raw is not None:
                    out[i] = np.frombuffer(raw, np.float32)
                    found[i] = True
        if found.all():
            return found, out
        return found, out[found]

    def _gather(self, txn: lmdb.Transaction, pid: int, rowids: np.ndarray, order: np.ndarray,
                out: np.ndarray, found: np.ndarray) -> None:
        """Copy the block-held vectors of ``rowids[order]`` into ``out``."""
        hits: list[int] = []
        parts: list[bytes | memoryview] = []
        self._from_blocks(txn, pid, rowids, order, hits, parts)
        if hits:
            idx = np.asarray(hits, np.int64)
            out[idx] = np.frombuffer(b"".join(parts), np.float32).reshape(idx.size, -1)
            found[idx] = True

    def _from_blocks(self, txn: lmdb.Transaction, pid: int, rowids: np.ndarray,
                     order: np.ndarray, hits: list[int], parts: list[bytes | memoryview]
                     ) -> None:
        """Walk ``rowids`` in ascending order (``order``), one cursor seek per
        block, collecting (position, vector bytes) of the rows found."""
        assert self.dim is not None
        rb = 4 * self.dim
        lo = hi = -1
        val: bytes | memoryview = b""
        base = 0
        brow: np.ndarray | None = None
        prefix = pid_prefix(pid)
        rl = rowids.tolist()
        unpack_pid, unpack_count, unpack_rowid = U32.unpack_from, _COUNT.unpack_from, \
            _FIRST.unpack_from
        add_hit, add_part = hits.append, parts.append
        with txn.cursor(db=self.blocks) as cur:
            seek, key, value = cur.set_range, cur.key, cur.value
            for i in order.tolist():
                r = rl[i]
                if r > hi:
                    if not seek(prefix + U64.pack(r)) or unpack_pid(key())[0] != pid:
                        return  # no block at or above r
                    val = value()
                    cnt = unpack_count(val)[0]
                    base = 4 + 8 * cnt
                    lo = unpack_rowid(val, 4)[0]
                    hi = unpack_rowid(val, base - 8)[0]
                    brow = None if hi - lo + 1 == cnt else np.frombuffer(val, "<i8", cnt, 4)
                    if len(val) != base + rb * cnt:
                        raise CorruptionError(f"vector block of {cnt} rows has {len(val)} "
                                              f"bytes, expected {base + rb * cnt}")
                if r < lo:
                    continue
                if brow is None:
                    slot = r - lo
                else:
                    slot = int(np.searchsorted(brow, r))
                    if brow[slot] != r:
                        continue
                add_hit(i)
                add_part(val[base + slot * rb : base + slot * rb + rb])

    def require(self, pid: int, rowids: np.ndarray) -> np.ndarray:
        """Vectors of ``rowids``, every one of which must exist."""
        found, mat = self.many(pid, rowids)
        if not found.all():
            bad = np.asarray(rowids)[~found][:5].tolist()
            raise CorruptionError(f"rows {bad} of partition {pid} have no vector in the store")
        return mat

    def _block_of(self, pid: int, rowid: int) -> tuple[np.ndarray, np.ndarray] | None:
        last = self._last
        if last is not None and last[0] == pid and last[1][0] <= rowid <= last[1][-1]:
            return last[1], last[2]
        if self.blocks is None:
            return None
        with self.txn.cursor(db=self.blocks) as cur:
            if not cur.set_range(block_key(pid, rowid)):
                return None
            key = cur.key()
            if split_block_key(key)[0] != pid:
                return None
            rowids, mat = decode_block(cur.value(), self.dim)
        self._last = (pid, rowids, mat)
        return rowids, mat

    def blocks_of(self, pid: int) -> Iterable[tuple[bytes, np.ndarray, np.ndarray]]:
        """Every block of a partition: (key, rowids, vectors)."""
        if self.blocks is None:
            return
        prefix = pid_prefix(pid)
        with self.txn.cursor(db=self.blocks) as cur:
            if not cur.set_range(prefix):
                return
            for key, raw in cur:
                if bytes(key[:4]) != prefix:
                    break
                rowids, mat = decode_block(raw, self.dim)
                yield bytes(key), rowids, mat

    # -- moves (write transactions only) -----------------------------------------

    def write(self, pid: int, r0: int, mat: np.ndarray) -> None:
        """Store new rows ``r0, r0+1, ...`` of a batch: whole blocks where
        they fill their pages, one value per row for the rest (packed when
        the rows are sealed)."""
        assert self.dim is not None
        n = mat.shape[0]
        step = rows_per_block(self.dim)
        singles: list[tuple[bytes, bytes]] = []
        for s in range(0, n, step):
            e = min(n, s + step)
            if worth_a_block(e - s, self.dim):
                ids = np.arange(r0 + s, r0 + e, dtype=np.int64)
                self.txn.put(block_key(pid, r0 + e - 1), encode_block(ids, mat[s:e]),
                             db=self.blocks)
            else:
                singles.extend((k64(r0 + j), mat[j].tobytes()) for j in range(s, e))
        if singles:
            with self.txn.cursor(db=self.vecs) as c:
                c.putmulti(singles, append=True)

    def pack(self, pid: int, rowids: np.ndarray) -> None:
        """Move the ``vecs`` values of ascending ``rowids`` into blocks.
        Rows already in a block are skipped; a new block never spans an
        existing one, and rows too few to fill a block's pages stay."""
        if rowids.size == 0:
            return
        assert self.dim is not None
        txn, vecs = self.txn, self.vecs
        keep: list[int] = []
        rows: list[bytes | memoryview] = []
        for r in rowids.tolist():
            raw = txn.get(k64(r), db=vecs)
            if raw is not None:
                keep.append(r)
                rows.append(raw)
        step = rows_per_block(self.dim)
        s = 0
        while s < len(keep):
            bound = self._next_block_first(pid, keep[s])
            e = s
            while e < len(keep) and e - s < step and keep[e] < bound:
                e += 1
            e = max(e, s + 1)
            if worth_a_block(e - s, self.dim):
                ids = np.asarray(keep[s:e], np.int64)
                mat = np.frombuffer(b"".join(rows[s:e]), np.float32).reshape(e - s, self.dim)
                txn.put(block_key(pid, keep[e - 1]), encode_block(ids, mat), db=self.blocks)
                for r in keep[s:e]:
                    txn.delete(k64(r), db=vecs)
            s = e
        self._last = None

    def _next_block_first(self, pid: int, rowid: int) -> int:
        """First rowid of the partition's next block above ``rowid`` (or a
        bound above every rowid)."""
        with self.txn.cursor(db=self.blocks) as cur:
            if cur.set_range(block_key(pid, rowid)) and split_block_key(cur.key())[0] == pid:
                return int(_FIRST.unpack_from(cur.value(), _COUNT.size)[0])
        return 2**63 - 1

    def remove(self, pid: int, rowids: Iterable[int]) -> None:
        """Delete the vectors of ``rowids`` wherever they are."""
        txn = self.txn
        rest = []
        for r in rowids:
            if not txn.delete(k64(r), db=self.vecs):
                rest.append(r)
        if not rest or self.blocks is None:
            return
        rest.sort()
        self._last = None
        pos = 0
        with txn.cursor(db=self.blocks) as cur:
            while pos < len(rest):
                if not cur.set_range(block_key(pid, rest[pos])):
                    break
                key = bytes(cur.key())
                if split_block_key(key)[0] != pid:
                    break
                brow, bmat = decode_block(cur.value(), self.dim)
                last = int(brow[-1])
                end = pos
                while end < len(rest) and rest[end] <= last:
                    end += 1
                keep = ~np.isin(brow, np.asarray(rest[pos:end], np.int64))
                pos = end
                if keep.all():
                    continue
                cur.delete()
                if keep.any():
                    txn.put(block_key(pid, int(brow[keep][-1])),
                            encode_block(brow[keep], bmat[keep]), db=self.blocks)
        self._last = None

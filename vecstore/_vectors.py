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

from ._errors import CorruptionError
from ._storage import Storage, k64, u64

_COUNT = struct.Struct("<I")
_PID = struct.Struct(">I")
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


def block_key(pid: int, last_rowid: int) -> bytes:
    return _PID.pack(pid) + k64(last_rowid)


def encode_block(rowids: np.ndarray, mat: np.ndarray) -> bytes:
    return (_COUNT.pack(len(rowids)) + rowids.astype("<i8").tobytes()
            + np.ascontiguousarray(mat, dtype=np.float32).tobytes())


def decode_block(raw: bytes, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
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

    def __init__(self, storage: Storage, txn: lmdb.Transaction, dim: int | None) -> None:
        self.txn = txn
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
        out = np.empty((rowids.size, self.dim), np.float32)
        found = np.zeros(rowids.size, bool)
        missing = []
        if self.vecs is not None:
            get, db = self.txn.get, self.vecs
            for i, r in enumerate(rowids.tolist()):
                raw = get(k64(r), db=db)
                if raw is None:
                    missing.append(i)
                else:
                    out[i] = np.frombuffer(raw, np.float32)
                    found[i] = True
        else:
            missing = list(range(rowids.size))
        if missing and self.blocks is not None:
            todo = np.asarray(missing, np.int64)
            todo = todo[np.argsort(rowids[todo], kind="stable")]
            pos = 0
            while pos < todo.size:
                got = self._block_of(pid, int(rowids[todo[pos]]))
                if got is None:
                    break  # nothing at or above this rowid
                brow, bmat = got
                # every wanted rowid up to this block's last one
                stop = pos + int(np.searchsorted(rowids[todo[pos:]], brow[-1], side="right"))
                want = rowids[todo[pos:stop]]
                at = np.minimum(np.searchsorted(brow, want), brow.size - 1)
                hit = brow[at] == want
                idx = todo[pos:stop][hit]
                out[idx] = bmat[at[hit]]
                found[idx] = True
                pos = stop
        if found.all():
            return found, out
        return found, out[found]

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
            if _PID.unpack_from(key)[0] != pid:
                return None
            rowids, mat = decode_block(cur.value(), self.dim)
        self._last = (pid, rowids, mat)
        return rowids, mat

    def blocks_of(self, pid: int) -> Iterable[tuple[bytes, np.ndarray, np.ndarray]]:
        """Every block of a partition: (key, rowids, vectors)."""
        if self.blocks is None:
            return
        prefix = _PID.pack(pid)
        with self.txn.cursor(db=self.blocks) as cur:
            if not cur.set_range(prefix):
                return
            for key, raw in cur:
                if not key.startswith(prefix):
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
        rows: list[bytes] = []
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
            if cur.set_range(block_key(pid, rowid)) and _PID.unpack_from(cur.key())[0] == pid:
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
                if _PID.unpack_from(key)[0] != pid:
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


def block_rowids(key: bytes) -> tuple[int, int]:
    """(pid, last rowid) of a block key."""
    return _PID.unpack_from(key)[0], u64(key[4:])

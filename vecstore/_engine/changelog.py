"""The change feed's index: ``chg`` (version · pid · id → rowid, or b"" for
a deletion) holds the same entries as ``hist``, ordered by version, so the
changes after a version are one cursor range instead of a scan of all
history.

Every write puts its ``chg`` entries in the transaction that puts its
``hist`` entries (:class:`.txn.TxnCtx`), so the two never disagree, across
kill -9 and power loss.  Stores written before the table existed are
*backfilled* from ``hist`` when a writer opens them (:func:`backfill`, in
transactions of bounded size; ``meta["chg"]`` records that it finished; a
kill restarts it, and the puts are idempotent).  Compaction drops entries
at or below its floor (:func:`purge_step`): ``changes(since=v)`` needs
only entries above ``v``, and ``v`` is never below the floor.
"""

from __future__ import annotations

import lmdb

from .._storage.env import Storage
from .._storage.keys import chg_key, k64, split_hist_key
from .versions import floor_version

MARK = "chg"  # meta key: 1 once every retained hist entry has its chg entry


def ready(st: Storage, txn: lmdb.Transaction) -> bool:
    """Does ``chg`` cover every retained change (else read ``hist``)?"""
    return st.db("chg") is not None and bool(st.get_meta(txn, MARK, 0))


def backfill(st: Storage, limit: int = 20000) -> int:
    """Give every retained ``hist`` entry its ``chg`` entry (writer, at
    open, before any write); returns how many were put."""
    with st.read() as txn:
        if ready(st, txn):
            return 0
    resume: list[bytes | None] = [None]
    total = [0]

    def step(txn: lmdb.Transaction) -> bool:
        floor = floor_version(st, txn)
        hist, chg = st.db("hist"), st.db("chg")
        puts: list[tuple[bytes, bytes]] = []
        with txn.cursor(db=hist) as cur:
            more = cur.set_range(resume[0]) if resume[0] else cur.first()
            resume[0] = None
            seen = 0
            while more:
                key = cur.key()
                if seen >= limit:
                    resume[0] = bytes(key)
                    break
                seen += 1
                pid, rid, ver = split_hist_key(bytes(key))
                if ver > floor:
                    puts.append((chg_key(ver, pid, rid), bytes(cur.value())))
                more = cur.next()
        for key, val in puts:
            txn.put(key, val, db=chg)
        total[0] += len(puts)
        if resume[0] is None:
            st.put_meta(txn, MARK, 1)
            return False
        return True

    while st.write(step):
        pass
    return total[0]


def purge_step(st: Storage, txn: lmdb.Transaction, floor: int, limit: int) -> bool:
    """Delete up to ``limit`` ``chg`` entries at or below ``floor``; True if
    more may remain."""
    db = st.db("chg")
    if db is None:
        return False
    end = k64(floor + 1)
    n = 0
    with txn.cursor(db=db) as cur:
        while cur.first() and bytes(cur.key()[:8]) < end:
            if n >= limit:
                return True
            cur.delete()
            n += 1
    return False


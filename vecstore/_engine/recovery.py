"""Recovery: rebuild the in-memory partitions from LMDB.

1. the partition registry;
2. the segment manifest: each sealed segment's rows (from ``segrows``) and
   its index file, checked against the CRC in the manifest (a missing or
   damaged file is rebuilt from the vectors in LMDB, the source of truth);
3. the ``died`` table, applied to every segment;
4. the WAL tail: rows added after each partition's last sealed row form
   the growing segments (vectors read back from LMDB).

The same code serves ``refresh()`` in read-only processes, reusing the
indexes already loaded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2
import lmdb
import numpy as np

from wal import WriteAheadLog

from .._errors import CorruptionError
from .._index import AnnIndex, entry_kind, entry_params, kind_named
from .._segments.segment import INF, GrowingSegment, SealedSegment, prepare
from .._storage.env import Storage
from .._storage.files import file_crc
from .._storage.keys import k64, u64
from .._storage.records import Reader
from .._types import Distance
from .jobs import write_index_file
from .state import PartMem

log = logging.getLogger("vecstore")


@dataclass
class Loaded:
    parts: dict[str, PartMem]
    repaired: list[tuple[int, dict[str, Any], AnnIndex]] = field(default_factory=list)
    last_seq: int = 0
    vectors_read: int = 0  # sealed rows whose vectors were read back from LMDB


def _died_table(txn: lmdb.Transaction[bytes], db: Any) -> tuple[np.ndarray, np.ndarray]:
    if db is None:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    n = txn.stat(db)["entries"]
    keys = np.empty(n, np.int64)
    vals = np.empty(n, np.int64)
    i = 0
    for k, v in txn.cursor(db=db):
        keys[i] = u64(k)
        vals[i] = u64(v)
        i += 1
    return keys[:i], vals[:i]


def died_for(rowids: np.ndarray, keys: np.ndarray, vals: np.ndarray) -> np.ndarray:
    died = np.full(len(rowids), INF, np.int64)
    if keys.size and rowids.size:
        pos = np.minimum(np.searchsorted(keys, rowids), keys.size - 1)
        hit = keys[pos] == rowids
        died[hit] = vals[pos[hit]]
    return died


def open_index(st: Storage, distance: Distance, entry: Mapping[str, Any], reader: Reader,
               rowids: np.ndarray) -> AnnIndex | None:
    """Load a segment file through its kind if it is intact, else None.  A
    kind that keeps no vectors in its file gets them from LMDB, a chunk at a
    time."""
    path = st.segment_path(entry["file"])
    try:
        kind = kind_named(entry_kind(entry))
        if file_crc(path) != entry["crc"]:
            log.warning("segment file %s fails its checksum; rebuilding it from LMDB", path)
            return None

        def fetch(labels: np.ndarray) -> np.ndarray:
            return prepare(reader.vectors(entry["pid"], rowids[labels], entry["dim"]), distance)

        return kind.load(path, distance, entry["dim"], entry["n"], entry, fetch)
    except (OSError, RuntimeError, CorruptionError) as exc:
        log.warning("segment file %s unreadable (%s); rebuilding it from LMDB", path, exc)
        return None


def rebuild_index(distance: Distance, seg_id: int, entry: Mapping[str, Any], vecs: np.ndarray
                  ) -> AnnIndex:
    """A segment's index built again from its (prepared) vectors, with the
    kind and parameters its manifest entry records."""
    kind = kind_named(entry_kind(entry))
    return kind.build(vecs, distance, entry_params(entry), os.cpu_count() or 1,
                      seed=seg_id & 0x7FFFFFFF)


def load(st: Storage, wal: WriteAheadLog, txn: lmdb.Transaction[bytes], dim: int | None,
         distance: Distance, reuse: Mapping[int, Any]) -> Loaded:
    """The partitions as committed in ``txn`` (``reuse``: indexes already
    loaded, by segment id)."""
    out = Loaded({})
    if st.db("parts") is None:
        return out
    by_pid: dict[int, PartMem] = {}
    for key, val in txn.cursor(db=st.db("parts")):
        d = cbor2.loads(val)
        pm = PartMem(d["pid"], bytes(key).decode(), d["live"])
        pm.upto = st.get_meta(txn, f"upto:{pm.pid}", -1)
        out.parts[pm.name] = by_pid[pm.pid] = pm
    dkeys, dvals = _died_table(txn, st.db("died"))
    reader = Reader(st, txn)
    for key, val in txn.cursor(db=st.db("segs")):
        seg_id, entry = u64(key), cbor2.loads(val)
        n = entry["n"]
        segrows = txn.get(key, db=st.db("segrows"))
        if segrows is None:
            raise CorruptionError(f"segment {seg_id} is in the manifest without its row list")
        cols = np.frombuffer(segrows, dtype="<i8")
        rowids, born = cols[:n].astype(np.int64), cols[n : 2 * n].astype(np.int64)
        index = reuse.get(seg_id)
        if index is None:
            out.vectors_read += n
            index = open_index(st, distance, entry, reader, rowids)
        if index is None:
            vecs = prepare(reader.vectors(entry["pid"], rowids, entry["dim"]), distance)
            index = rebuild_index(distance, seg_id, entry, vecs)
            out.repaired.append((seg_id, entry, index))
        pm = by_pid[entry["pid"]]
        pm.sealed.append(SealedSegment(seg_id, pm.pid, index, rowids, born,
                                       died_for(rowids, dkeys, dvals), entry["file"]))
        pm.upto = max(pm.upto, entry["upto"])
    # The WAL tail: rows not yet sealed.
    pending: dict[int, list[tuple[int, int, int, int]]] = {}
    for seq, entry in wal.read(1, txn=txn):
        out.last_seq = seq
        for pid, r0, n in entry["a"]:
            pm = by_pid[pid]
            lo = max(r0, pm.upto + 1)
            if lo < r0 + n:
                pending.setdefault(pid, []).append((lo, r0 + n, entry["v"], seq))
    for pid, ranges in pending.items():
        pm = by_pid[pid]
        assert dim is not None
        g = GrowingSegment(pid, dim, distance,
                           sum(hi - lo for lo, hi, _v, _s in ranges))
        for lo, hi, v, seq in ranges:
            rowids, raw = reader.existing_vectors(pid, np.arange(lo, hi, dtype=np.int64),
                                                  dim)
            if rowids.size:
                g.append(rowids, np.full(rowids.size, v, np.int64), prepare(raw, distance))
            pm.adds.append((lo, hi - 1, seq))
        g.died[: g.n] = died_for(g.rowids[: g.n], dkeys, dvals)
        g.n_dead = int((g.died[: g.n] != INF).sum())
        pm.growing = g
    out.last_seq = max(out.last_seq, wal.last_seq(txn=txn))
    return out


def save_repairs(st: Storage, repaired: list[tuple[int, dict[str, Any], AnnIndex]]) -> None:
    """Write the segment files load() rebuilt, and their manifest entries."""
    for seg_id, entry, index in repaired:
        entry = dict(entry, kind=index.kind, params=entry_params(entry), **index.manifest())
        entry["crc"] = write_index_file(index, st.segment_path(entry["file"]))
        st.write(lambda txn, e=entry, s=seg_id: txn.put(k64(s), cbor2.dumps(e),
                                                         db=st.db("segs")))

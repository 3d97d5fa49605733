"""Store-level helpers shared by the sync and async stores: statistics,
partition listing, and online backup."""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict
from typing import Any

import cbor2
import lmdb

from .._engine.engine import Engine
from .._engine.state import State
from .._errors import DestinationExistsError
from .._index.stats import index_stats
from .._query.snapshot import DEFAULT
from .._storage.files import fsync_path
from .._types import Stats


def partition_names(state: State) -> list[str]:
    names = {ps.name for ps in state.parts.values() if ps.live}
    names.add(DEFAULT)
    return sorted(names)


def make_stats(engine: Engine) -> Stats:
    state = engine.state
    v = state.version
    counts = {ps.name: ps.count_visible(v) for ps in state.parts.values() if ps.live}
    counts.setdefault(DEFAULT, 0)
    sealed = sum(len(ps.sealed) for ps in state.parts.values())
    growing = sum(ps.growing_rows for ps in state.parts.values())
    return Stats(
        total_vectors=sum(counts.values()),
        dimension=state.dim,
        distance=state.distance.value,
        partitions=dict(sorted(counts.items())),
        version=v,
        bytes_on_disk=engine.storage.bytes_on_disk(),
        sealed_segments=sealed,
        growing_vectors=growing,
        indexing_pending=growing > 0,
        path=engine.storage.path,
        read_only=engine.read_only,
        extra={"commits": engine.commits, "write_calls": engine.write_calls,
               "wal_seq": engine.last_seq},
        index=_index(engine, state),
    )


def _index(engine: Engine, state: State) -> dict[str, Any]:
    """``stats().index``: the settings new segments are built with, and per
    live partition what its segments are and hold in RAM."""
    out = index_stats({n: ps for n, ps in state.parts.items() if ps.live})
    cfg = engine.config
    q = cfg.quantization
    out["settings"] = {"index_kind": cfg.index_kind,
                       "quantization": q if q is None or isinstance(q, str) else asdict(q),
                       "hnsw_m": cfg.hnsw_m, "ef_construction": cfg.ef_construction}
    return out


def backup_store(engine: Engine, dest: str) -> None:
    """Consistent online copy: LMDB is copied inside one read transaction
    (``env.copy``); the segment files its manifest names are immutable and
    held against deletion until they are copied."""
    if os.path.exists(dest) and os.listdir(dest):
        raise DestinationExistsError(f"backup destination {dest!r} exists and is not empty")
    os.makedirs(os.path.join(dest, "segments"), exist_ok=True)
    with engine.hold_files():
        engine.storage.env.copy(dest)
        env = lmdb.open(dest, readonly=True, max_dbs=16, lock=False, subdir=True)
        try:
            with env.begin() as txn:
                segs = env.open_db(b"segs", txn=txn, create=False)
                files = [cbor2.loads(v)["file"] for _k, v in txn.cursor(db=segs)]
        finally:
            env.close()
        for name in files:
            shutil.copyfile(engine.storage.segment_path(name),
                            os.path.join(dest, "segments", name))
            with open(os.path.join(dest, "segments", name), "rb+") as f:
                os.fsync(f.fileno())
    fsync_path(os.path.join(dest, "segments"))
    fsync_path(dest)

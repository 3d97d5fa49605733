"""Opening read views on an engine: a pinned snapshot at a version (or
tag), and one record's history."""

from __future__ import annotations

import weakref
from typing import Any

from .._engine.engine import Engine
from .._engine.versions import check_retained, history, resolve_tag
from .._errors import InvalidArgumentTypeError
from .._types import RecordVersion
from .._validate import check_id
from .snapshot import Snapshot


def open_snapshot(engine: Engine, version: int | None, tag: str | None,
                  partition: str) -> Snapshot:
    """A snapshot pinned at ``version`` (or the tagged one, or the latest):
    compaction keeps every row it can see until it is garbage-collected."""
    state = engine.state
    if tag is not None:
        if version is not None:
            raise InvalidArgumentTypeError("pass version= or tag=, not both")
        with engine.storage.read() as txn:
            version = resolve_tag(engine.storage, txn, tag)
    if version is not None and version != state.version:
        with engine.storage.read() as txn:
            check_retained(engine.storage, txn, version)
    snap = Snapshot(engine, state, version, partition)
    engine.pins.pin(snap.version)
    weakref.finalize(snap, engine.pins.unpin, snap.version)
    return snap


def record_history(engine: Engine, partition: str, id: Any) -> list[RecordVersion]:
    """Every retained version that changed the record, oldest first."""
    rid = check_id(id)
    pm = engine.state.parts.get(partition)
    if pm is None:
        return []
    with engine.storage.read() as txn:
        return history(engine.storage, txn, pm.pid, rid)

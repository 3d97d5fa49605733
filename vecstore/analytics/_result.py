"""Analysis results and writing them back into the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import InvalidArgumentError, InvalidArgumentTypeError, VecStoreError

CHUNK = 4096  # records read per get_many while preparing a write-back


class WriteBackConflictError(VecStoreError):
    """``on_changed="error"``: records changed since the analysed snapshot."""

    def __init__(self, changed: list[str]) -> None:
        self.changed = changed
        shown = ", ".join(repr(c) for c in changed[:5])
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        super().__init__(f"{len(changed)} record(s) changed since the analysed snapshot: "
                         f"{shown}{more}; nothing was written")


@dataclass
class WriteBack:
    """What :meth:`AnalysisResult.write_back` did."""

    version: int | None  # the new version (None: nothing to write)
    written: int
    skipped: list[str] = field(default_factory=list)  # changed or deleted since the snapshot


@dataclass
class AnalysisResult:
    """One analysis of one snapshot.

    ``labels`` maps record ids to ints (a cluster, ``-1`` = DBSCAN noise; for
    detectors ``1`` = outlier, ``0`` = inlier); ``scores`` maps ids to floats
    (detectors: higher = more anomalous).  ``version`` and ``partition`` name
    the snapshot read; ``backend`` the library that did the work.
    """

    kind: str
    version: int
    partition: str
    ids: list[str]
    labels: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    backend: str = "sklearn"
    params: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    _snapshot: Any = field(default=None, repr=False, compare=False)

    @property
    def n_clusters(self) -> int:
        """Distinct labels other than ``-1`` (noise)."""
        return len({v for v in self.labels.values() if v != -1})

    @property
    def outliers(self) -> list[str]:
        """Ids labelled ``1`` by a detector, most anomalous first."""
        out = [i for i, v in self.labels.items() if v == 1]
        return sorted(out, key=lambda i: -self.scores.get(i, 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version, "partition": self.partition,
                "backend": self.backend, "params": self.params, "info": self.info,
                "labels": self.labels, "scores": self.scores}

    def write_back(self, store: Any, field: str = "cluster", *, values: str | None = None,
                   on_changed: str = "skip", message: str | None = None) -> WriteBack:
        """Write ``labels`` (or ``values="scores"``) into each record's
        metadata under ``field``, as ONE new version (one ``upsert_many``).

        Each record is rewritten with its vector and metadata as of the
        analysed snapshot, plus ``field``.  A record changed (upserted again
        or deleted) since that snapshot is not the record that was analysed:
        with ``on_changed="skip"`` (default) it is left alone and listed in
        ``WriteBack.skipped``; ``"error"`` raises
        :class:`WriteBackConflictError` and writes nothing; ``"overwrite"``
        writes the snapshot's record plus the field anyway (undoing the later
        change, re-creating a deleted record).  The check reads the latest
        version just before the write: a write by another caller landing in
        between is not seen.  ``store.rollback(result_version - 1)`` (or to
        any earlier version) undoes the write-back.
        """
        if not isinstance(field, str) or not field:
            raise InvalidArgumentTypeError("field must be a non-empty str")
        if on_changed not in ("skip", "error", "overwrite"):
            raise InvalidArgumentError("on_changed must be 'skip', 'error' or 'overwrite'")
        which = values or ("labels" if self.labels else "scores")
        if which not in ("labels", "scores"):
            raise InvalidArgumentError("values must be 'labels' or 'scores'")
        data: dict[str, Any] = self.labels if which == "labels" else self.scores
        if not data:
            raise InvalidArgumentError(f"this {self.kind} result has no {which}")
        target = _target(store, self.partition)
        snap = self._snapshot
        if snap is None or snap.version != self.version:
            snap = target.snapshot(version=self.version)
        latest = target.snapshot()
        ids = [i for i in self.ids if i in data]
        up_ids: list[str] = []
        up_vecs: list[np.ndarray] = []
        up_meta: list[dict[str, Any]] = []
        skipped: list[str] = []
        for s in range(0, len(ids), CHUNK):
            part = ids[s:s + CHUNK]
            then = snap.get_many(part)
            now = latest.get_many(part)
            for rid, a, b in zip(part, then, now):
                if a is None:  # (cannot happen: the result was read from snap)
                    continue
                changed = b is None or (b.version != a.version and not _same(a, b))
                if changed and on_changed != "overwrite":
                    skipped.append(rid)
                    continue
                up_ids.append(rid)
                up_vecs.append(a.vector)
                up_meta.append({**a.metadata, field: _plain(data[rid])})
        if skipped and on_changed == "error":
            raise WriteBackConflictError(skipped)
        if not up_ids:
            return WriteBack(None, 0, skipped)
        msg = message or f"analytics: {self.kind} -> {field} (from version {self.version})"
        version = target.upsert_many(ids=up_ids, vectors=np.stack(up_vecs), metadata=up_meta,
                                     message=msg)
        return WriteBack(int(version), len(up_ids), skipped)


def _same(a: Any, b: Any) -> bool:
    """Same content (a rollback rewrites records unchanged, as new versions)."""
    return a.metadata == b.metadata and np.array_equal(a.vector, b.vector)


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _target(store: Any, partition: str) -> Any:
    """The writable view of ``store`` holding ``partition``."""
    if not hasattr(store, "upsert_many") or not hasattr(store, "snapshot"):
        raise InvalidArgumentTypeError(
            f"write_back needs a VecStore or partition view, got {type(store).__name__}")
    import inspect

    if inspect.iscoroutinefunction(store.upsert_many):
        raise InvalidArgumentTypeError(
            "write_back is synchronous: for an AsyncVecStore call it in a thread "
            "(trio.to_thread.run_sync) on a VecStore of the same directory")
    name = getattr(store, "name", partition)
    if name == partition:
        return store
    if callable(getattr(store, "partitions", None)) and hasattr(store, "partition"):
        return store.partition(partition)  # the store itself: reach the partition
    raise InvalidArgumentError(
        f"the result is of partition {partition!r}, not of the view {name!r}")

"""What every analysis reads: a pinned snapshot, and its vectors.

``resolve`` turns whatever the caller passed -- a ``VecStore``, a partition
view, a ``Snapshot`` (``store.snapshot(version=...)``, a snapshot's
``partition(name)``) or an ``AsyncSnapshot`` -- into one sync
:class:`~vecstore.Snapshot`.  A store or view is read through a snapshot it
opens itself, pinned, so compaction keeps every row the analysis sees while
writes go on; ``Source.version`` is the version the result names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import InvalidArgumentError, InvalidArgumentTypeError
from .._query.snapshot import Snapshot
from .._segments.segment import prepare
from .._types import Distance

Progress = Callable[[int, int], None]
INSTALL_HINT = "pip install 'vecstore[analytics]'"


def need(module: str) -> Any:
    """Import an optional dependency (scikit-learn, faiss, scipy) or say how
    to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        pkg = {"sklearn": "scikit-learn", "faiss": "faiss-cpu"}.get(top, top)
        raise ImportError(f"vecstore.analytics needs {pkg} ({INSTALL_HINT}): {exc}") from exc


def have(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def to_snapshot(source: Any) -> Snapshot:
    """A pinned sync snapshot of ``source`` (see the module docstring)."""
    if isinstance(source, Snapshot):
        return source
    inner = getattr(source, "sync", None)  # AsyncSnapshot
    if isinstance(inner, Snapshot):
        return inner
    snap = getattr(source, "snapshot", None)
    if callable(snap) and not _is_async(source):
        out = snap()
        if isinstance(out, Snapshot):
            return out
    if _is_async(source):
        raise InvalidArgumentTypeError(
            "an AsyncVecStore or async partition view: pass `await store.snapshot()` "
            "(an AsyncSnapshot) and run the analysis in a thread "
            "(trio.to_thread.run_sync)")
    raise InvalidArgumentTypeError(
        "expected a VecStore, a partition view, a Snapshot or an AsyncSnapshot, got "
        f"{type(source).__name__}")


def _is_async(obj: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(getattr(obj, "snapshot", None))


@dataclass
class Source:
    """The rows an analysis works on."""

    snapshot: Snapshot
    ids: list[str]
    vectors: np.ndarray  # original float32 vectors, row i = ids[i]
    distance: Distance
    filter: Any = None
    _prepared: np.ndarray | None = field(default=None, repr=False)

    @property
    def version(self) -> int:
        return self.snapshot.version

    @property
    def partition(self) -> str:
        return self.snapshot.partition_name

    @property
    def prepared(self) -> np.ndarray:
        """The vectors as the store compares them: unit length under cosine,
        as stored otherwise (C-contiguous float32)."""
        if self._prepared is None:
            self._prepared = np.ascontiguousarray(prepare(self.vectors, self.distance),
                                                  dtype=np.float32)
        return self._prepared

    @property
    def unit(self) -> np.ndarray:
        """Unit-length rows (for cosine thresholds, whatever the store's distance)."""
        if self.distance is Distance.COSINE:
            return self.prepared
        return np.ascontiguousarray(prepare(self.vectors, Distance.COSINE), dtype=np.float32)


def read(source: Any, filter: Any = None, progress: Progress | None = None,
         min_rows: int = 1) -> Source:
    """Resolve ``source`` and read its vectors (``progress(done, total)`` in
    rows: 0 before, total after)."""
    snap = to_snapshot(source)
    if progress is not None:
        progress(0, snap.count(filter) if filter is not None else len(snap))
    ids, mat = snap.vectors(filter)
    if progress is not None:
        progress(len(ids), len(ids))
    if len(ids) < min_rows:
        raise InvalidArgumentError(
            f"this analysis needs at least {min_rows} records; the snapshot (version "
            f"{snap.version}, partition {snap.partition_name!r}"
            f"{', filter ' + repr(filter) if filter is not None else ''}) has {len(ids)}")
    distance = snap._state.distance
    return Source(snap, ids, mat, distance, filter)

"""The public migration classes: one per source format, each importing an
export file into a store (sync or trio) and exporting a store back to it."""

from __future__ import annotations

import copy
import os
from typing import Any, ClassVar, Self

from .._errors import InvalidArgumentError, InvalidArgumentTypeError, MigrationError
from ._config import MigrationConfig, MigrationStats
from ._delta import export_changes
from ._export import export_snapshot
from ._importer import ImportRun, Progress, run_async, run_sync
from ._indexing import index_store, index_store_async

__all__ = ["ChromaMigration", "Migration", "PineconeMigration", "QdrantMigration",
           "WeaviateMigration", "migration_for"]


def _target(store: Any, cfg: MigrationConfig, want_async: bool) -> tuple[Any, str]:
    """(root store, partition) of a store or partition view."""
    from .._api.aio import AsyncPartitionView, AsyncVecStore
    from .._api.sync import PartitionView, VecStore

    sync_types = (VecStore, PartitionView)
    async_types = (AsyncVecStore, AsyncPartitionView)
    if want_async and isinstance(store, sync_types):
        raise InvalidArgumentTypeError("import_from_file_async needs an AsyncVecStore (or a "
                                       "partition of one); use import_from_file for a VecStore")
    if not want_async and isinstance(store, async_types):
        raise InvalidArgumentTypeError("this is an AsyncVecStore: use "
                                       "`await m.import_from_file_async(path, store)`")
    if not isinstance(store, sync_types + async_types):
        raise InvalidArgumentTypeError(
            f"expected a vecstore store or partition view, got {type(store).__name__}")
    own = store._pname
    root = store._store
    if cfg.partition is not None and cfg.partition != own:
        if root is not store:
            raise InvalidArgumentError(
                f"MigrationConfig(partition={cfg.partition!r}) conflicts with the "
                f"partition view {own!r} the import was given")
        own = cfg.partition
    return root, own


class Migration:
    """Import from / export to one format.  Subclasses set ``format``.

    ``Migration(config)`` or ``Migration(batch_size=..., validate=..., ...)``
    (keywords are :class:`MigrationConfig` fields, applied on top of
    ``config``).  ``stats`` holds the latest run's :class:`MigrationStats`,
    also while it runs, and after it was interrupted.
    """

    format: ClassVar[str] = ""

    def __init__(self, config: MigrationConfig | None = None, **options: Any) -> None:
        if config is not None and not isinstance(config, MigrationConfig):
            raise InvalidArgumentTypeError(
                f"config must be a MigrationConfig, got {type(config).__name__}")
        cfg = config or MigrationConfig()
        self.config = cfg.replace(**options) if options else cfg
        self._progress: Progress | None = None
        self._index_progress: Progress | None = None
        self.stats: MigrationStats | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    def with_progress(self, callback: Progress | None, *,
                      indexing: Progress | None = None) -> Self:
        """A copy that calls ``callback(done, total)`` as records are
        committed: ``done`` counts records read by this run, ``total`` is
        an estimate until the end, where the last call has
        ``done == total ==`` the number of records read.

        ``indexing(done, total)`` is called while the store is indexed at
        the end (``MigrationConfig.index``), counting vectors: ``(0, N)``
        first, then every quarter second, ``(N, N)`` last; not at all when
        nothing needed indexing.  Either callback may raise to stop."""
        for cb in (callback, indexing):
            if cb is not None and not callable(cb):
                raise InvalidArgumentTypeError("the progress callback must be callable")
        other = copy.copy(self)
        other._progress = callback
        other._index_progress = indexing
        other.stats = None
        return other

    # -- import ------------------------------------------------------------------

    def import_from_file(self, path: str | os.PathLike[str], store: Any) -> MigrationStats:
        """Import ``path`` into ``store`` (a VecStore or partition view).

        Resumes where an earlier interrupted run of the same import stopped;
        returns at once (``stats.already_complete``) if it had finished.
        Raises :class:`~vecstore.MigrationError` if the file cannot be read
        or parsed (beyond single records, which ``validate=True`` rejects),
        or changed since that earlier run.  With ``config.index`` (the
        default) a complete import returns once the whole store is indexed.
        """
        root, partition = _target(store, self.config, want_async=False)
        eng = root._writable()
        run = ImportRun(self.format, path, eng, root.path, partition, self.config,
                        self._progress)
        self.stats = run.stats
        stats = run_sync(run, root._submit)
        if self.config.index and stats.complete:
            done = index_store(root, self._index_progress)
            stats.indexed, stats.indexed_vectors = True, done.vectors
            stats.index_duration = done.seconds
        return stats

    async def import_from_file_async(self, path: str | os.PathLike[str],
                                     store: Any) -> MigrationStats:
        """:meth:`import_from_file` through an :class:`~vecstore.AsyncVecStore`:
        parsing runs in worker threads and commits go through the store's
        writer, so other tasks keep reading and writing meanwhile (also
        while the store is indexed at the end, ``config.index``)."""
        import anyio

        root, partition = _target(store, self.config, want_async=True)
        eng = root._writable()
        run = await anyio.to_thread.run_sync(
            lambda: ImportRun(self.format, path, eng, root.path, partition, self.config,
                              self._progress))
        self.stats = run.stats
        stats = await run_async(run, root._submit)
        if self.config.index and stats.complete:
            done = await index_store_async(root, self._index_progress)
            stats.indexed, stats.indexed_vectors = True, done.vectors
            stats.index_duration = done.seconds
        return stats

    # -- export --------------------------------------------------------------------

    def export_to_file(self, store: Any, path: str | os.PathLike[str], *,
                       version: int | None = None, since: int | None = None) -> int:
        """Write the store's records (one partition: the view's, or
        ``config.partition``) to ``path`` in this format; return how many.
        Reads one snapshot (``version``, default the latest), so writes made
        meanwhile are not mixed in.  Works on read-only stores.

        ``since``: an incremental export, the records that changed after that
        version, deleted ones as tombstones (``_delta`` documents the form per
        format); the file records ``since`` and the version it reached."""
        snap, text_field = self._snapshot(store, version)
        if since is not None:
            return export_changes(snap, self.format, os.fspath(path), text_field, since,
                                  self._progress)
        return export_snapshot(snap, self.format, os.fspath(path), text_field, self._progress)

    async def export_to_file_async(self, store: Any, path: str | os.PathLike[str], *,
                                   version: int | None = None) -> int:
        import anyio

        from .._api.aio import AsyncPartitionView, AsyncVecStore

        if not isinstance(store, (AsyncVecStore, AsyncPartitionView)):
            raise InvalidArgumentTypeError("export_to_file_async needs an AsyncVecStore (or a "
                                           "partition view of one); use export_to_file for a "
                                           "VecStore")
        view = self._view(store)
        snap = (await view.snapshot(version)).sync
        text_field = self._text_field(view)
        return await anyio.to_thread.run_sync(
            export_snapshot, snap, self.format, os.fspath(path), text_field, self._progress)

    def _view(self, store: Any) -> Any:
        part = self.config.partition
        if part is not None and store._store is store:
            return store.partition(part)
        if part is not None and part != store._pname:
            raise InvalidArgumentError(f"MigrationConfig(partition={part!r}) conflicts with the "
                                       f"partition view {store._pname!r}")
        return store

    def _text_field(self, view: Any) -> str:

        root = view._store
        eng = root._engine_checked()
        return self.config.text_field or eng.config.text_field or "document"

    def _snapshot(self, store: Any, version: int | None) -> tuple[Any, str]:
        from .._api.sync import PartitionView, VecStore

        if not isinstance(store, (VecStore, PartitionView)):
            raise InvalidArgumentTypeError("export_to_file needs a VecStore (or a partition view "
                                           "of one); use export_to_file_async for an "
                                           "AsyncVecStore")
        view = self._view(store)
        return view.snapshot(version), self._text_field(view)


class PineconeMigration(Migration):
    """Pinecone: ``{"vectors": [{"id", "values", "metadata"}, ...]}``."""

    format = "pinecone"


class QdrantMigration(Migration):
    """Qdrant JSON Lines: one ``{"id", "vector", "payload"}`` point per line;
    integer ids become strings."""

    format = "qdrant"


class WeaviateMigration(Migration):
    """Weaviate: ``{"vectors": [{"id", "vector", "properties"}, ...]}``;
    ``properties`` become the metadata."""

    format = "weaviate"


class ChromaMigration(Migration):
    """Chroma: the ``collection.get(include=["embeddings", "metadatas",
    "documents"])`` columns; each document goes to the text field
    (``config.text_field``, else the store's ``Config.text_field``, else
    ``metadata["document"]``), and comes back out of it on export."""

    format = "chroma"


_BY_FORMAT: dict[str, type[Migration]] = {
    cls.format: cls
    for cls in (PineconeMigration, QdrantMigration, WeaviateMigration, ChromaMigration)
}


def migration_for(fmt: str) -> type[Migration]:
    """The migration class of a format name."""
    try:
        return _BY_FORMAT[fmt]
    except KeyError:
        raise MigrationError(f"unknown export format {fmt!r}; expected one of: "
                             f"{', '.join(_BY_FORMAT)}") from None

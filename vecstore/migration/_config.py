"""Configuration and results of an import: ``MigrationConfig``,
``MigrationStats`` and ``Failure`` (one rejected record)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from .._errors import InvalidArgumentError, InvalidArgumentTypeError
from .._validate import check_partition

#: ``MigrationStats.failures`` keeps at most this many entries in memory; the
#: reject file always has every one (``failures_truncated`` says when).
MAX_FAILURES_LISTED = 10_000


@dataclass(frozen=True)
class MigrationConfig:
    """How an import runs.

    ``batch_size`` records form one atomic write (one version), committed
    together with the import's progress.  ``validate=True`` checks every
    record on its own and rejects bad ones (see :class:`Failure`);
    ``validate=False`` trusts the input: a bad record then fails its whole
    batch and stops the import with :class:`~vecstore.MigrationError`
    (everything before that batch stays committed).  ``resume_from=N``
    forces the import to start at record position ``N`` (0-based, in file
    order), whatever an earlier run recorded.

    The rest is optional:

    * ``partition`` -- target partition (default: the store view's own,
      i.e. ``"default"`` for a store, the partition for a partition view);
    * ``id_prefix`` -- prepended to every imported id (after int ids became
      strings);
    * ``restart`` -- forget an earlier run of this import (finished,
      interrupted, or of a file that has changed since) and start at 0;
    * ``text_field`` -- where a Chroma document goes (default: the store's
      ``Config.text_field``, else ``"document"``);
    * ``vector_name`` -- which named vector to take (Qdrant, Weaviate);
    * ``reject_file`` -- where rejected records are listed (default:
      ``STORE.rejects-<source name>-<hash>.jsonl`` beside the store);
    * ``message`` -- the version message of each batch (default:
      ``"import <format> <file name>"``);
    * ``parallel_parse`` -- parse the file in a child process while this
      one checks and commits (default ``None``: when the file is at least
      16 MiB and there are several CPUs);
    * ``index`` -- once the import is complete, index the store
      (``store.optimize()``: every growing segment sealed, each partition's
      segments merged into one HNSW index) before returning, so queries no
      longer scan unindexed rows.  Default ``True``.  It covers the whole
      store, every partition, not just the imported records; when importing
      several files into one store, pass ``index=False`` to all but the last
      (or call ``store.optimize()`` once at the end).  An interrupted or
      failed import is not indexed.  ``MigrationStats.indexed``,
      ``index_duration`` and ``indexed_vectors`` report it.
    """

    batch_size: int = 1000
    validate: bool = True
    resume_from: int | None = None
    partition: str | None = None
    id_prefix: str = ""
    restart: bool = False
    text_field: str | None = None
    vector_name: str | None = None
    reject_file: str | None = None
    message: str | None = None
    parallel_parse: bool | None = None
    index: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise InvalidArgumentTypeError(f"batch_size must be an int, got {self.batch_size!r}")
        if not 1 <= self.batch_size <= 1_000_000:
            raise InvalidArgumentError(f"batch_size must be in 1..1000000, got {self.batch_size}")
        if not isinstance(self.validate, bool):
            raise InvalidArgumentTypeError(f"validate must be a bool, got {self.validate!r}")
        if self.parallel_parse is not None and not isinstance(self.parallel_parse, bool):
            raise InvalidArgumentTypeError(
                f"parallel_parse must be a bool or None, got {self.parallel_parse!r}")
        for name in ("restart", "index"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidArgumentTypeError(
                    f"{name} must be a bool, got {getattr(self, name)!r}")
        rf = self.resume_from
        if rf is not None:
            if isinstance(rf, bool) or not isinstance(rf, int):
                raise InvalidArgumentTypeError(f"resume_from must be an int or None, got {rf!r}")
            if rf < 0:
                raise InvalidArgumentError(f"resume_from must be >= 0, got {rf}")
        if self.partition is not None:
            check_partition(self.partition)
        for name in ("id_prefix",):
            if not isinstance(getattr(self, name), str):
                raise InvalidArgumentTypeError(
                    f"{name} must be a str, got {getattr(self, name)!r}")
        for name in ("text_field", "vector_name", "message"):
            val = getattr(self, name)
            if val is not None and (not isinstance(val, str) or not val):
                raise InvalidArgumentTypeError(
                    f"{name} must be a non-empty str or None, got {val!r}")
        if self.reject_file is not None:
            object.__setattr__(self, "reject_file", os.fspath(self.reject_file))

    def replace(self, **changes: Any) -> MigrationConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Failure:
    """One rejected record: its 0-based ``position`` in the source file, its
    ``id`` as found there (``None`` if it had none), why it was rejected,
    and a short machine-readable ``code``: ``record`` (malformed entry:
    a JSON Lines line that does not parse, an array element that is not an
    object, a record without id or vector), ``id``, ``vector``,
    ``dimension``, ``metadata``, ``duplicate``.  ``excerpt`` is the start of
    the offending text (at most 120 characters) for ``record`` rejects, else
    None."""

    position: int
    id: Any
    reason: str
    code: str = "record"
    excerpt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"position": self.position, "id": self.id, "reason": self.reason,
             "code": self.code}
        if self.excerpt is not None:
            d["excerpt"] = self.excerpt
        return d


@dataclass
class MigrationStats:
    """What one run of an import did.

    Counts are for *this run*: ``total_vectors`` records written,
    ``errors`` records rejected (listed in ``failures``, and in the reject
    file), ``skipped`` records not read because they come before the start
    offset (committed by an earlier, interrupted run, or skipped with
    ``resume_from``).  ``records_read == total_vectors + errors``.
    ``throughput`` is ``total_vectors / duration`` (records per second).

    ``imported_total`` / ``errors_total`` count the whole import across all
    of its runs (since it was started or restarted).  ``complete`` says the
    end of the file was reached and committed; ``already_complete`` that
    there was nothing to do because an earlier run had finished.

    ``indexed`` says the run ended by indexing the store
    (``MigrationConfig.index``): ``indexed_vectors`` vectors were waiting
    to be indexed (0 if none) and it took ``index_duration`` seconds, which
    are not part of ``duration`` (the import's own time; ``throughput`` is
    computed from it).
    """

    format: str = ""
    source: str = ""
    store: str = ""
    partition: str = "default"
    total_vectors: int = 0
    skipped: int = 0
    errors: int = 0
    failures: list[Failure] = field(default_factory=list)
    failures_truncated: bool = False
    duration: float = 0.0
    throughput: float = 0.0
    records_read: int = 0
    start_offset: int = 0
    end_offset: int = 0
    resumed: bool = False
    complete: bool = False
    already_complete: bool = False
    imported_total: int = 0
    errors_total: int = 0
    version: int = 0
    reject_file: str | None = None
    indexed: bool = False
    indexed_vectors: int = 0
    index_duration: float = 0.0
    progress_key: str = ""  # the store meta key holding this import's progress

    def add_failure(self, failure: Failure) -> None:
        self.errors += 1
        if len(self.failures) < MAX_FAILURES_LISTED:
            self.failures.append(failure)
        else:
            self.failures_truncated = True

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["failures"] = [f.to_dict() for f in self.failures]
        return d

    def summary(self) -> str:
        """One line for people."""
        if self.already_complete:
            return (f"nothing to do: {self.source} was already imported into "
                    f"{self.store} (partition {self.partition!r}: {self.imported_total} "
                    f"records, {self.errors_total} rejected); pass restart to import it "
                    f"again{self._index_summary()}")
        state = "complete" if self.complete else f"stopped at record {self.end_offset}"
        parts = [f"imported {self.total_vectors} records in {self.duration:.1f} s "
                 f"({self.throughput:,.0f}/s)"]
        if self.skipped:
            parts.append(f"{self.skipped} before record {self.start_offset} skipped "
                         "(already imported)" if self.resumed else
                         f"{self.skipped} skipped")
        if self.errors:
            parts.append(f"{self.errors} rejected (see {self.reject_file})")
        return ", ".join(parts) + f"; {state}{self._index_summary()}"

    def _index_summary(self) -> str:
        if not self.indexed or not self.indexed_vectors:
            return ""
        return (f"; indexed {self.indexed_vectors} vectors in {self.index_duration:.1f} s")

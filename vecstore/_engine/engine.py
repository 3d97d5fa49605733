"""The engine: owns the storage, the write-ahead log and the in-memory
partitions, and publishes what readers see.

It is composed of parts that each take only what they need:
:class:`~.partitions.Partitions` (the writer's segments and index columns),
:class:`~.sealing.SegmentJobs` (seals and merges), :class:`~.jobs.SegmentFiles`
(file removal deferred during backups) and :class:`~.versions.Pins` (versions
open snapshots hold).  Every mutating method (``commit``, ``finish_job``...)
is called by the writer only, one at a time, on a worker thread (LMDB write
transactions must begin and end on one thread).  Readers only ever touch
``self.state``, an immutable :class:`State` swapped atomically after each change.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import lmdb

from wal import CorruptEntryError, WriteAheadLog

from .._errors import ConfigMismatchError, CorruptionError, VecStoreError
from .._index import kind_named
from .._metaindex.indexing import ensure_text_index, load_defs
from .._metrics.recorder import new_recorder, rows_by_partition, timed_write
from .._storage.env import Storage
from .._storage.files import stored_durability, write_durability
from .._storage.memory import release_after_load
from .._types import Config, Distance
from . import settings
from .changelog import backfill
from .compact import plan as compact_plan
from .jobs import SegmentFiles, SegmentJob
from .partitions import Partitions
from .recovery import load, save_repairs
from .sealing import SegmentJobs
from .state import PartMem
from .txn import TxnCtx, WriteRequest
from .versions import Pins

log = logging.getLogger("vecstore")


class Engine:
    def __init__(self, path: str, config: Config | None, *, read_only: bool) -> None:
        if config is not None and config.index_kind is not None:
            try:
                kind_named(config.index_kind)
            except CorruptionError:
                raise ConfigMismatchError(
                    f"unknown index kind {config.index_kind!r} in Config.index_kind") from None
        durability = config.durability if config is not None else stored_durability(path)
        self.storage = Storage(path, read_only=read_only, sync=durability == "sync")
        try:
            self.read_only = read_only
            self.wal = WriteAheadLog(self.storage.env, b"wal")
            dim = self._init_config(config)
            if not read_only and self.config.text_field:
                ensure_text_index(self.storage, self.config.text_field)
            self.mem = Partitions(self.distance, dim)
            self.files = SegmentFiles()
            self.pins = Pins()
            self.commits = 0  # write transactions committed
            self.write_calls = 0  # write requests answered
            self.metrics = new_recorder(read_only)  # since open: store.metrics()
            self.jobs = SegmentJobs(self.storage, self.wal, self.config, self.mem, self.files,
                                    self.metrics, self._publish)
            self._reload()
            if not read_only:
                backfill(self.storage)  # stores from before the change feed
                SegmentFiles.collect_garbage(
                    os.path.join(self.storage.path, "segments"),
                    (seg.file for pm in self.mem.parts.values() for seg in pm.sealed))
        except BaseException:
            self.storage.close()
            raise

    # -- what the rest of the package reads ----------------------------------------

    @property
    def dim(self) -> int | None:
        return self.mem.dim

    @property
    def parts(self) -> dict[str, PartMem]:
        return self.mem.parts

    @property
    def last_seq(self) -> int:
        return self.mem.last_seq

    # -- configuration --------------------------------------------------------

    def _init_config(self, given: Config | None) -> int | None:
        """Settle the config (stored vs. given); return the known dimension."""
        st = self.storage
        with st.read() as txn:
            stored = st.get_meta(txn, "config")
        if stored is None:
            if self.read_only:
                stored = settings.fill(Config().to_dict())
            else:
                stored = settings.fill((given or Config()).to_dict())

                def init(txn: lmdb.Transaction) -> None:
                    st.put_meta(txn, "config", stored)
                    st.put_meta(txn, "format", 1)

                st.write(init)
                write_durability(st.path, stored["durability"])
        base = Config.from_dict(stored)
        if given is not None:
            if given.dim is not None and base.dim is not None and given.dim != base.dim:
                raise ConfigMismatchError(
                    f"store {st.path!r} holds {base.dim}-d vectors; opened with dim={given.dim}")
            if Distance.parse(given.distance) is not Distance.parse(base.distance):
                raise ConfigMismatchError(
                    f"store {st.path!r} uses distance {Distance.parse(base.distance).value!r}; "
                    f"opened with {Distance.parse(given.distance).value!r}")
            settings.check(st.path, stored, given)  # (index settings: None = as stored)
            runtime = given.to_dict()
            runtime["dim"] = base.dim if base.dim is not None else given.dim
            base = Config.from_dict(runtime)
        self.stored_config = dict(stored)
        base = dataclasses.replace(base, **settings.stored_settings(stored))
        self.config = base
        self.distance = Distance.parse(base.distance)
        dim = base.dim if stored.get("dim") is not None else None
        if dim is None and given is not None and given.dim is not None and not self.read_only:
            dim = given.dim
            self.stored_config["dim"] = given.dim
            st.write(lambda txn: st.put_meta(txn, "config", self.stored_config))
        return dim

    # -- loading ----------------------------------------------------------------

    def _reload(self) -> None:
        st = self.storage
        mem = self.mem
        reuse = {seg.seg_id: seg.index for pm in mem.parts.values() for seg in pm.sealed}
        with st.read() as txn:
            self.version = st.get_meta(txn, "version", 0)
            self.next_rowid = st.get_meta(txn, "next_rowid", 0)
            self.next_pid = st.get_meta(txn, "next_pid", 1)
            self.jobs.next_seg = st.get_meta(txn, "next_seg", 1)
            cfg = st.get_meta(txn, "config")
            if cfg and cfg.get("dim") is not None:
                mem.dim = cfg["dim"]
            mem.indexes = load_defs(st, txn, {})
            try:
                loaded = load(st, self.wal, txn, mem.dim, self.distance, reuse)
            except CorruptEntryError as exc:
                raise CorruptionError(
                    f"write-ahead log of {st.path!r} is damaged at entry {exc.seq}: "
                    f"{exc.reason}; `vecstore check` reports the extent") from exc
        mem.last_seq = loaded.last_seq
        mem.reset(loaded.parts)
        if mem.indexes:
            with st.read() as txn:
                mem.attach_columns(st, txn, list(mem.indexes))
        if loaded.repaired and not self.read_only:
            save_repairs(st, loaded.repaired)
        self.state = mem.state(self.version, None)
        if loaded.vectors_read:
            release_after_load(os.path.join(st.path, "data.mdb"))

    def refresh(self) -> None:
        """Pick up what another process committed (read-only stores)."""
        with self.storage.read() as txn:
            if self.storage.get_meta(txn, "version", 0) == self.version and \
                    self.wal.last_seq(txn=txn) == self.mem.last_seq:
                return
        if self.storage.db("parts") is None:
            self.storage.open_handles(create=False)
        self._reload()

    def _publish(self, changed: Sequence[int] | None = None) -> None:
        """Publish a new state: the partitions ``changed`` (None: all) anew."""
        self.state = self.mem.state(self.version, self.state, changed)

    # -- writing --------------------------------------------------------------------

    def commit(self, reqs: list[WriteRequest]) -> list[Any]:
        """Apply ``reqs`` in one transaction; one result (or exception) each."""
        results: list[Any] = [None] * len(reqs)
        todo = list(range(len(reqs)))
        while todo:
            failed: list[int] = []

            def body(txn: lmdb.Transaction) -> TxnCtx:
                ctx = TxnCtx(txn, self.storage, self.wal, self.mem, self.state,
                             self.stored_config, version=self.version,
                             next_rowid=self.next_rowid, next_pid=self.next_pid)
                for i in todo:
                    ctx.begin()
                    try:
                        results[i] = reqs[i].apply(ctx)
                    except (lmdb.Error, OSError):
                        raise  # storage-level: map growth, disk full... (Storage.write)
                    except Exception as exc:  # this request alone fails; never the writer
                        if not isinstance(exc, VecStoreError):
                            log.exception("write request %r failed unexpectedly", type(reqs[i]))
                        results[i] = exc
                        failed.append(i)
                        raise _Retry() from exc
                    if ctx.cur is not None:
                        if ctx.ops or reqs[i].always_version:
                            ctx.end(reqs[i].message)
                        else:
                            ctx.abandon()
                ctx.finish()
                return ctx

            try:
                ctx, t_txn, t_commit = timed_write(self.storage.write, body)
            except _Retry:
                todo = [i for i in todo if i not in failed]
                continue
            except VecStoreError as exc:
                for i in todo:
                    results[i] = exc
                return results
            self._adopt(ctx)
            self.metrics.committed(len(todo), rows_by_partition(ctx.done, self.mem.by_pid),
                                   t_txn, t_commit)
            break
        self.write_calls += len(reqs)
        return results

    def _adopt(self, ctx: TxnCtx) -> None:
        """The transaction committed: bring memory in line with it."""
        mem = self.mem
        self.commits += 1
        self.version = ctx.version
        self.next_rowid = ctx.next_rowid
        self.next_pid = ctx.next_pid
        if ctx.dim != mem.dim:
            mem.dim = ctx.dim
            self.stored_config["dim"] = ctx.dim
        for name, pid in ctx.new_parts.items():
            mem.add(name, pid)
        for name in ctx.revived:
            mem.parts[name].live = True
        for name in ctx.dropped:
            mem.parts[name].live = False
        touched: set[int] = {mem.parts[n].pid for n in (*ctx.new_parts, *ctx.revived, *ctx.dropped)}
        mem.apply(ctx.done, touched)
        if ctx.done:
            mem.last_seq = ctx.done[-1].seq
        if ctx.index_changes:
            mem.adopt_indexes(self.storage)
            touched = set(mem.by_pid)
        self._publish(sorted(touched))

    # -- segment jobs and compaction (writer) ---------------------------------------------

    def finish_job(self, job: SegmentJob) -> None:
        self.jobs.finish(job)

    def compaction_floor(self) -> int:
        """Rows that died at or before this version are invisible to every
        retained version and to every open snapshot."""
        return self.pins.floor(self.storage)

    def plan_compaction(self, floor: int, threads: int) -> list[SegmentJob]:
        jobs, changed = compact_plan(self.mem, floor, threads, self.jobs.job)
        if changed:
            self._publish(changed)
        return jobs

    # -- any thread ------------------------------------------------------------------------

    def hold_files(self) -> AbstractContextManager[None]:
        """Keep segment files on disk (e.g. while a backup copies them)."""
        return self.files.hold()

    def get_meta(self, key: str, default: Any = None) -> Any:
        """A value from the ``meta`` table (as last committed)."""
        with self.storage.read() as txn:
            return self.storage.get_meta(txn, key, default)

    def close(self) -> None:
        self.storage.close()


class _Retry(Exception):
    """Abort the transaction and run the batch again without a failed request."""

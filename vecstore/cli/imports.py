"""``vecstore import`` and ``vecstore export``.

An import has two phases, each with its own progress display: the records
(resumable, exactly once), then -- unless ``--no-index`` -- indexing the
store (``store.optimize()``), so that the command ends with every vector in
an HNSW segment instead of leaving the last of them to exact scans until
some writer reopens the store.  ``--json`` gives both phases' times
(``duration``, ``index_duration``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .progress import EXIT_INTERRUPTED, EXIT_OK, EXIT_PROBLEMS, PhaseBar, Progress, emit


def _store_config(args: argparse.Namespace) -> Any:
    """The Config to open the import's target store with (None: as stored)."""
    from .._types import Config

    exists = os.path.isfile(os.path.join(args.store, "data.mdb"))
    given = {k: v for k, v in (("dim", args.dim), ("distance", args.distance)) if v is not None}
    if not exists:
        return Config(durability=args.durability, text_field=args.text_field, **given)
    if not given and args.durability == "sync":
        return None
    stored = _stored_config(args.store) or {}
    return Config.from_dict({**stored, "durability": args.durability, **given})


def _stored_config(path: str) -> dict[str, Any] | None:
    import cbor2
    import lmdb

    env = lmdb.open(path, readonly=True, lock=False, max_dbs=16, subdir=True)
    try:
        with env.begin() as txn:
            meta = env.open_db(b"meta", txn=txn, create=False)
            raw = txn.get(b"config", db=meta)
            return None if raw is None else dict(cbor2.loads(raw))
    except lmdb.NotFoundError:
        return None
    finally:
        env.close()


def run_import(args: argparse.Namespace) -> int:
    from .._api.sync import VecStore
    from ..migration import MigrationConfig, migration_for

    cfg = MigrationConfig(batch_size=args.batch_size, validate=not args.no_validate,
                          resume_from=args.resume_from, partition=args.partition,
                          id_prefix=args.id_prefix, restart=args.restart,
                          text_field=args.text_field, vector_name=args.vector_name,
                          reject_file=args.reject_file, message=args.message,
                          index=not args.no_index)
    bar = Progress(f"import {os.path.basename(args.file)}", enabled=not args.quiet)
    index_bar = PhaseBar("indexing", "vectors", enabled=not args.quiet)
    mig = migration_for(args.format)(cfg).with_progress(bar, indexing=index_bar)
    if not os.path.isfile(args.file):  # before creating the store
        from .._errors import MigrationError

        raise MigrationError(f"source file not found or not a regular file: {args.file!r}")
    interrupted = False
    try:
        with VecStore.open(args.store, _store_config(args)) as store:
            try:
                mig.import_from_file(args.file, store)
            except KeyboardInterrupt:
                interrupted = True
    finally:
        bar.close()
        index_bar.close()
    stats = mig.stats
    if stats is None:  # interrupted before the import started
        raise KeyboardInterrupt
    doc = stats.to_dict()
    doc["interrupted"] = interrupted
    if interrupted:
        return _interrupted(args, doc, stats)
    lines = [stats.summary()]
    for f in stats.failures[:10]:
        lines.append(f"  rejected record {f.position} (id {f.id!r}): {f.reason}"
                     + (f": {f.excerpt}" if f.excerpt is not None else ""))
    if stats.errors > 10:
        lines.append(f"  ... {stats.errors - 10} more in {stats.reject_file}")
    if not cfg.index:
        lines.append(f"not indexed (--no-index): run `vecstore optimize {args.store}` "
                     "before heavy querying")
    emit(args, doc, lines)
    return EXIT_PROBLEMS if stats.errors else EXIT_OK


def _interrupted(args: argparse.Namespace, doc: dict[str, Any], stats: Any) -> int:
    from .._api.sync import VecStore

    if stats.complete:  # Ctrl-C while indexing: every record is in
        doc["committed_offset"] = stats.end_offset
        emit(args, doc, [])
        print(f"vecstore import: interrupted while indexing; the import itself is complete "
              f"(all {stats.end_offset} records committed) and queries work meanwhile. Run "
              f"`vecstore optimize {args.store}` (or the same command again) to index the "
              "store.", file=sys.stderr)
        return EXIT_INTERRUPTED
    # what the store says (a batch in flight may have committed meanwhile)
    with VecStore.open(args.store, read_only=True) as store:
        prog = store._engine_checked().get_meta(stats.progress_key) or {}
    doc["committed_offset"] = int(prog.get("offset", 0))
    emit(args, doc, [])
    print(f"vecstore import: interrupted; the records before position "
          f"{doc['committed_offset']} are committed. Run the same command again to "
          "resume.", file=sys.stderr)
    return EXIT_INTERRUPTED


def run_export(args: argparse.Namespace) -> int:
    from .._api.sync import VecStore
    from ..migration import MigrationConfig, migration_for

    cfg = MigrationConfig(partition=args.partition, text_field=args.text_field)
    bar = Progress(f"export {os.path.basename(args.file)}", enabled=not args.quiet)
    try:
        with VecStore.open(args.store, read_only=True) as store:
            n = migration_for(args.format)(cfg).with_progress(bar).export_to_file(
                store, args.file, version=args.version, since=args.since)
            version = args.version if args.version is not None else store.version
    finally:
        bar.close()
    doc = {"records": n, "file": os.path.abspath(args.file), "format": args.format,
           "partition": args.partition or "default", "version": version}
    if args.since is not None:  # an incremental export: changes in (since, version]
        doc["since"] = args.since
        emit(args, doc, [f"exported {n} changed records (versions {args.since} to {version}) "
                         f"to {args.file}"])
        return EXIT_OK
    emit(args, doc, [f"exported {n} records (version {version}) to {args.file}"])
    return EXIT_OK


def add_import_arguments(p: argparse.ArgumentParser, formats: tuple[str, ...],
                         positive: Any, nonneg: Any) -> None:
    p.add_argument("format", choices=formats)
    p.add_argument("file")
    p.add_argument("store")
    p.add_argument("--batch-size", type=positive, default=1000)
    p.add_argument("--no-validate", action="store_true",
                   help="trust the input: a bad record stops the import instead of being "
                        "rejected alone")
    p.add_argument("--no-index", action="store_true",
                   help="do not index the store at the end (queries scan the unindexed "
                        "records until `vecstore optimize` or a writer indexes them)")
    p.add_argument("--resume-from", type=nonneg, metavar="N",
                   help="start at record position N, whatever was recorded")
    p.add_argument("--restart", action="store_true",
                   help="forget an earlier run of this import (also after the file changed)")
    p.add_argument("--partition")
    p.add_argument("--id-prefix", default="")
    p.add_argument("--vector-name", help="which named vector to import (qdrant, weaviate)")
    p.add_argument("--text-field", help="chroma documents go to metadata[TEXT_FIELD]")
    p.add_argument("--reject-file")
    p.add_argument("--message", help="version message of each batch")
    p.add_argument("--dim", type=positive, help="dimension (new stores, or checked)")
    p.add_argument("--distance", choices=("cosine", "euclidean", "dot"))
    p.add_argument("--durability", choices=("sync", "relaxed"), default="sync")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")

"""The ``vecstore`` command line.

    vecstore import {pinecone,qdrant,chroma,weaviate} FILE STORE [options]
    vecstore export {pinecone,qdrant,chroma,weaviate} STORE FILE [options]
    vecstore stats STORE
    vecstore query STORE (--vector JSON | --id ID) [-k K] [--filter F]
    vecstore versions STORE
    vecstore rollback STORE VERSION
    vecstore check STORE
    vecstore optimize STORE
    vecstore compact STORE

Every command takes ``--json`` (print one JSON document on stdout; errors
too, as ``{"error": {...}}``).  Progress goes to stderr: a bar with rate
and ETA on a terminal, a plain line every few seconds otherwise.  An import
ends by indexing the store (its own progress phase) unless ``--no-index``.

Exit status:
  0    success
  1    failure (unreadable or malformed input, missing store, store error, ...)
  2    usage error (bad arguments)
  3    the store is locked: another process has it open for writing
  4    finished, with problems: ``check`` found integrity problems, or
       ``import`` rejected records (they are listed in the reject file)
  130  interrupted (Ctrl-C); an interrupted import resumes when run again
       (interrupted while indexing: every record is in; ``optimize`` indexes)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .hybrid import add_text_args
from .progress import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_USAGE,
    emit,
    json_default,
)

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_LOCKED", "EXIT_OK", "EXIT_PROBLEMS",
           "EXIT_USAGE", "build_parser", "main"]
FORMATS = ("pinecone", "qdrant", "chroma", "weaviate")
_emit, _json_default = emit, json_default


def _import(args: argparse.Namespace) -> int:
    from .imports import run_import

    return run_import(args)


def _export(args: argparse.Namespace) -> int:
    from .imports import run_export

    return run_export(args)


def _optimize(args: argparse.Namespace) -> int:
    from .maint import run_optimize

    return run_optimize(args)


def _compact(args: argparse.Namespace) -> int:
    from .maint import run_compact

    return run_compact(args)


# -- reading and maintenance ------------------------------------------------------------


def _imports(store: Any) -> list[dict[str, Any]]:
    """The progress records of imports into this store."""
    from ..migration import PROGRESS_PREFIX

    st = store._engine_checked().storage
    out: list[dict[str, Any]] = []
    if st.db("meta") is None:
        return out
    with st.read() as txn:
        cur = txn.cursor(db=st.db("meta"))
        prefix = PROGRESS_PREFIX.encode()
        if cur.set_range(prefix):
            import cbor2

            for key, val in cur:
                if not bytes(key).startswith(prefix):
                    break
                p = cbor2.loads(val)
                out.append({"source": (p.get("identity") or {}).get("path"),
                            "format": p.get("format"), "partition": p.get("partition"),
                            "done": p.get("done"), "next_position": p.get("offset"),
                            "imported": p.get("imported"), "rejected": p.get("errors")})
    return out


def _stats(args: argparse.Namespace) -> int:
    from .._api.sync import VecStore

    with VecStore.open(args.store, read_only=True) as store:
        stats = store.stats().to_dict()
        stats["imports"] = _imports(store)
    lines = []
    for key, value in stats.items():
        if key == "imports":
            for imp in value:
                state = "done" if imp["done"] else f"stopped at record {imp['next_position']}"
                lines.append(f"import: {imp['format']} {imp['source']} -> "
                             f"{imp['partition']!r}: {imp['imported']} records, "
                             f"{imp['rejected']} rejected, {state}")
        else:
            lines.append(f"{key}: {value}")
    _emit(args, stats, lines)
    return EXIT_OK


def _query(args: argparse.Namespace) -> int:
    from .._api.sync import VecStore
    from .._errors import VecStoreError
    from .._types import Query
    from .hybrid import hybrid_line, hybrid_query, hybrid_scores

    flt: Any = args.filter
    if flt is not None and flt.lstrip().startswith("{"):
        try:
            flt = json.loads(flt)
        except ValueError as exc:
            raise VecStoreError(f"--filter looks like JSON but is not: {exc}") from None
    if args.vector is None and args.id is None and args.text is None:
        msg = "query needs --vector, --id or --text"
        return _fail(args, EXIT_USAGE, VecStoreError(msg), msg)
    with VecStore.open(args.store, read_only=True) as store:
        if args.vector is not None:
            try:
                vec = json.loads(args.vector)
            except ValueError as exc:
                raise VecStoreError(f"--vector must be a JSON list of numbers: {exc}") from None
        elif args.id is None:
            vec = None  # --text alone: pure BM25
        else:
            view = store.partition(args.partition[0]) if args.partition else store
            rec = view.get(args.id)
            if rec is None:
                raise VecStoreError(f"no record with id {args.id!r}")
            vec = rec.vector
        q: Any = Query(vec, k=args.k, filter=flt, ef=args.ef,
                       include_vectors=args.include_vectors, partitions=args.partition) \
            if args.text is None else hybrid_query(args, vec, flt)
        results = store.query(q)
    doc = {"results": [{"id": r.id, "score": r.score, "metadata": r.metadata,
                        "partition": r.partition,
                        **({"vector": r.vector.tolist()} if r.vector is not None else {}),
                        **hybrid_scores(r)}
                       for r in results]}
    lines = [f"{i + 1:>3}. {r.id}  score={r.score:.6f}{hybrid_line(r)}  [{r.partition}]  "
             f"{json.dumps(r.metadata, default=_json_default)}" for i, r in enumerate(results)]
    _emit(args, doc, lines or ["(no results)"])
    return EXIT_OK


def _versions(args: argparse.Namespace) -> int:
    import time

    from .._api.sync import VecStore

    with VecStore.open(args.store, read_only=True) as store:
        infos = store.versions()
    if args.limit:
        infos = infos[-args.limit:]
    doc = {"versions": [{"version": v.version, "timestamp": v.timestamp, "message": v.message,
                         "tag": v.tag, "ops": v.ops} for v in infos]}
    lines = [f"{v.version:>8}  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(v.timestamp))}"
             f"  {v.ops:>6} ops  {('[' + v.tag + '] ') if v.tag else ''}{v.message or ''}"
             for v in infos]
    _emit(args, doc, lines or ["(no versions)"])
    return EXIT_OK


def _rollback(args: argparse.Namespace) -> int:
    from .._api.sync import VecStore
    from .._errors import StoreNotFoundError

    if not os.path.isfile(os.path.join(args.store, "data.mdb")):
        raise StoreNotFoundError(f"no vecstore at {os.path.abspath(args.store)!r}")
    with VecStore.open(args.store) as store:
        view = store.partition(args.partition) if args.partition else store
        new = view.rollback(args.version, message=args.message)
    doc = {"rolled_back_to": args.version, "version": new, "partition": args.partition}
    where = f" (partition {args.partition!r})" if args.partition else ""
    _emit(args, doc, [f"rolled back{where} to version {args.version}: new version {new}"])
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from .check import check_store

    doc = check_store(args.store)
    c = doc["checked"]
    lines = [f"checked {args.store}: {c.get('wal_entries', 0)} WAL entries, "
             f"{c.get('segments', 0)} segments, {c.get('rows', 0)} rows, "
             f"{c.get('records', 0)} live records"]
    lines += [f"warning: {w}" for w in doc["warnings"]]
    lines += [f"problem: {p}" for p in doc["problems"]]
    if doc["problem_count"] > len(doc["problems"]):
        lines.append(f"... and {doc['problem_count'] - len(doc['problems'])} more problems")
    lines.append("OK" if doc["ok"] else f"{doc['problem_count']} problem(s) found")
    _emit(args, doc, lines)
    return EXIT_OK if doc["ok"] else EXIT_PROBLEMS


# -- parser and main ---------------------------------------------------------------------


def _nonneg(text: str) -> int:
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def _positive(text: str) -> int:
    n = int(text)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vecstore", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true", help="print one JSON document")
        p.set_defaults(func=func, quiet=False)
        return p

    from .imports import add_import_arguments

    p = cmd("import", _import, "import an export file into a store (resumable), then index it")
    add_import_arguments(p, FORMATS, _positive, _nonneg)

    p = cmd("export", _export, "write a store's records to an export file")
    p.add_argument("format", choices=FORMATS)
    p.add_argument("store")
    p.add_argument("file")
    p.add_argument("--partition")
    p.add_argument("--version", type=_nonneg, help="export this version (default: latest)")
    p.add_argument("--since", type=_nonneg, metavar="V",
                   help="only what changed after version V (deletes as tombstones)")
    p.add_argument("--text-field", help="chroma: the metadata field holding the document")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")

    p = cmd("stats", _stats, "summary of a store")
    p.add_argument("store")

    p = cmd("query", _query, "k-nearest-neighbour query (BM25 or hybrid with --text)")
    p.add_argument("store")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--vector", help="query vector as a JSON list")
    g.add_argument("--id", help="use this record's vector as the query")
    add_text_args(p)
    p.add_argument("-k", type=_positive, default=10)
    p.add_argument("--filter", help="filter expression, or a JSON object (dict form)")
    p.add_argument("--partition", action="append", help="partition(s) to search (repeatable)")
    p.add_argument("--ef", type=_positive)
    p.add_argument("--include-vectors", action="store_true")

    p = cmd("versions", _versions, "list retained versions")
    p.add_argument("store")
    p.add_argument("--limit", type=_positive, help="only the newest N")

    p = cmd("rollback", _rollback, "make a new version equal to an older one")
    p.add_argument("store")
    p.add_argument("version", type=_nonneg)
    p.add_argument("--partition", help="roll back this partition only")
    p.add_argument("--message")

    p = cmd("check", _check, "verify a store's integrity (changes nothing)")
    p.add_argument("store")

    p = cmd("optimize", _optimize, "index everything pending: one HNSW segment per partition")
    p.add_argument("store")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")

    p = cmd("compact", _compact,
            "reclaim space held by rows no retained version sees (rebuilds segments)")
    p.add_argument("store")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    __import__("vecstore.cli.analyze", fromlist=["register"]).register(sub, cmd)
    __import__("vecstore.cli.replicate", fromlist=["register"]).register(sub, cmd)
    return parser


def _fail(args: argparse.Namespace, code: int, exc: BaseException, text: str) -> int:
    print(f"vecstore {args.command}: {text}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"error": {"type": type(exc).__name__, "message": text},
                          "exit_code": code}))
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .._errors import StoreLockedError, VecStoreError

    try:
        return int(args.func(args))
    except StoreLockedError as exc:
        return _fail(args, EXIT_LOCKED, exc, str(exc))
    except KeyboardInterrupt as exc:
        return _fail(args, EXIT_INTERRUPTED, exc, "interrupted")
    except (VecStoreError, OSError, ValueError, TypeError, LookupError) as exc:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.filename and exc.filename not in text:
            text = f"{text}: {exc.filename}"
        return _fail(args, EXIT_ERROR, exc, text)
    except Exception as exc:  # never a traceback; VECSTORE_DEBUG=1 shows it
        if os.environ.get("VECSTORE_DEBUG"):
            raise
        return _fail(args, EXIT_ERROR, exc, f"internal error: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())

"""``vecstore replicate STORE qdrant URL_OR_PATH --collection C``: keep a
Qdrant collection in step with a store (:mod:`vecstore.migration.replicate`).

The store is opened read-only, so replication runs beside the writer and
never takes its lock; ``--follow`` keeps tailing new versions (``refresh()``
every ``--poll`` seconds) until Ctrl-C.  A replicator killed at any point
resumes from the version the collection's metadata records.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from .progress import EXIT_INTERRUPTED, EXIT_OK, emit


def register(sub: Any, cmd: Any) -> None:
    p = cmd("replicate", run_replicate,
            "keep a Qdrant collection in step with a store (resumable; --follow tails it)")
    p.add_argument("store")
    p.add_argument("engine", choices=("qdrant",))
    p.add_argument("target", metavar="URL_OR_PATH",
                   help="a Qdrant server URL (http/https) or a local-mode directory")
    p.add_argument("--collection", required=True)
    p.add_argument("--partition", action="append",
                   help="replicate this partition (repeatable; default: every partition)")
    p.add_argument("--layout", choices=("payload", "collections"), default="payload",
                   help="payload: one collection, the partition in each point's payload "
                        "(vecstore_partition); collections: COLLECTION_<partition> each")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--follow", action="store_true", help="keep tailing new versions")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between refreshes")
    p.add_argument("--api-key", default=os.environ.get("QDRANT_API_KEY"),
                   help="Qdrant API key (default: $QDRANT_API_KEY)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def run_replicate(args: argparse.Namespace) -> int:
    from .._api.sync import VecStore
    from .._errors import InvalidArgumentError
    from ..migration.replicate import QdrantReplicator, open_client

    if args.batch_size < 1:
        raise InvalidArgumentError("--batch-size must be positive")
    stopping = {"now": False}

    def on_term(_sig: int, _frame: Any) -> None:
        stopping["now"] = True

    if args.follow:
        signal.signal(signal.SIGTERM, on_term)

    def report(stats: Any) -> None:
        if not args.quiet and sys.stderr.isatty():
            print(f"\rreplicate: {stats.upserted:,} upserted, {stats.deleted:,} deleted",
                  end="", file=sys.stderr)

    client = open_client(args.target, args.api_key)
    try:
        with VecStore.open(args.store, read_only=True) as store:
            rep = QdrantReplicator(client, args.collection, layout=args.layout,
                                   partitions=args.partition, batch_size=args.batch_size,
                                   on_batch=report)
            try:
                stats = rep.run(store, follow=args.follow, poll=args.poll,
                                stop=lambda: stopping["now"])
            except KeyboardInterrupt:
                emit(args, {**rep.stats.to_dict(), "interrupted": True}, [])
                print("vecstore replicate: interrupted; run the same command again to "
                      "resume from the version the collection records.", file=sys.stderr)
                return EXIT_INTERRUPTED
    finally:
        client.close()
    doc = {**stats.to_dict(), "store": os.path.abspath(args.store), "target": args.target,
           "layout": args.layout}
    emit(args, doc, [f"replicated {args.store} into {args.collection!r} up to version "
                     f"{stats.version}: {stats.upserted:,} upserted, {stats.deleted:,} "
                     f"deleted in {stats.batches} batch(es)"
                     + (f", {stats.resyncs} resync(s) from a snapshot" if stats.resyncs
                        else "")])
    return EXIT_OK

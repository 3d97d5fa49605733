"""``vecstore optimize`` and ``vecstore compact``: the maintenance calls of
the Python API (``store.optimize()``, ``store.compact()``) with a progress
display.  Both open the store for writing, so a store another process has
open for writing is refused at once (exit 3).  Ctrl-C stops them with exit
130; what they had not finished is simply not done (the store stays
consistent, and running the command again starts over).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from .._errors import StoreNotFoundError
from .progress import EXIT_INTERRUPTED, EXIT_OK, PhaseBar, emit


def _open(args: argparse.Namespace) -> Any:
    from .._api.sync import VecStore

    if not os.path.isfile(os.path.join(args.store, "data.mdb")):
        raise StoreNotFoundError(f"no vecstore at {os.path.abspath(args.store)!r}")
    return VecStore.open(args.store)


def _index_state(store: Any) -> dict[str, Any]:
    st = store.stats()
    return {"total_vectors": st.total_vectors, "sealed_segments": st.sealed_segments,
            "growing_vectors": st.growing_vectors, "indexing_pending": st.indexing_pending}


def _interrupted(what: str) -> int:
    print(f"vecstore {what}: interrupted; the store is consistent, as it was before or with "
          "part of the work done. Run the same command again to finish.", file=sys.stderr)
    return EXIT_INTERRUPTED


def run_optimize(args: argparse.Namespace) -> int:
    from ..migration._indexing import index_store

    bar = PhaseBar("indexing", "vectors", enabled=not args.quiet)
    try:
        with _open(args) as store:
            try:
                done = index_store(store, bar)
            except KeyboardInterrupt:
                bar.close()
                return _interrupted("optimize")
            doc = {"store": os.path.abspath(args.store), "indexed_vectors": done.vectors,
                   "duration": done.seconds, **_index_state(store)}
    finally:
        bar.close()
    if done.vectors:
        line = (f"optimized {args.store}: indexed {done.vectors:,} vectors in "
                f"{done.seconds:.1f} s; {doc['sealed_segments']} sealed segment(s), "
                f"{doc['total_vectors']:,} records")
    else:
        line = (f"nothing to do: {args.store} is fully indexed "
                f"({doc['sealed_segments']} sealed segment(s), {doc['total_vectors']:,} records)")
    emit(args, doc, [line])
    return EXIT_OK


def run_compact(args: argparse.Namespace) -> int:
    from ..migration._indexing import JobWatch, run_watched

    bar = PhaseBar("compacting: rebuilding", "vectors", enabled=not args.quiet)
    t0 = time.perf_counter()
    try:
        with _open(args) as store:
            watch = JobWatch(store._engine_checked())
            try:
                res = run_watched(store.compact, watch.poll, bar)
            except KeyboardInterrupt:
                bar.close()
                return _interrupted("compact")
            total = watch.poll()[1]
            bar(total, total)
            doc = {"store": os.path.abspath(args.store), "floor_version": res["floor"],
                   "rows_removed": res["rows"], "history_removed": res["history"],
                   "rebuilt_vectors": total, "duration": time.perf_counter() - t0,
                   "bytes_on_disk": store.stats().bytes_on_disk, **_index_state(store)}
    finally:
        bar.close()
    if res["rows"] or res["history"]:
        line = (f"compacted {args.store}: removed {res['rows']:,} rows and "
                f"{res['history']:,} history entries that no retained version sees "
                f"(floor: version {res['floor']}) in {doc['duration']:.1f} s")
    else:
        line = f"nothing to do: {args.store} holds nothing that no retained version sees"
    emit(args, doc, [line])
    return EXIT_OK


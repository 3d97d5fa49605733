"""``vecstore analyze {kmeans,dbscan,outliers,duplicates} STORE``: the
analyses of :mod:`vecstore.analytics` from the command line.

Each reads one snapshot (the latest, or ``--version``) of one partition,
optionally filtered, shows a progress line per phase on stderr, and prints
a summary (or, with ``--json``, one document with the version read, the
parameters and every record's label/score).  ``--write-back FIELD`` writes
the labels (``outliers``: 1/0; ``duplicates``: the group number) into each
record's metadata as one new version; without it the store is opened
read-only.  Needs ``pip install 'vecstore[analytics]'``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from typing import Any

from .._analysis import duplicates as _dups
from .._analysis import source as _source
from .._errors import StoreNotFoundError
from .progress import EXIT_ERROR, EXIT_OK, PhaseBar, emit


def register(sub: Any, cmd: Any) -> None:
    """Add ``analyze`` to the ``vecstore`` parser (``cmd`` is main's helper)."""
    p = cmd("analyze", run_analyze, "clusters, outliers and near-duplicates of a store's records")
    kinds = p.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("store")
        q.add_argument("--partition", default=None)
        q.add_argument("--filter", help="filter expression, or a JSON object (dict form)")
        q.add_argument("--version", type=int, help="analyse this version (default: latest)")
        q.add_argument("--write-back", metavar="FIELD",
                       help="write the labels into this metadata field (one new version)")
        q.add_argument("--json", action="store_true", help="print one JSON document")
        q.add_argument("-q", "--quiet", action="store_true", help="no progress display")

    q = kinds.add_parser("kmeans", help="k-means clusters")
    common(q)
    q.add_argument("-k", "--clusters", type=int, default=8)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--max-iter", type=int, default=300)
    q.add_argument("--backend", choices=("auto", "sklearn", "faiss"), default="auto")

    q = kinds.add_parser("dbscan", help="density clusters (-1 = noise)")
    common(q)
    q.add_argument("--eps", type=float, required=True,
                   help="Euclidean radius on the vectors as compared (unit length under cosine)")
    q.add_argument("--min-samples", type=int, default=5)
    q.add_argument("--backend", choices=("auto", "sklearn", "faiss"), default="auto")

    q = kinds.add_parser("outliers", help="anomaly scores and outliers")
    common(q)
    q.add_argument("--method", choices=("isolation-forest", "lof", "zscore"),
                   default="isolation-forest")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--neighbors", type=int, default=20, help="lof: n_neighbors")
    q.add_argument("--threshold", type=float, default=3.0, help="zscore: threshold")
    q.add_argument("--top", type=int, default=10, help="outliers listed in the summary")

    q = kinds.add_parser("duplicates", help="groups of near-identical records")
    common(q)
    q.add_argument("--threshold", type=float, default=0.98, help="cosine (default 0.98)")
    q.add_argument("--method", choices=("auto", "exact", "ivf"), default="auto")


def _open(args: argparse.Namespace) -> Any:
    from .._api.sync import VecStore

    if not os.path.isfile(os.path.join(args.store, "data.mdb")):
        raise StoreNotFoundError(f"no vecstore at {os.path.abspath(args.store)!r}")
    return VecStore.open(args.store, read_only=not args.write_back)


def _filter(text: str | None) -> Any:
    if text is not None and text.lstrip().startswith("{"):
        return json.loads(text)
    return text


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def run_analyze(args: argparse.Namespace) -> int:
    try:
        import vecstore.analytics as va
        from vecstore._analysis.source import need

        need("sklearn")
    except ImportError as exc:
        print(f"vecstore analyze: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": {"type": "ImportError", "message": str(exc)},
                              "exit_code": EXIT_ERROR}))
        return EXIT_ERROR
    bar = PhaseBar("reading", "vectors", enabled=not args.quiet)
    t0 = time.perf_counter()
    try:
        with _open(args) as store:
            view = store.partition(args.partition) if args.partition else store
            snap = view.snapshot(version=args.version)
            flt = _filter(args.filter)
            doc, lines, labels = _run(va, args, snap, flt, bar)
            bar.close()
            if args.write_back:
                _say(args, f"writing {len(labels):,} labels into {args.write_back!r}")
                res = va.AnalysisResult(args.analysis, snap.version, snap.partition_name,
                                        list(labels), labels=labels, _snapshot=snap)
                wb = res.write_back(view, field=args.write_back)
                doc["write_back"] = {"field": args.write_back, "version": wb.version,
                                     "written": wb.written, "skipped": wb.skipped}
                lines.append(f"wrote {args.write_back!r} on {wb.written:,} records: version "
                             f"{wb.version}" + (f" ({len(wb.skipped)} changed since, skipped)"
                                                if wb.skipped else ""))
    finally:
        bar.close()
    doc["duration"] = time.perf_counter() - t0
    emit(args, doc, lines)
    return EXIT_OK


def _run(va: Any, args: argparse.Namespace, snap: Any, flt: Any, bar: PhaseBar
         ) -> tuple[dict[str, Any], list[str], dict[str, int]]:
    head = {"store": os.path.abspath(args.store), "analysis": args.analysis,
            "version": snap.version, "partition": snap.partition_name, "filter": args.filter}
    where = f"version {snap.version}" + (f", partition {snap.partition_name!r}"
                                         if snap.partition_name != "default" else "")
    if args.analysis == "duplicates":
        src = _source.read(snap, flt, bar, min_rows=0)
        method = _dups.pick_method(len(src.ids), args.method)
        _say(args, f"finding duplicates among {len(src.ids):,} records ({method})")
        groups = _dups.duplicates_of(src.ids, src.unit, args.threshold, method=method)
        labels = {rid: g for g, grp in enumerate(groups) for rid in grp}
        doc = {**head, "records": len(src.ids), "threshold": args.threshold, "method": method,
               "groups": groups}
        lines = [(f"{len(groups):,} group(s) of near-duplicates (cosine >= {args.threshold}) "
                  f"among {len(src.ids):,} records at {where}")]
        lines += [f"  {len(g)}: {', '.join(g[:8])}{' ...' if len(g) > 8 else ''}"
                  for g in groups[:20]]
        if len(groups) > 20:
            lines.append(f"  ... and {len(groups) - 20} more")
        return doc, lines, labels
    if args.analysis == "kmeans":
        est: Any = va.KMeansClustering(args.clusters, args.seed, max_iter=args.max_iter,
                                       backend=args.backend)
    elif args.analysis == "dbscan":
        est = va.DBSCAN(args.eps, args.min_samples, backend=args.backend)
    elif args.method == "isolation-forest":
        est = va.IsolationForest(args.seed)
    elif args.method == "lof":
        est = va.LOF(args.neighbors)
    else:
        est = va.ZScoreDetector(args.threshold)

    def phase(done: int, total: int) -> None:
        bar(done, total)
        if total and done >= total:
            bar.close()
            _say(args, f"running {args.analysis} on {total:,} records")

    res = est.fit(snap, flt, progress=phase)
    info = {k: v for k, v in res.info.items() if k != "centroids"}
    doc = {**head, "records": len(res.ids), "backend": res.backend, "params": res.params,
           "info": info, "labels": res.labels}
    if res.scores:
        doc["scores"] = res.scores
    if args.analysis == "outliers":
        top = res.outliers[:args.top]
        lines = [(f"{len(res.outliers):,} outlier(s) among {len(res.ids):,} records at {where} "
                  f"({res.kind}, {res.backend})")]
        lines += [f"  {rid}  score={res.scores[rid]:.4f}" for rid in top]
    else:
        sizes = Counter(res.labels.values())
        lines = [(f"{res.n_clusters} cluster(s) among {len(res.ids):,} records at {where} "
                  f"({res.kind}, {res.backend})")]
        lines += [f"  cluster {c}: {n:,} records" if c != -1 else f"  noise: {n:,} records"
                  for c, n in sorted(sizes.items())[:50]]
        if "inertia" in info:
            lines.append(f"  inertia {info['inertia']:.6g}")
    return doc, lines, res.labels

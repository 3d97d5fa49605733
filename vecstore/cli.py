"""The ``vecstore`` command line.

Implemented so far: ``vecstore stats [--json] STORE``.  The other commands
of the contract (import, export, query, versions, rollback, check) are not
built yet and say so with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ._errors import VecStoreError
from ._store import VecStore

NOT_YET = ("import", "export", "query", "versions", "rollback", "check")


def _stats(args: argparse.Namespace) -> int:
    with VecStore.open(args.store, read_only=True) as store:
        stats = store.stats().to_dict()
    if args.json:
        print(json.dumps(stats, sort_keys=True))
    else:
        for key, value in stats.items():
            print(f"{key}: {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vecstore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("stats", help="summary of a store")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("store")
    p.set_defaults(func=_stats)
    for name in NOT_YET:
        q = sub.add_parser(name, help="(not built yet)")
        q.add_argument("rest", nargs="*")
        q.set_defaults(func=None)
    args = parser.parse_args(argv)
    if args.func is None:
        print(f"vecstore {args.command}: not built yet in this version", file=sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except (VecStoreError, OSError) as exc:
        print(f"vecstore {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

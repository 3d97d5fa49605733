"""What a crash state holds, read in a fresh process (a forkserver child).

:func:`observe` opens the store the way a user would after the power came
back (``VecStore.open(path)``, the stored config), collects every record
with whether its vector bytes and metadata are exactly what the op that
wrote it wrote, the version, the indexes and the import progress, runs the
in-process consistency check (``stress/_check.py``) and ``vecstore check``,
and writes all of it as JSON for the parent to judge against the acks.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .workload import DIM, IMPORT_OP, IMPORT_PART, meta


def observe(path: str, out: str, import_src: str | None) -> None:
    res: dict[str, Any] = {"missing": False}
    try:
        res.update(_observe(path, import_src))
    except Exception as exc:
        import traceback

        res["crash"] = "".join(traceback.format_exception(exc))[-1500:]
    with open(out, "w") as f:
        json.dump(res, f)


def _observe(path: str, import_src: str | None) -> dict[str, Any]:
    from stress import _check
    from stress._common import fmt_exc, vecstore_warnings, vector_for
    from vecstore import VecStore

    res: dict[str, Any] = {}
    if not os.path.isdir(path):
        return {"missing": True, "records": {}, "version": 0}
    res["files"] = sorted(os.listdir(path))
    with vecstore_warnings() as warned:
        try:
            store = VecStore.open(path)
        except Exception as exc:
            return {"open_error": fmt_exc(exc), "warnings": list(warned), "files": res["files"]}
        try:
            res["version"] = store.version
            recs: dict[str, dict[str, Any]] = {}
            bad: list[str] = []
            for part in store.partitions():
                got: dict[str, Any] = {}
                for rec in store.partition(part).scan():
                    if part == IMPORT_PART:
                        i = rec.metadata.get("i")
                        ok = isinstance(i, int) and rec.id == f"m{i}" and np.array_equal(
                            rec.vector, vector_for(rec.id, IMPORT_OP, DIM))
                        got[rec.id] = [i, rec.version]
                    else:
                        op = rec.metadata.get("op")
                        ok = isinstance(op, int) and rec.metadata == meta(op) and \
                            rec.vector.dtype == np.float32 and \
                            np.array_equal(rec.vector, vector_for(rec.id, op, DIM))
                        got[rec.id] = [op, rec.version]
                    if not ok:
                        bad.append(f"{part}/{rec.id}: metadata {rec.metadata!r} or vector "
                                   "differs from what its op wrote")
                recs[part] = got
            res["records"] = recs
            res["bad"] = bad[:5]
            res["indexes"] = sorted(store.indexes())
            if import_src:
                from vecstore.migration._progress import progress_key

                p = store._engine.get_meta(progress_key(IMPORT_PART, os.path.abspath(import_src),
                                                        ""))
                res["progress"] = None if p is None else {"offset": p.get("offset"),
                                                          "done": p.get("done")}
            res["problems"] = _check.check_store(store)
        finally:
            store.close()
    res["warnings"] = list(warned)
    _check._CLI["subprocess_done"] = True  # same code as the CLI, without an interpreter start
    avail, clean, said = _check.cli_check(path)
    res["cli"] = [avail, clean, said]
    return res

"""Where an import stands, and the file of records it rejected.

An import's progress lives in the store's ``meta`` table under
``import:<partition>:<hash of (source path, id prefix)>`` and is written in
the same LMDB transaction as each batch's records, so after any
interruption the store holds exactly the batches the progress says it does.
The value (CBOR)::

    {"v": 1, "format", "identity": {"path", "size", "head_sha256"},
     "partition", "id_prefix", "offset" (next record position), "done",
     "base_version" (store version when this import (re)started),
     "message", "reject_file", "rejects_bytes", "imported", "errors",
     "started", "updated"}

``rejects_bytes`` is the length of the reject file once the batch's rejects
were appended (and fsynced) -- they are written *before* the batch commits,
so a resumed run first cuts the file back to that length: rejects of a
batch that never committed disappear, none is listed twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from .._errors import MigrationError
from ._config import Failure, MigrationConfig

PREFIX = "import:"


def progress_key(partition: str, source_path: str, id_prefix: str) -> str:
    digest = hashlib.sha256(f"{source_path}\0{id_prefix}".encode("utf-8", "surrogatepass"))
    return f"{PREFIX}{partition}:{digest.hexdigest()[:20]}"


def default_reject_file(store_path: str, source_path: str, key: str) -> str:
    base = os.path.basename(source_path) or "source"
    return f"{os.path.abspath(store_path).rstrip(os.sep)}.rejects-{base}-{key[-8:]}.jsonl"


@dataclass
class Plan:
    """What this run does: where it starts and what it carries over."""

    key: str
    start: int
    resumed: bool  # continues an earlier run's progress
    already_complete: bool
    base_version: int
    message: str
    reject_file: str
    keep_reject_bytes: int | None  # cut the reject file to this size (None: see keep_below)
    keep_below: int | None  # or: keep only rejects at positions below this
    imported: int  # cumulative counts carried over
    errors: int
    started: float
    previous: dict[str, Any] | None


def _identity_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    if old.get("size") != new.get("size"):
        return f"its size changed from {old.get('size')} to {new.get('size')} bytes"
    return "the first MiB of its content changed"


def make_plan(prev: dict[str, Any] | None, *, key: str, fmt: str, identity: dict[str, Any],
              cfg: MigrationConfig, version: int, message: str, reject_file: str) -> Plan:
    """Decide where this run starts from the recorded progress ``prev``."""
    now = time.time()
    fresh = Plan(key, cfg.resume_from or 0, False, False, version, message,
                 cfg.reject_file or reject_file, 0, None, 0, 0, now, prev)
    if prev is None:
        return fresh
    if prev.get("identity") != identity or prev.get("format") != fmt:
        if not cfg.restart:
            what = (f"it was imported as {prev.get('format')} before" if prev.get("format") != fmt
                    else _identity_change(prev.get("identity") or {}, identity))
            state = "finished" if prev.get("done") else f"stopped at record {prev.get('offset')}"
            raise MigrationError(
                f"the source file {identity['path']!r} is not the one an earlier import into "
                f"this store read ({state}): {what}. Refusing to mix two different files: "
                "import it again from the start with restart=True (vecstore import --restart), "
                "or import it into another partition or with another id prefix")
        return fresh
    if cfg.restart:
        return fresh
    rejects = cfg.reject_file or prev.get("reject_file") or reject_file
    same_file = rejects == prev.get("reject_file")
    keep_bytes = int(prev.get("rejects_bytes", 0)) if same_file else None
    offset = int(prev.get("offset", 0))
    carry = Plan(key, offset, True, bool(prev.get("done")), int(prev.get("base_version", version)),
                 prev.get("message") or message, rejects, keep_bytes, None,
                 int(prev.get("imported", 0)), int(prev.get("errors", 0)),
                 float(prev.get("started", now)), prev)
    if cfg.resume_from is None:
        return carry
    n = cfg.resume_from
    carry.already_complete = False
    if n >= offset:  # skipping forward: same import, records in between are left out
        carry.start = n
        return carry
    # Going back: re-import [n, offset).  Those records were written by this import
    # already, so duplicate detection starts afresh from here, and the reject file
    # keeps only what lies before n.
    return Plan(key, n, True, False, version, carry.message, rejects, None,
                n if same_file else None, 0, 0, now, prev)


def progress_value(plan: Plan, *, fmt: str, identity: dict[str, Any], partition: str,
                   id_prefix: str, offset: int, done: bool, rejects_bytes: int,
                   imported: int, errors: int) -> dict[str, Any]:
    return {"v": 1, "format": fmt, "identity": identity, "partition": partition,
            "id_prefix": id_prefix, "offset": offset, "done": done,
            "base_version": plan.base_version, "message": plan.message,
            "reject_file": plan.reject_file, "rejects_bytes": rejects_bytes,
            "imported": imported, "errors": errors, "started": plan.started,
            "updated": time.time()}


def _json_id(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


class RejectLog:
    """The reject file: one JSON line per rejected record, appended in file
    order; created only when the first record is rejected."""

    def __init__(self, path: str, keep_bytes: int | None, keep_below: int | None) -> None:
        self.path = path
        self._f: Any = None
        self.size = 0
        try:
            if keep_below is not None:
                self._keep_positions_below(keep_below)
            elif keep_bytes is not None and os.path.exists(path):
                if os.path.getsize(path) > keep_bytes:
                    with open(path, "r+b") as f:
                        f.truncate(keep_bytes)
                        f.flush()
                        os.fsync(f.fileno())
                if keep_bytes == 0:
                    os.remove(path)
            self.size = os.path.getsize(path) if os.path.exists(path) else 0
        except OSError as exc:
            raise MigrationError(f"cannot prepare the reject file {path!r}: {exc}") from exc

    def _keep_positions_below(self, n: int) -> None:
        if not os.path.exists(self.path):
            return
        tmp = self.path + ".tmp"
        with open(self.path, "rb") as src, open(tmp, "wb") as dst:
            for line in src:
                try:
                    pos = json.loads(line)["position"]
                except (ValueError, KeyError, TypeError):
                    continue
                if isinstance(pos, int) and pos < n:
                    dst.write(line if line.endswith(b"\n") else line + b"\n")
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, self.path)

    def write(self, failures: list[Failure]) -> int:
        """Append and fsync ``failures``; return the file's new size."""
        if not failures:
            return self.size
        try:
            if self._f is None:
                self._f = open(self.path, "ab")  # noqa: SIM115 - kept open, closed by close()
            data = "".join(json.dumps({**f.to_dict(), "id": _json_id(f.id)},
                                      ensure_ascii=False) + "\n" for f in failures)
            self._f.write(data.encode("utf-8", "backslashreplace"))
            self._f.flush()
            os.fsync(self._f.fileno())
            self.size = self._f.tell()
        except OSError as exc:
            raise MigrationError(f"cannot write the reject file {self.path!r}: {exc}") from exc
        return self.size

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

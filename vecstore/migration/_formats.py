"""Export formats of other vector databases: streaming readers and writers.

Supported formats (:data:`FORMATS`):

* ``pinecone`` -- one JSON document ``{"vectors": [{"id", "values",
  "metadata"?}, ...]}``; other top-level keys are ignored.
* ``qdrant`` -- JSON Lines, one point per line: ``{"id", "vector" (a list,
  or a dict of named vectors), "payload"}``; blank lines are skipped.
* ``weaviate`` -- one JSON document ``{"vectors": [{"id", "vector",
  "properties", "class"}, ...]}``; ``properties`` is the metadata.
* ``chroma`` -- one JSON document in the columnar shape of
  ``collection.get(include=["embeddings", "metadatas", "documents"])``;
  ``metadatas`` and ``documents`` may be null or missing.

Everything streams: memory use does not grow with the file size.  This
module is the public face; the work is done in ``_readers``, ``_chroma`` and
``_writers``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Generator
from dataclasses import dataclass

import ijson

from .._errors import MigrationError
from ._chroma import read_chroma
from ._readers import (
    FORMATS,
    SourceRecord,
    check_format,
    check_source,
    open_binary,
    parse_error,
    read_document,
    read_jsonl,
)
from ._writers import write_export

__all__ = [
    "FORMATS",
    "SourceInfo",
    "SourceRecord",
    "estimate_total",
    "open_reader",
    "source_info",
    "write_export",
]

_HEAD_BYTES = 1 << 20
#: JSONL files smaller than this are line-counted exactly by estimate_total.
_JSONL_EXACT_LIMIT = 64 << 20
#: Larger JSONL files are extrapolated from this many leading bytes.
_JSONL_SAMPLE_BYTES = 4 << 20
#: JSON documents: sample at least this many bytes and _MIN_SAMPLE_RECORDS
#: records (unless the file ends first, which gives an exact count) ...
_DOC_SAMPLE_BYTES = 1 << 20
_MIN_SAMPLE_RECORDS = 16
#: ... but never read more than this for an estimate.
_DOC_SAMPLE_MAX_BYTES = 64 << 20
_CHUNK = 16 << 10


def open_reader(fmt: str, path: str | os.PathLike[str], *, start: int = 0,
                vector_name: str | None = None,
                reject_malformed: bool = False) -> Generator[SourceRecord, None, None]:
    """Stream the records of an export file, starting at record ``start``.

    The format, the ``start`` argument and the file's existence are checked
    at once (MigrationError); the file is opened on the first ``next()`` and
    closed when the iterator is exhausted, fails, or is closed.  Records
    before ``start`` are parsed (to find where ``start`` is) but not yielded;
    skipped Qdrant lines are only checked for blankness, not parsed.
    ``vector_name`` picks one of several named vectors (Qdrant, Weaviate).

    A JSON Lines (Qdrant) line that does not parse raises MigrationError,
    or, with ``reject_malformed``, is yielded as an error record of its own
    (the importer's ``validate=True``).  JSON documents have no such unit:
    where their parser cannot continue, the reader raises.
    """
    check_format(fmt)
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise MigrationError(f"start must be a non-negative int, got {start!r}")
    p, _ = check_source(path)
    if fmt == "qdrant":
        return read_jsonl(p, start, vector_name, reject_malformed)
    if fmt == "chroma":
        return read_chroma(p, start)
    return read_document(fmt, p, start, vector_name)


@dataclass(frozen=True)
class SourceInfo:
    """What identifies a source file for resuming an interrupted import.

    ``path`` is absolute; ``head_sha256`` is the SHA-256 of the first MiB
    (the whole file if smaller).  ``mtime_ns`` is informational only: it is
    not part of :meth:`identity`, since copying a file changes it.
    """

    path: str
    size: int
    head_sha256: str
    mtime_ns: int

    def identity(self) -> dict[str, object]:
        """The fields a resume compares: ``{"path", "size", "head_sha256"}``."""
        return {"path": self.path, "size": self.size, "head_sha256": self.head_sha256}


def source_info(path: str | os.PathLike[str]) -> SourceInfo:
    """Stat and fingerprint *path* (MigrationError if it cannot be read)."""
    p, _ = check_source(path)
    with open_binary(p) as f:
        st = os.fstat(f.fileno())
        head = f.read(_HEAD_BYTES)
    return SourceInfo(
        path=os.path.abspath(p),
        size=st.st_size,
        head_sha256=hashlib.sha256(head).hexdigest(),
        mtime_ns=st.st_mtime_ns,
    )


def estimate_total(fmt: str, path: str | os.PathLike[str]) -> int:
    """A cheap estimate of how many records ``open_reader(fmt, path)`` yields.

    * qdrant: non-blank lines, counted exactly below 64 MiB, else
      extrapolated from the first 4 MiB.
    * chroma: exact -- the length of the ``ids`` column, streamed alone.
    * pinecone, weaviate: bytes per record over the first records (at least
      1 MiB and 16 records), extrapolated to the file size; exact when the
      sample reaches the end of the file.
    """
    check_format(fmt)
    p, size = check_source(path)
    if fmt == "qdrant":
        return _estimate_jsonl(p, size)
    if fmt == "chroma":
        return _count_chroma_ids(p)
    return _estimate_document(fmt, p, size)


def _estimate_jsonl(path: str, size: int) -> int:
    with open_binary(path) as f:
        if size < _JSONL_EXACT_LIMIT:
            return sum(1 for line in f if not line.isspace())
        data = f.read(_JSONL_SAMPLE_BYTES)
    end = data.rfind(b"\n") + 1
    if end == 0:
        return 1
    count = sum(1 for line in data[:end].splitlines() if line and not line.isspace())
    return max(1, round(count * size / end))


def _estimate_document(fmt: str, path: str, size: int) -> int:
    sink = ijson.sendable_list()
    coro = ijson.items_coro(sink, "vectors.item", use_float=True)
    count = done_at = read = 0
    with open_binary(path) as f:
        try:
            while True:
                chunk = f.read(_CHUNK)
                if not chunk:
                    coro.close()
                    return count + len(sink)
                read += len(chunk)
                coro.send(chunk)
                if sink:
                    count += len(sink)
                    sink.clear()
                    done_at = read
                if read >= _DOC_SAMPLE_MAX_BYTES or (
                    read >= _DOC_SAMPLE_BYTES and count >= _MIN_SAMPLE_RECORDS
                ):
                    break
        except (ijson.JSONError, ValueError) as e:
            raise parse_error(fmt, path, count, f, e) from e
        except (MemoryError, RecursionError):
            raise MigrationError(
                f"malformed {fmt} export {path!r}: the record at position {count} is nested "
                "too deeply or too large to parse") from None
    return round(count * size / done_at) if count else 0


def _count_chroma_ids(path: str) -> int:
    """Length of the top-level ``ids`` array (0 if null or missing).

    When ``ids`` is the first key (as Chroma writes it) the parse stops at
    the end of that array; otherwise ijson's C item iterator counts it.
    """
    try:
        with open_binary(path) as f:
            events = ijson.parse(f)
            first = next(events, None)
            if first is None or first[1] != "start_map":
                return 0
            for prefix, event, value in events:
                if prefix == "" and event == "map_key":
                    if value != "ids":
                        break
                    if next(events, ("", "", None))[1] != "start_array":
                        return 0
                    n = 0
                    for prefix, event, _ in events:
                        if prefix == "ids.item":
                            n += event not in ("end_map", "end_array")
                        elif prefix == "ids":
                            return n
                    return n
        with open_binary(path) as f:
            return sum(1 for _ in ijson.items(f, "ids.item"))
    except (ijson.JSONError, ValueError) as e:
        raise parse_error("chroma", path, 0, None, e, ", counting 'ids'") from e


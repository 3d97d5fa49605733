"""Streaming readers for the export formats of other vector databases.

Every reader is a generator yielding :class:`SourceRecord` objects in file
order while holding one record (per column, for Chroma) in memory at a time.
Structural problems of a single record (not an object, no id, no vector, and
-- when asked for -- a JSON Lines line that does not parse) become
``SourceRecord.error`` with a short excerpt of the offending text; a file
that cannot be parsed any further raises :class:`MigrationError`.  The
Chroma reader is in ``_chroma``.

JSON documents (Pinecone, Weaviate, Chroma) are parsed with ijson's C
backend; JSON Lines (Qdrant) one line at a time with orjson (see
:func:`_loads_line`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

import ijson
import orjson

from .._errors import MigrationError

FORMATS: tuple[str, ...] = ("pinecone", "qdrant", "weaviate", "chroma")
#: The first line of an incremental (``--since``) Qdrant export: ``{"vecstore":{...}}``.
HEADER_LINE = b'{"vecstore":'

_KINDS = {"start_array": "array", "start_map": "object", "null": "null"}


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record as found in a source file, before any validation.

    ``position`` is the 0-based index of the record in the file (blank JSONL
    lines do not count) and is the unit of resume offsets.  ``id``,
    ``vector`` and ``metadata`` are the raw values (``None`` when absent);
    ``document`` is set only for Chroma.  ``error`` describes a structural
    problem the reader found; the importer rejects such records one by one.
    ``excerpt`` (error records only; not compared) is the start of the
    offending text, for the reject file.
    """

    position: int
    id: object
    vector: object
    metadata: object
    document: str | None
    error: str | None = None
    excerpt: str | None = field(default=None, compare=False)
    deleted: bool = False  # a tombstone of an incremental export (``--since``)
    sparse: object = None  # a sparse vector (Pinecone sparse_values, a Qdrant named one)


#: Excerpts of rejected records are cut to this many characters.
EXCERPT_CHARS = 120


def excerpt_text(raw: bytes | str) -> str:
    """The start of a piece of source text, on one line."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = " ".join(text[: EXCERPT_CHARS * 4].split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 3] + "..."


def excerpt_value(value: object) -> str:
    """The start of a parsed value, written back as JSON."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return excerpt_text(text)


def check_format(fmt: object) -> str:
    """Return *fmt* if it names a supported format, else raise MigrationError."""
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise MigrationError(
            f"unknown export format {fmt!r}; expected one of: {', '.join(FORMATS)}"
        )
    return fmt


def check_source(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Return ``(path, size)`` of an existing regular file, else raise MigrationError."""
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise MigrationError(f"source file not found: {p!r}") from None
    except OSError as e:
        raise MigrationError(f"cannot read source file {p!r}: {e}") from e
    if not os.path.isfile(p):
        raise MigrationError(f"source path is not a regular file: {p!r}")
    return p, st.st_size


def open_binary(path: str) -> BinaryIO:
    """Open *path* for reading, turning OS errors into MigrationError."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise MigrationError(f"source file not found: {path!r}") from None
    except OSError as e:
        raise MigrationError(f"cannot open source file {path!r}: {e}") from e


def parse_error(fmt: str, path: str, pos: int, f: BinaryIO | None, exc: Exception,
                where: str = "") -> MigrationError:
    """Build the MigrationError for JSON the parser could not continue past."""
    raw = exc.args[0] if exc.args else str(exc)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    msg = lines[0] if lines else type(exc).__name__
    if len(lines) > 1 and "(right here)" not in lines[1]:
        msg += f" near {lines[1]!r}"
    offset = ""
    if f is not None and not f.closed:
        offset = f", parser had read {f.tell()} bytes"
    return MigrationError(
        f"malformed {fmt} export {path!r}: {msg} (at record position {pos}{where}{offset})"
    )


def _problem(obj: dict[str, Any], key: str) -> str | None:
    if key not in obj:
        return f"missing {key!r}"
    if obj[key] is None:
        return f"{key!r} is null"
    return None


def join_problems(*problems: str | None) -> str | None:
    found = [p for p in problems if p]
    return "; ".join(found) if found else None


def _not_object(pos: int, obj: object) -> SourceRecord:
    return SourceRecord(pos, None, None, None, None,
                        f"record is not an object (got {type(obj).__name__})")


def with_excerpt(rec: SourceRecord, obj: object) -> SourceRecord:
    """``rec``, with an excerpt if it is an error record: of ``obj`` as
    source text if it is bytes (a JSONL line), else written back as JSON."""
    if rec.error is None:
        return rec
    return replace(rec, excerpt=excerpt_text(obj) if isinstance(obj, bytes)
                   else excerpt_value(obj))


def pick_named(vec: dict[str, Any], vector_name: str | None) -> tuple[object, str | None]:
    """Choose one vector from a dict of named vectors: ``(vector, error)``."""
    names = ", ".join(repr(k) for k in list(vec)[:10]) + (", ..." if len(vec) > 10 else "")
    if vector_name is not None:
        if vector_name in vec:
            return vec[vector_name], None
        return vec, f"no vector named {vector_name!r} (record has {names or 'none'})"
    if len(vec) == 1:
        return next(iter(vec.values())), None
    if not vec:
        return vec, "named vectors object is empty"
    return vec, f"record has several named vectors ({names}); pass vector_name to choose one"


def tombstone(pos: int, obj: object, vec_key: str) -> SourceRecord | None:
    """An incremental export's deletion, ``{"id": ..., "deleted": true}``
    (no vector), or None."""
    if isinstance(obj, dict) and obj.get("deleted") is True and obj.get(vec_key) is None:
        return SourceRecord(pos, obj.get("id"), None, None, None, _problem(obj, "id"),
                            deleted=True)
    return None


def _pinecone_record(pos: int, obj: object, vector_name: str | None) -> SourceRecord:
    if not isinstance(obj, dict):
        return _not_object(pos, obj)
    gone = tombstone(pos, obj, "values")
    if gone is not None:
        return gone
    err = join_problems(_problem(obj, "id"), _problem(obj, "values"))
    return SourceRecord(pos, obj.get("id"), obj.get("values"), obj.get("metadata"), None, err,
                        sparse=obj.get("sparse_values"))


def _vector_record(pos: int, obj: object, vector_name: str | None,
                   meta_key: str) -> SourceRecord:
    """Qdrant point / Weaviate object: ``vector`` may be a dict of named
    vectors; Weaviate's named vectors may also sit under ``vectors`` (with
    ``vector`` absent, null or empty)."""
    if not isinstance(obj, dict):
        return _not_object(pos, obj)
    gone = tombstone(pos, obj, "vector")
    if gone is not None:
        return gone
    vec, verr = obj.get("vector"), _problem(obj, "vector")
    if (vec is None or vec == []) and meta_key == "properties" \
            and isinstance(obj.get("vectors"), dict):
        vec = obj["vectors"]
    sparse = None
    if isinstance(vec, dict):
        sparse, serr = _sparse_named(vec)  # Qdrant: {"indices", "values"} among named vectors
        dense = {k: v for k, v in vec.items() if not _is_sparse(v)}
        vec, verr = pick_named(dense, vector_name)
        verr = join_problems(verr, serr)
    err = join_problems(_problem(obj, "id"), verr)
    return SourceRecord(pos, obj.get("id"), vec, obj.get(meta_key), None, err, sparse=sparse)


def _is_sparse(v: object) -> bool:
    return isinstance(v, dict) and set(v) == {"indices", "values"}


def _sparse_named(vec: dict[str, Any]) -> tuple[object, str | None]:
    """The one sparse vector among a point's named vectors (None if none)."""
    names = [k for k, v in vec.items() if _is_sparse(v)]
    if len(names) > 1:
        return None, f"record has several sparse vectors ({', '.join(map(repr, names))})"
    return (vec[names[0]] if names else None), None


def _weaviate_record(pos: int, obj: object, vector_name: str | None) -> SourceRecord:
    return _vector_record(pos, obj, vector_name, "properties")


def _qdrant_record(pos: int, obj: object, vector_name: str | None) -> SourceRecord:
    return _vector_record(pos, obj, vector_name, "payload")


_Builder = Callable[[int, object, "str | None"], SourceRecord]
_DOC_BUILDERS: dict[str, _Builder] = {"pinecone": _pinecone_record, "weaviate": _weaviate_record}


MAX_NESTING = 64  # deeper JSON is refused before a parser builds it
_BRACKETS_CHECKED = 256  # lines with fewer brackets cannot be that deep


def _nesting(line: bytes) -> int:
    """Deepest bracket nesting of a JSON text (strings are skipped)."""
    depth = best = 0
    in_str = escape = False
    for ch in line:
        if in_str:
            if escape:
                escape = False
            elif ch == 0x5C:  # backslash
                escape = True
            elif ch == 0x22:
                in_str = False
        elif ch == 0x22:
            in_str = True
        elif ch in (0x5B, 0x7B):
            depth += 1
            if depth > best:
                best = depth
                if best > MAX_NESTING:
                    return best
        elif ch in (0x5D, 0x7D):
            depth -= 1
    return best


def _loads_line(line: bytes) -> object:
    """Parse one JSONL line.

    With orjson (about 4x faster than ijson and 10x faster than json.loads
    on a line of 384 floats); anything orjson rejects is handed to
    json.loads, so the accepted syntax (NaN, huge numbers, BOM) and the
    error messages are json.loads's.
    """
    if line.count(b"[") + line.count(b"{") > _BRACKETS_CHECKED and \
            _nesting(line) > MAX_NESTING:
        raise ValueError(f"nested deeper than {MAX_NESTING} levels")
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


def read_jsonl(path: str, start: int, vector_name: str | None,
               reject_malformed: bool = False) -> Generator[SourceRecord, None, None]:
    """Qdrant points, one per non-blank line.  A line that is not JSON
    raises MigrationError, or with ``reject_malformed`` becomes an error
    record of its own (every line has a position, parsed or not, so resume
    offsets do not depend on which lines parse)."""
    f = open_binary(path)
    try:
        pos = 0
        for lineno, line in enumerate(f, 1):
            if line.isspace() or line.startswith(HEADER_LINE):
                continue  # (the header of an incremental export is not a record)
            if pos >= start:
                try:
                    obj = _loads_line(line)
                except ValueError as e:
                    if not reject_malformed:
                        raise MigrationError(
                            f"malformed qdrant export {path!r}: line {lineno} (record position "
                            f"{pos}) is not valid JSON: {e}"
                        ) from e
                    yield SourceRecord(pos, None, None, None, None,
                                       f"line {lineno} is not valid JSON: {e}",
                                       excerpt_text(line))
                else:
                    yield with_excerpt(_qdrant_record(pos, obj, vector_name), line)
            pos += 1
    finally:
        f.close()


def probe_kind_events(path: str, key: str) -> str:
    """Kind of the top-level value *key* by walking parse events up to it.

    Returns "array", "object", "null", "scalar", "missing", or "not-object"
    (the document itself is not an object).  Cheap when the key comes early.
    """
    with open_binary(path) as f:
        events = ijson.parse(f, use_float=True)
        first = next(events, None)
        if first is None or first[1] != "start_map":
            return "not-object"
        for prefix, event, value in events:
            if prefix == "" and event == "map_key" and value == key:
                return _KINDS.get(next(events, ("", "", None))[1], "scalar")
    return "missing"


def read_document(fmt: str, path: str, start: int,
                   vector_name: str | None) -> Generator[SourceRecord, None, None]:
    build = _DOC_BUILDERS[fmt]
    f = open_binary(path)
    pos = 0
    try:
        items = ijson.items(f, "vectors.item", use_float=True)
        while True:
            try:
                obj = next(items)
            except StopIteration:
                break
            except (ijson.JSONError, ValueError) as e:
                raise parse_error(fmt, path, pos, f, e) from e
            except (MemoryError, RecursionError):
                # a record nested absurdly deep (ijson cannot stream inside one record)
                raise MigrationError(
                    f"malformed {fmt} export {path!r}: the record at position {pos} is "
                    f"nested too deeply or too large to parse") from None
            if pos >= start:
                yield with_excerpt(build(pos, obj, vector_name), obj)
            pos += 1
    finally:
        f.close()
    if pos == 0:
        try:
            kind = probe_kind_events(path, "vectors")
        except (ijson.JSONError, ValueError) as e:
            raise parse_error(fmt, path, 0, None, e) from e
        if kind != "array":
            detail = ("the document is not a JSON object" if kind == "not-object"
                      else f"'vectors' is {kind}")
            raise MigrationError(
                f"not a {fmt} export {path!r}: expected a top-level 'vectors' array, but {detail}"
            )

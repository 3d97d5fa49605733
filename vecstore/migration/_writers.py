"""Streaming writers for the export formats (see ``_formats`` for the shapes).

Records are written as they come, one at a time.  The columnar Chroma
format is produced in a single pass over the records: ``ids`` goes straight
to the output while ``embeddings``, ``metadatas`` and ``documents`` are
spooled to temporary files next to the destination and appended afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any

import numpy as np

from .._errors import MigrationError
from ._readers import check_format

Row = tuple[Any, ...]
Records = Iterable[Row] | Callable[[], Iterable[Row]]

_BUFFER = 1 << 20
#: ijson (yajl) cannot read integers outside this range back from a JSON
#: document, so the document formats refuse to write them.
_INT64 = (1 - (1 << 63), (1 << 63) - 1)  # yajl also rejects -2**63


def write_export(fmt: str, path: str | os.PathLike[str], records: Records, *,
                 text_field: str | None = None, header: dict[str, Any] | None = None) -> int:
    """Write *records* to *path* in export format *fmt*; return how many.

    *records* is an iterable of ``(id, vector, metadata, document)`` tuples
    (2- and 3-tuples mean no document / no metadata), or a zero-argument
    callable returning one; it is iterated exactly once, for every format.
    ids are written as given (str or int).  Vectors are written as the
    shortest decimal that reads back to the same float64, so float32 data
    round-trips exactly.  ``metadata=None`` is omitted (Pinecone) or null.

    Only Chroma has a documents column.  For the other formats a document is
    stored in ``metadata[text_field]``; a non-None document without
    ``text_field`` (or clashing with a different value already under that
    key) raises MigrationError rather than being dropped.

    The file is written to ``path + ".tmp"``, fsynced and renamed over
    *path*, so *path* is either the old file or the complete new one.
    Invalid records (bad id, non-finite or non-1-D vector, metadata that is
    not a JSON-serializable dict) raise MigrationError naming the record.
    Integers outside the signed 64-bit range (in ids or metadata) are refused
    for the JSON-document formats (pinecone, weaviate, chroma), whose reader
    cannot parse them; Qdrant's JSON Lines reader can, so qdrant allows them.

    ``header`` (an incremental export's versions, see ``_delta``) is written
    as the top-level key ``vecstore`` (the first line, for Qdrant); a row whose
    vector is None is a tombstone.
    """
    check_format(fmt)
    hdr = None if header is None else json.dumps(header, separators=(",", ":"))
    target = os.fspath(path)
    tmp = target + ".tmp"
    rows = records() if callable(records) else records
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n", buffering=_BUFFER) as out:
            if fmt == "chroma":
                n = _write_chroma(out, rows, os.path.dirname(os.path.abspath(target)), hdr)
            else:
                n = _write_rows(fmt, out, rows, text_field, hdr)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        _fsync_dir(os.path.dirname(os.path.abspath(target)))
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise MigrationError(f"cannot write {fmt} export to {target!r}: {e}") from e
        raise
    return n


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unpack(row: Row, index: int) -> tuple[Any, Any, Any, Any]:
    try:
        n = len(row)
    except TypeError:
        n = -1
    if not 2 <= n <= 5:
        raise MigrationError(
            f"record #{index}: expected an (id, vector, metadata, document[, sparse]) tuple, "
            f"got {row!r:.80}"
        )
    id_, vec, meta, doc = (*row, None, None)[:4]
    return id_, vec, meta, doc


def _sparse_json(row: Row) -> str | None:
    """A row's sparse vector (its 5th element) as ``{"indices", "values"}`` JSON."""
    sp = row[4] if len(row) > 4 else None
    if not sp:
        return None
    idx = sorted(sp)
    return json.dumps({"indices": [int(i) for i in idx],
                       "values": [float(sp[i]) for i in idx]}, separators=(",", ":"))


def _check_int64(value: Any, what: str, id_: Any) -> None:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, int) and not _INT64[0] <= v <= _INT64[1]:
            raise MigrationError(f"record {id_!r}: {what} holds an integer outside the "
                                 f"signed 64-bit range: {v}")


def _id_json(id_: Any, index: int, int64: bool) -> str:
    if isinstance(id_, np.integer):
        id_ = int(id_)
    if isinstance(id_, bool) or not isinstance(id_, (str, int)):
        raise MigrationError(f"record #{index}: id must be a str or int, got {id_!r:.80}")
    if int64:
        _check_int64(id_, "id", id_)
    return json.dumps(id_, ensure_ascii=False)


def _vector_json(vec: Sequence[float] | np.ndarray, id_: Any) -> str:
    try:
        arr = np.asarray(vec, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise MigrationError(f"record {id_!r}: vector is not numeric: {e}") from e
    if arr.ndim != 1:
        raise MigrationError(f"record {id_!r}: vector must be one-dimensional, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise MigrationError(f"record {id_!r}: vector holds NaN or infinity")
    return json.dumps(arr.tolist(), separators=(",", ":"))


def _json(value: Any, what: str, id_: Any, int64: bool = False) -> str:
    if value is None:
        return "null"
    if what == "metadata" and not isinstance(value, dict):
        raise MigrationError(f"record {id_!r}: metadata must be a dict or None, "
                             f"got {type(value).__name__}")
    if what == "document" and not isinstance(value, str):
        raise MigrationError(f"record {id_!r}: document must be a str or None, "
                             f"got {type(value).__name__}")
    if int64:
        _check_int64(value, what, id_)
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        text.encode("utf-8")  # lone surrogates cannot be written
    except (TypeError, ValueError) as e:
        raise MigrationError(f"record {id_!r}: {what} cannot be written as JSON: {e}") from e
    return text


def _with_document(fmt: str, meta: Any, doc: Any, text_field: str | None, id_: Any) -> Any:
    """Fold a document into the metadata for formats without documents."""
    if doc is None:
        return meta
    if text_field is None:
        raise MigrationError(
            f"record {id_!r} has a document, but {fmt} exports have no document field; "
            "pass text_field=... to store documents in the metadata"
        )
    if meta is not None and not isinstance(meta, dict):
        return meta  # _json reports it
    merged = dict(meta or {})
    if text_field in merged and merged[text_field] != doc:
        raise MigrationError(
            f"record {id_!r}: metadata already has a different {text_field!r} value "
            "than the document"
        )
    merged[text_field] = doc
    return merged


def _write_rows(fmt: str, out: IO[str], rows: Iterable[Row], text_field: str | None,
                hdr: str | None = None) -> int:
    """Pinecone / Weaviate (one document) and Qdrant (JSON Lines)."""
    if fmt != "qdrant":
        out.write('{"vectors":[\n')
    elif hdr is not None:
        out.write(f'{{"vecstore":{hdr}}}\n')
    n = 0
    for n, row in enumerate(rows, 1):
        id_, vec, meta, doc = _unpack(row, n - 1)
        int64 = fmt != "qdrant"
        ident = _id_json(id_, n - 1, int64)
        if vec is None:  # a tombstone
            sep = "" if fmt == "qdrant" or n == 1 else ",\n"
            end = "\n" if fmt == "qdrant" else ""
            out.write(f'{sep}{{"id":{ident},"deleted":true}}{end}')
            continue
        vector = _vector_json(vec, id_)
        meta = _with_document(fmt, meta, doc, text_field, id_)
        meta_text = _json(meta, "metadata", id_, int64)
        sep = ",\n" if n > 1 else ""
        sparse = _sparse_json(row)  # (id, vector, metadata, document, sparse)
        if fmt == "qdrant":
            if sparse is not None:  # named vectors: the dense one and the sparse one
                vector = f'{{"dense":{vector},"sparse":{sparse}}}'
            out.write(f'{{"id":{ident},"vector":{vector},"payload":{meta_text}}}\n')
        elif fmt == "weaviate":
            out.write(f'{sep}{{"id":{ident},"vector":{vector},"properties":{meta_text}}}')
        else:
            tail = "" if meta is None else f',"metadata":{meta_text}'
            if sparse is not None:
                tail += f',"sparse_values":{sparse}'
            out.write(f'{sep}{{"id":{ident},"values":{vector}{tail}}}')
    if fmt != "qdrant":
        out.write("\n]" + ("" if hdr is None else f',\n"vecstore":{hdr}') + "}\n")
    return n


def _write_chroma(out: IO[str], rows: Iterable[Row], spool_dir: str,
                  hdr: str | None = None) -> int:
    """Columnar Chroma document in one pass, spooling three columns."""
    spools = [  # closed in the finally below
        tempfile.TemporaryFile("w+", encoding="utf-8", newline="\n", dir=spool_dir,  # noqa: SIM115
                               prefix=".vecstore-export-", buffering=_BUFFER)
        for _ in range(3)
    ]
    try:
        out.write('{"ids":[')
        n = 0
        for n, row in enumerate(rows, 1):
            id_, vec, meta, doc = _unpack(row, n - 1)
            sep = "," if n > 1 else ""
            ident = _id_json(id_, n - 1, True)
            cells = ("null", '{"deleted":true}', "null") if vec is None else (  # tombstone
                _vector_json(vec, id_), _json(meta, "metadata", id_, True),
                _json(doc, "document", id_))
            out.write(sep + ident)
            for spool, cell in zip(spools, cells):
                spool.write(sep + "\n" + cell)
        for name, spool in zip(("embeddings", "metadatas", "documents"), spools):
            out.write(f'],\n"{name}":[')
            spool.seek(0)
            shutil.copyfileobj(spool, out, _BUFFER)
        out.write("]" + ("" if hdr is None else f',\n"vecstore":{hdr}') + "}\n")
        return n
    finally:
        for spool in spools:
            spool.close()

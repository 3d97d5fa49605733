"""Streaming reader of Chroma exports: the columnar document that
``collection.get(include=["embeddings", "metadatas", "documents"])`` returns.

Each column is parsed by its own ijson iterator over its own file handle, so
one row (one entry per column) is in memory at a time.  A row with a null
id or embedding, or a document that is not a string, becomes an error
record (rejected alone by the importer); columns of different lengths, or a
document the parser cannot continue past, raise :class:`MigrationError`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import ijson

from .._errors import MigrationError
from ._readers import SourceRecord, excerpt_value, join_problems, open_binary, parse_error


def probe_kind_items(path: str, key: str) -> str:
    """Kind of the top-level value *key* by building it with ijson (C speed).

    Only for keys known not to hold a non-empty array (a Chroma column that
    yielded no items), so what gets built is small in any sane file.
    """
    with open_binary(path) as f:
        for value in ijson.items(f, key, use_float=True):
            if value is None:
                return "null"
            return "array" if isinstance(value, list) else type(value).__name__
    return "missing"


_CHROMA_COLUMNS = (("ids", True), ("embeddings", True), ("metadatas", False), ("documents", False))


class _Column:
    """One independently parsed Chroma column."""

    __slots__ = ("absent", "count", "file", "items", "name", "required")

    def __init__(self, name: str, required: bool, path: str) -> None:
        self.name, self.required, self.count, self.absent = name, required, 0, False
        self.file = open_binary(path)
        self.items = ijson.items(self.file, f"{name}.item", use_float=True)


def _mismatch(path: str, cols: list[_Column], short: list[_Column]) -> MigrationError:
    parts = []
    for c in cols:
        if c.absent:
            parts.append(f"{c.name}=absent")
            continue
        n, more = c.count, ""
        if c not in short:
            try:
                n += sum(1 for _ in c.items)
            except (ijson.JSONError, ValueError):
                more = "+ (then unparsable)"
        parts.append(f"{c.name}={n}{more}")
    names = ", ".join(repr(c.name) for c in short)
    return MigrationError(
        f"malformed chroma export {path!r}: columns have different lengths "
        f"({', '.join(parts)}); column {names} ran out first"
    )


def _chroma_row(pos: int, values: list[Any]) -> SourceRecord:
    id_, emb, meta, doc = values
    err = join_problems(
        "'ids' entry is null" if id_ is None else None,
        "'embeddings' entry is null" if emb is None else None,
        "'documents' entry is not a string" if doc is not None and not isinstance(doc, str)
        else None,
    )
    if emb is None and meta == {"deleted": True} and id_ is not None:
        return SourceRecord(pos, id_, None, None, None, None, deleted=True)  # a tombstone
    rec = SourceRecord(pos, id_, emb, meta, doc, err)
    if err is None:
        return rec
    row = {"id": id_, "document": doc, "metadata": meta, "embedding": emb}  # long last
    return SourceRecord(pos, id_, emb, meta, doc, err, excerpt_value(row))


def read_chroma(path: str, start: int) -> Generator[SourceRecord, None, None]:
    cols: list[_Column] = []
    try:
        for name, required in _CHROMA_COLUMNS:
            cols.append(_Column(name, required, path))
        pos = 0
        while True:
            values: list[Any] = []
            ended: list[_Column] = []
            for c in cols:
                value = None
                if not c.absent:
                    try:
                        value = next(c.items)
                        c.count += 1
                    except StopIteration:
                        ended.append(c)
                    except (ijson.JSONError, ValueError) as e:
                        raise parse_error("chroma", path, pos, c.file, e,
                                          f", column {c.name!r}") from e
                values.append(value)
            if ended:
                if len(ended) == sum(not c.absent for c in cols):  # all ran out together
                    if pos == 0 and (kind := probe_kind_items(path, "ids")) != "array":
                        raise MigrationError(
                            f"not a chroma export {path!r}: expected a top-level 'ids' "
                            f"array, but 'ids' is {kind}"
                        )
                    return
                short = []
                for c in ended:
                    kind = "array" if c.count else probe_kind_items(path, c.name)
                    if kind in ("null", "missing") and not c.required:
                        c.absent = True
                    elif kind in ("null", "missing"):
                        raise MigrationError(
                            f"chroma export {path!r} has no {c.name!r} column ({kind}); "
                            "export with include=['embeddings', 'metadatas', 'documents']"
                        )
                    elif kind != "array":
                        raise MigrationError(
                            f"malformed chroma export {path!r}: {c.name!r} is {kind}, not an array"
                        )
                    else:
                        short.append(c)
                if short:
                    raise _mismatch(path, cols, short)
            if pos >= start:
                yield _chroma_row(pos, values)
            pos += 1
    finally:
        for c in cols:
            c.file.close()

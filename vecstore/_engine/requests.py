"""Turn public write-call arguments into validated write requests.

Shared by the sync and async stores: everything here runs in the caller's
thread, so bad input is rejected before it reaches the writer and a failed
call changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import InvalidArgumentError, InvalidArgumentTypeError, InvalidMetadataError
from .._filter.core import parse_filter
from .._metaindex.columns import path_of
from .._metaindex.indexing import check_kind
from .._validate import (
    as_matrix,
    as_vector,
    check_id,
    check_metadata,
    check_partition,
    check_sparse,
    check_values,
    dedupe_last,
    encode_metadata,
)
from .ops import CreateIndex, Delete, DeleteWhere, DropPartition, Upsert

if TYPE_CHECKING:
    from .engine import Engine


def _message(message: Any) -> str | None:
    if message is not None and not isinstance(message, str):
        raise InvalidArgumentTypeError(
            f"message must be a str or None, got {type(message).__name__}")
    return message


def _sparse_list(sparse: Any, n: int) -> list[Any] | None:
    """Validated sparse vectors, one per record (None where a record has none)."""
    if sparse is None:
        return None
    if isinstance(sparse, Mapping):
        raise InvalidArgumentError("sparse= must be a list with one sparse vector per record")
    items = list(sparse)
    if len(items) != n:
        raise InvalidArgumentError(f"{n} ids but {len(items)} sparse vectors")
    out = [None if sv is None else check_sparse(sv) for sv in items]
    return out if any(sv is not None for sv in out) else None


def upsert_one(engine: Engine, partition: str, id: Any, vector: Any, metadata: Any,
               message: Any, sparse: Any = None) -> Upsert:
    rid = check_id(id)
    vec = as_vector(vector, engine.dim)
    mat = vec.reshape(1, -1)
    check_values(mat, engine.distance, [rid])
    meta = check_metadata(metadata)
    return Upsert(check_partition(partition), [rid], mat, [encode_metadata(meta)],
                  _message(message), dicts=[meta],
                  sparse=None if sparse is None else [check_sparse(sparse)])


def upsert_many(engine: Engine, partition: str, items: Iterable[Any] | None, ids: Any,
                vectors: Any, metadata: Any, message: Any, sparse: Any = None) -> Upsert:
    if items is not None:
        if ids is not None or vectors is not None or metadata is not None:
            raise InvalidArgumentTypeError("pass either items or ids=/vectors=/metadata=, not both")
        rows = [tuple(item) for item in items]
        for r in rows:
            if not 2 <= len(r) <= 3:
                raise InvalidArgumentTypeError(
                    "each item must be (id, vector) or (id, vector, metadata)")
        ids = [r[0] for r in rows]
        vectors = [np.asarray(r[1]) if not isinstance(r[1], np.ndarray) else r[1] for r in rows]
        metadata = [r[2] if len(r) == 3 else None for r in rows]
    if ids is None or vectors is None:
        raise InvalidArgumentTypeError("upsert_many needs items, or ids= and vectors=")
    rids = [check_id(x) for x in ids]
    if not rids:
        raise InvalidArgumentError("upsert_many needs at least one record")
    if isinstance(vectors, np.ndarray):
        mat = as_matrix(vectors, engine.dim)
    else:
        vecs = list(vectors)
        if vecs and engine.dim is None:
            first = as_vector(vecs[0], None)
            mat = as_matrix(np.stack([as_vector(v, first.shape[0]) for v in vecs]), None)
        else:
            mat = as_matrix(np.stack([as_vector(v, engine.dim) for v in vecs]) if vecs
                            else np.empty((0, engine.dim or 1)), engine.dim)
    if mat.shape[0] != len(rids):
        raise InvalidArgumentError(f"{len(rids)} ids but {mat.shape[0]} vectors")
    if metadata is None:
        metas: Sequence[Any] = [None] * len(rids)
    elif isinstance(metadata, Mapping):
        raise InvalidMetadataError("metadata= must be a list with one dict per record")
    else:
        metas = list(metadata)
        if len(metas) != len(rids):
            raise InvalidArgumentError(f"{len(rids)} ids but {len(metas)} metadata entries")
    check_values(mat, engine.distance, rids)
    sparses = _sparse_list(sparse, len(rids))
    keep = dedupe_last(rids)
    if len(keep) != len(rids):
        rids = [rids[i] for i in keep]
        mat = mat[keep]
        metas = [metas[i] for i in keep]
        sparses = None if sparses is None else [sparses[i] for i in keep]
    dicts = [check_metadata(m) for m in metas]
    encoded = [encode_metadata(m) for m in dicts]
    return Upsert(check_partition(partition), rids, np.ascontiguousarray(mat), encoded,
                  _message(message), dicts=dicts, sparse=sparses)


def delete(partition: str, ids: Iterable[Any], message: Any, single: bool) -> Delete:
    rids = list(dict.fromkeys(check_id(x) for x in ids))
    return Delete(check_partition(partition), rids, _message(message), single)


def delete_many(partition: str, ids: Iterable[Any] | None, filter: Any,
                message: Any) -> Delete | DeleteWhere:
    """By ids, by filter, or both, as one request (one version)."""
    if filter is None:
        return delete(partition, ids or [], message, single=False)
    flt = parse_filter(filter)
    if flt is None:
        raise InvalidArgumentError("delete_many(filter=...) needs a non-empty filter; "
                         "to empty a partition use drop_partition()")
    rids = list(dict.fromkeys(check_id(x) for x in ids or []))
    return DeleteWhere(check_partition(partition), flt, _message(message), rids)


def drop_partition(name: str, message: Any) -> DropPartition:
    return DropPartition(check_partition(name), _message(message))


def make_create_index(field: Any, kind: Any) -> CreateIndex:
    """``kind``: a metadata kind, ``"text"`` or a :class:`TextIndex` (BM25)."""
    if not isinstance(field, str):
        raise InvalidArgumentTypeError(f"field must be a str, got {type(field).__name__}")
    path_of(field)
    return CreateIndex(field, check_kind(kind))

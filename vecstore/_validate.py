"""Input validation: ids, vectors and metadata are checked (and normalised)
in the caller's thread, before a request ever reaches the writer."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cbor2
import numpy as np

from ._errors import (
    DimensionMismatchError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidIdError,
    InvalidMetadataError,
    InvalidVectorError,
)
from ._types import Distance

MAX_ID_BYTES = 480
MAX_METADATA_BYTES = 1 << 20  # 1 MiB of CBOR per record
MAX_METADATA_DEPTH = 32
MAX_PARTITION_BYTES = 200


def check_id(raw: Any) -> str:
    """Return the canonical (str) form of a record id, or raise InvalidIdError."""
    if isinstance(raw, bool):
        raise InvalidIdError(f"id must be a str or int, got bool {raw!r}")
    if isinstance(raw, (int, np.integer)):
        raw = str(int(raw))
    if not isinstance(raw, str):
        raise InvalidIdError(f"id must be a str or int, got {type(raw).__name__}")
    if not raw:
        raise InvalidIdError("id must not be empty")
    if "\x00" in raw:
        raise InvalidIdError("id must not contain NUL characters")
    try:
        n = len(raw.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidIdError(f"id is not valid Unicode text: {exc}") from None
    if n > MAX_ID_BYTES:
        raise InvalidIdError(f"id is {n} UTF-8 bytes; the limit is {MAX_ID_BYTES}")
    return raw


def check_partition(name: Any) -> str:
    if not isinstance(name, str):
        raise InvalidArgumentTypeError(f"partition name must be a str, got {type(name).__name__}")
    if not name or "\x00" in name or len(name.encode("utf-8", "replace")) > MAX_PARTITION_BYTES:
        raise InvalidArgumentError(
            f"partition name must be 1..{MAX_PARTITION_BYTES} UTF-8 bytes without NUL: {name!r}"
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"partition name is not valid Unicode: {name!r}") from None
    return name


def as_matrix(vectors: Any, dim: int | None) -> np.ndarray:
    """Convert one batch of vectors to a C-contiguous float32 (n, dim) array."""
    try:
        arr = vectors if isinstance(vectors, np.ndarray) else np.asarray(vectors)
    except (ValueError, TypeError) as exc:
        raise InvalidVectorError(f"vectors are not a rectangular numeric array: {exc}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InvalidVectorError(f"vectors must be real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise InvalidVectorError(f"expected a 2-d array of vectors, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise DimensionMismatchError(
            f"vector has {arr.shape[1]} dimensions; this store has {dim}"
        )
    if arr.shape[1] == 0:
        raise DimensionMismatchError("vectors must have at least one dimension")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    return out


def as_vector(vector: Any, dim: int | None) -> np.ndarray:
    """Convert one vector to a float32 1-d array (no value checks)."""
    try:
        arr = vector if isinstance(vector, np.ndarray) else np.asarray(vector)
    except (ValueError, TypeError) as exc:
        raise InvalidVectorError(f"vector is not a numeric sequence: {exc}") from None
    if arr.ndim != 1:
        raise InvalidVectorError(f"a vector must be 1-d, got shape {arr.shape}")
    return as_matrix(arr.reshape(1, -1), dim)[0]


def check_values(mat: np.ndarray, distance: Distance, ids: Sequence[str] | None = None) -> None:
    """Reject NaN/inf, and zero vectors under cosine."""
    finite = np.isfinite(mat).all(axis=1)
    if not finite.all():
        i = int(np.argmin(finite))
        who = f" (id {ids[i]!r})" if ids is not None else ""
        raise InvalidVectorError(f"vector{who} contains NaN or infinity (or overflows float32)")
    if distance is Distance.COSINE:
        norms = np.einsum("ij,ij->i", mat, mat)
        zero = norms == 0.0
        if zero.any():
            i = int(np.argmax(zero))
            who = f" (id {ids[i]!r})" if ids is not None else ""
            raise InvalidVectorError(f"zero vector{who} has no direction under cosine distance")


def _check_meta_value(value: Any, where: str, depth: int) -> Any:
    if depth > MAX_METADATA_DEPTH:
        raise InvalidMetadataError(f"metadata nested deeper than {MAX_METADATA_DEPTH} at {where}")
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str):
            _check_text(value, where)
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise InvalidMetadataError(f"integer out of the 64-bit range at {where}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMetadataError(f"NaN or infinity at {where} is not JSON")
        return value
    if isinstance(value, np.generic):
        return _check_meta_value(value.item(), where, depth)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidMetadataError(f"metadata keys must be str, got {k!r} at {where}")
            _check_text(k, where)
            out[k] = _check_meta_value(v, f"{where}.{k}", depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_check_meta_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise InvalidMetadataError(
        f"metadata value at {where} has type {type(value).__name__}; "
        "allowed: str, int, float, bool, None, lists and dicts of those"
    )


def _check_text(s: str, where: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidMetadataError(f"string at {where} is not valid Unicode") from None


def check_metadata(meta: Any) -> dict[str, Any]:
    """Validate metadata; return a plain-dict copy (tuples become lists)."""
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise InvalidMetadataError(f"metadata must be a dict, got {type(meta).__name__}")
    out = _check_meta_value(meta, "metadata", 0)
    return out


def encode_metadata(meta: dict[str, Any]) -> bytes:
    data = cbor2.dumps(meta)
    if len(data) > MAX_METADATA_BYTES:
        raise InvalidMetadataError(
            f"metadata is {len(data)} bytes encoded; the limit is {MAX_METADATA_BYTES}"
        )
    return data


def dedupe_last(ids: Iterable[str]) -> list[int]:
    """Indexes of the last occurrence of each id, in first-seen order."""
    last: dict[str, int] = {}
    for i, x in enumerate(ids):
        last[x] = i
    return sorted(last.values())


def check_sparse(sparse: Any) -> tuple[np.ndarray, np.ndarray]:
    """A sparse vector as (indices int64 ascending, weights float32): from
    ``{index: weight}``, ``{"indices": [...], "values": [...]}`` (Pinecone's
    ``sparse_values``, Qdrant's sparse vectors) or ``(indices, values)``.
    Indices are ints in [0, 2**32); weights finite; repeats rejected."""
    from ._errors import InvalidArgumentError, InvalidArgumentTypeError

    if isinstance(sparse, Mapping) and set(sparse) == {"indices", "values"}:
        idx, vals = list(sparse["indices"]), list(sparse["values"])
    elif isinstance(sparse, Mapping):
        idx, vals = list(sparse.keys()), list(sparse.values())
    elif isinstance(sparse, (tuple, list)) and len(sparse) == 2:
        idx, vals = list(sparse[0]), list(sparse[1])
    else:
        raise InvalidArgumentTypeError(
            f"sparse must be a dict {{index: weight}}, got {type(sparse).__name__}")
    if len(idx) != len(vals):
        raise InvalidArgumentError(f"sparse vector has {len(idx)} indices but {len(vals)} values")
    for i in idx:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < 2**32:
            raise InvalidArgumentError(f"sparse indices must be ints in [0, 2**32), got {i!r}")
    try:
        w = np.asarray(vals, np.float32)
    except (TypeError, ValueError):
        raise InvalidArgumentError("sparse weights must be numbers") from None
    if w.ndim != 1 or not np.isfinite(w).all():
        raise InvalidArgumentError("sparse weights must be finite numbers")
    ind = np.asarray(idx, np.int64)
    order = np.argsort(ind, kind="stable")
    ind, w = ind[order], w[order]
    if ind.size > 1 and (np.diff(ind) == 0).any():
        raise InvalidArgumentError("sparse vector repeats an index")
    return ind, w

"""Per-record checks used by the importer with ``validate=True``.

The rules are the store's own (``vecstore._validate``); these helpers only
make the common case fast for data that came out of a JSON parser.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import MAX_METADATA_DEPTH

_NUMERIC = frozenset("biuf")  # booleans count as 0/1, as in the store
_INT_MIN, _INT_END = -(2**63), 2**64


class Reject(Exception):
    """A record is rejected: ``code`` (see ``Failure``) and ``reason``."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _text_ok(s: str) -> bool:
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_metadata_ok(value: Any, depth: int = 0) -> bool:
    """True if ``value`` (JSON-parsed) certainly passes ``check_metadata``.

    False means "maybe not": the caller then runs the store's full check,
    which also produces the exact error message.  Cheaper than the full
    check because it builds no paths and copies nothing.
    """
    if depth > MAX_METADATA_DEPTH:
        return False
    t = type(value)
    if t is dict:
        for k, v in value.items():
            if type(k) is not str or not _text_ok(k):
                return False
            tv = type(v)
            if tv is str:
                if not _text_ok(v):
                    return False
            elif tv is int:
                if not _INT_MIN <= v < _INT_END:
                    return False
            elif tv is float:
                if v - v != 0.0:  # NaN or infinity
                    return False
            elif tv is bool or v is None:
                continue
            elif not json_metadata_ok(v, depth + 1):
                return False
        return True
    if t is list:
        for v in value:
            tv = type(v)
            if tv is str:
                if not _text_ok(v):
                    return False
            elif tv is int:
                if not _INT_MIN <= v < _INT_END:
                    return False
            elif tv is float:
                if v - v != 0.0:
                    return False
            elif tv is bool or v is None:
                continue
            elif not json_metadata_ok(v, depth + 1):
                return False
        return True
    return False


def one_vector(raw: Any, dim: int | None) -> np.ndarray:
    """One vector as a 1-d numeric array of the right length (its values
    are checked batch-wise afterwards)."""
    if raw is None:
        raise Reject("vector", "missing vector")
    if not isinstance(raw, (list, tuple, np.ndarray)):
        raise Reject("vector", f"vector must be a list of numbers, got {type(raw).__name__}")
    try:
        arr = np.asarray(raw)
        if arr.dtype == object and arr.ndim == 1:  # e.g. huge ints next to floats
            arr = np.asarray(raw, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise Reject("vector", "vector is not a flat list of numbers") from None
    if arr.ndim != 1 or arr.dtype.kind not in _NUMERIC:
        raise Reject("vector", "vector is not a flat list of numbers")
    if arr.shape[0] == 0:
        raise Reject("dimension", "vector is empty")
    if dim is not None and arr.shape[0] != dim:
        raise Reject("dimension", f"vector has {arr.shape[0]} dimensions; expected {dim}")
    return arr

"""A store's index settings: which kind and parameters new segments are
built with (``index_kind``, ``quantization``, ``hnsw_m``,
``ef_construction``), kept in the stored config.

A ``Config`` field left at ``None`` means "as stored"; a value given that
differs from the stored one is a :class:`ConfigMismatchError` naming
``reindex``, the one way to change them (:mod:`.reindex`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import ConfigMismatchError, InvalidArgumentError
from .._index.base import DEFAULT_EF_CONSTRUCTION, DEFAULT_KIND, DEFAULT_M
from .._types import Config, _quantization

FIELDS = ("index_kind", "quantization", "hnsw_m", "ef_construction")
DEFAULTS: dict[str, Any] = {"index_kind": DEFAULT_KIND, "quantization": None,
                            "hnsw_m": DEFAULT_M, "ef_construction": DEFAULT_EF_CONSTRUCTION}


def stored_settings(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The index settings a stored config records (older stores: defaults)."""
    out = {f: stored.get(f) for f in FIELDS}
    for f in FIELDS:
        if out[f] is None:
            out[f] = DEFAULTS[f]
    if stored.get("quantization") is not None and stored.get("index_kind") is None:
        out["index_kind"] = "faiss"
    out["quantization"] = _quantization(out["quantization"])
    return out


def fill(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict with its index settings settled (a new store's)."""
    out = dict(stored)
    out.update(to_stored(stored_settings(stored)))
    return out


def to_stored(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as kept in the stored config (CBOR: a PQConfig as a dict)."""
    probe = Config(**{f: settings[f] for f in FIELDS})  # (validates them together)
    return {f: v for f, v in probe.to_dict().items() if f in FIELDS}


def _shown(field: str, value: Any) -> str:
    if field == "quantization" and value is None:
        return "None (float32)"
    return repr(value)


def check(path: str, stored: Mapping[str, Any], given: Config) -> None:
    """Raise ConfigMismatchError when ``given`` names index settings other
    than the stored ones."""
    have = stored_settings(stored)
    diff = []
    for f in FIELDS:
        want = getattr(given, f)
        if f == "quantization" and want is None:
            continue  # None: as stored
        if want is not None and want != have[f]:
            diff.append(f"{f}={_shown(f, want)} (the store has {_shown(f, have[f])})")
    if diff:
        raise ConfigMismatchError(
            f"store {path!r} was opened with other index settings than it was built "
            f"with: {', '.join(diff)}; open it with those fields left at None, and "
            f"change them with store.reindex(...)")


def resolve(path: str, stored: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The settings ``reindex(**changes)`` asks for (validated together)."""
    new = stored_settings(stored)
    new.update(changes)
    if "quantization" in changes and changes["quantization"] is not None \
            and "index_kind" not in changes:
        new["index_kind"] = "faiss"  # (only the faiss kind quantizes)
    if "index_kind" in changes and changes["index_kind"] == "hnswlib" \
            and "quantization" not in changes:
        new["quantization"] = None
    return stored_settings(to_stored(new))


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()  # reindex(quantization=...) left out: keep the store's


def reindex_changes(path: str, stored: Mapping[str, Any], quantization: Any, hnsw_m: Any,
                    ef_construction: Any, index_kind: Any) -> dict[str, Any]:
    """``reindex``'s arguments as changes to the stored settings (checked
    here, in the caller's thread)."""
    from .._index import KINDS

    changes: dict[str, Any] = {}
    if quantization is not UNCHANGED:
        changes["quantization"] = quantization
    for name, val in (("hnsw_m", hnsw_m), ("ef_construction", ef_construction),
                      ("index_kind", index_kind)):
        if val is not None:
            changes[name] = val
    if index_kind is not None and index_kind not in KINDS:
        raise InvalidArgumentError(
            f"unknown index kind {index_kind!r} (known: {', '.join(sorted(KINDS))})")
    try:
        Config(dim=stored.get("dim"), **resolve(path, stored, changes))
    except ConfigMismatchError as exc:
        raise InvalidArgumentError(str(exc)) from None
    return changes

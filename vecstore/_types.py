"""Public value types: configuration, queries and results (all immutable)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, cast

import numpy as np

from ._errors import ConfigMismatchError, InvalidArgumentError, InvalidArgumentTypeError


class Distance(str, enum.Enum):
    """How vectors are compared.  ``score`` in results is the cosine
    similarity (higher is better), the dot product (higher is better) or the
    Euclidean distance, not squared (lower is better)."""

    COSINE = "cosine"
    EUCLIDEAN = "euclidean"
    DOT = "dot"

    @classmethod
    def parse(cls, value: Distance | str) -> Distance:
        if isinstance(value, Distance):
            return value
        if isinstance(value, str):
            try:
                return cls(value.lower())
            except ValueError:
                pass
        raise ConfigMismatchError(
            f"unknown distance {value!r}: use 'cosine', 'euclidean' or 'dot'"
        )


Durability = Literal["sync", "relaxed"]


@dataclass(frozen=True)
class PQConfig:
    """Product quantization of a store's index: each vector is cut into
    ``num_subvectors`` parts (``dim`` must be a multiple), each coded as the
    nearest of ``num_centroids`` (a power of two, at most 256) centroids
    trained with ``training_iterations`` k-means rounds on the segment's rows."""

    num_subvectors: int
    num_centroids: int = 256
    training_iterations: int = 20

    def __post_init__(self) -> None:
        for name in ("num_subvectors", "num_centroids", "training_iterations"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
                raise ConfigMismatchError(f"PQConfig.{name} must be a positive int, got {val!r}")
        c = self.num_centroids
        if c > 256 or c < 2 or c & (c - 1):
            raise ConfigMismatchError(
                f"PQConfig.num_centroids must be a power of two in 2..256, got {c}")


Quantization = Literal["sq8"] | PQConfig | None


def _quantization(q: Any) -> Quantization:
    if q is None or q == "sq8" or isinstance(q, PQConfig):
        return cast(Quantization, q)
    if isinstance(q, Mapping):  # a stored config (to_dict)
        return PQConfig(**q)
    raise ConfigMismatchError(
        f"quantization must be None, 'sq8' or a PQConfig, got {q!r}")


@dataclass(frozen=True)
class Config:
    """Store configuration, kept with the data.

    ``dim=None`` takes the dimension from the first vector written.
    ``durability="sync"`` makes every write call return only once it is on
    disk (fsync); ``"relaxed"`` survives a process crash but may lose the
    last writes on power loss.  ``seal_threshold`` is how many rows a
    partition's growing (exactly searched) segment holds before it is sealed
    into an HNSW segment in the background.  ``index_kind`` names the ANN
    index kind sealed segments are built with (``None``: the store's, or
    ``"hnswlib"`` for a new store; see :mod:`vecstore._index`).
    ``quantization`` keeps int8 (``"sq8"``) or product codes
    (:class:`PQConfig`) in RAM instead of float32 vectors; results are
    re-ranked with the stored float32 vectors, so scores stay exact (it
    needs the ``"faiss"`` index kind, which ``index_kind=None`` then means).

    The index settings (``index_kind``, ``quantization``, ``hnsw_m``,
    ``ef_construction``) are the store's: ``None`` means "as stored" (for a
    new store: hnswlib, float32, M 16, ef_construction 200); a value that
    differs from the stored one raises :class:`ConfigMismatchError` (change
    them with ``store.reindex(...)``).
    """

    dim: int | None = None
    distance: Distance | str = Distance.COSINE
    hnsw_m: int | None = None  # None: the store's (16 for a new store)
    ef_construction: int | None = None  # None: the store's (200 for a new store)
    ef_search: int = 64
    durability: Durability = "sync"
    text_field: str | None = None
    seal_threshold: int = 10_000
    index_kind: str | None = None
    quantization: Quantization = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "distance", Distance.parse(self.distance))
        object.__setattr__(self, "quantization", _quantization(self.quantization))
        q = self.quantization
        if q is not None and self.index_kind is None:  # (only the faiss kind quantizes)
            object.__setattr__(self, "index_kind", "faiss")
        if q is not None and self.index_kind == "hnswlib":
            raise ConfigMismatchError(
                "hnswlib indexes are not quantized: use index_kind='faiss' (or None)")
        if isinstance(q, PQConfig) and self.dim is not None and self.dim % q.num_subvectors:
            raise ConfigMismatchError(
                f"PQConfig.num_subvectors ({q.num_subvectors}) must divide dim ({self.dim})")
        if self.dim is not None and (
            isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim <= 0
        ):
            raise ConfigMismatchError(f"dim must be a positive int or None, got {self.dim!r}")
        for name in ("hnsw_m", "ef_construction", "ef_search", "seal_threshold"):
            val = getattr(self, name)
            if val is None and name in ("hnsw_m", "ef_construction"):
                continue
            if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
                raise ConfigMismatchError(f"{name} must be a positive int, got {val!r}")
        if self.index_kind is not None and (not isinstance(self.index_kind, str)
                                            or not self.index_kind):
            raise ConfigMismatchError(
                f"index_kind must be a non-empty str or None, got {self.index_kind!r}")
        if self.durability not in ("sync", "relaxed"):
            raise ConfigMismatchError(
                f"durability must be 'sync' or 'relaxed', got {self.durability!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["distance"] = Distance.parse(self.distance).value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Config:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True, init=False)
class Query:
    """A k-NN query.  Builder methods return new queries."""

    vector: Any
    k: int = 10
    filter: str | Mapping[str, Any] | None = None
    ef: int | None = None
    include_vectors: bool = False
    partitions: tuple[str, ...] | None = None

    def __init__(
        self,
        vector: Any,
        k: int = 10,
        filter: str | Mapping[str, Any] | None = None,
        ef: int | None = None,
        include_vectors: bool = False,
        partitions: Sequence[str] | None = None,
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, int):
            raise InvalidArgumentTypeError(f"k must be a positive int, got {k!r}")
        if k <= 0:
            raise InvalidArgumentError(f"k must be a positive int, got {k!r}")
        if ef is not None and (isinstance(ef, bool) or not isinstance(ef, int) or ef <= 0):
            raise InvalidArgumentError(f"ef must be a positive int or None, got {ef!r}")
        if isinstance(partitions, str):
            partitions = [partitions]
        object.__setattr__(self, "vector", vector)
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "filter", filter)
        object.__setattr__(self, "ef", ef)
        object.__setattr__(self, "include_vectors", bool(include_vectors))
        object.__setattr__(
            self, "partitions", None if partitions is None else tuple(partitions)
        )

    def _replace(self, **changes: Any) -> Query:
        args = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        args.update(changes)
        return Query(**args)

    def with_limit(self, k: int) -> Query:
        return self._replace(k=k)

    def with_filter(self, filter: str | Mapping[str, Any] | None) -> Query:
        return self._replace(filter=filter)

    def with_ef(self, ef: int | None) -> Query:
        return self._replace(ef=ef)

    def with_partitions(self, partitions: Sequence[str] | None) -> Query:
        return self._replace(partitions=partitions)

    def with_vectors(self, include: bool = True) -> Query:
        return self._replace(include_vectors=include)


@dataclass(frozen=True)
class Record:
    """One stored record as of some version."""

    id: str
    vector: np.ndarray
    metadata: dict[str, Any]
    version: int
    partition: str = "default"


class Result(NamedTuple):
    """One k-NN hit.  ``vector`` is set only with ``include_vectors=True``.
    (An immutable named tuple: cheap to build, as queries build many.)
    A :class:`HybridQuery`'s results also carry the scores they were fused
    from: ``vector_score`` (as a :class:`Query` scores) and ``text_score``
    (BM25, or the sparse dot product); None where that side did not find
    the record, and for plain queries."""

    id: str
    score: float
    metadata: dict[str, Any]
    vector: np.ndarray | None = None
    partition: str = "default"
    vector_score: float | None = None
    text_score: float | None = None


@dataclass(frozen=True)
class Stats:
    """A point-in-time summary of the whole store (every partition)."""

    total_vectors: int
    dimension: int | None
    distance: str
    partitions: dict[str, int]
    version: int
    bytes_on_disk: int
    sealed_segments: int
    growing_vectors: int
    indexing_pending: bool
    path: str
    read_only: bool
    extra: dict[str, Any] = field(default_factory=dict)
    # engines and, per partition, index kinds, quantization, resident bytes
    # (vecstore._index.stats.index_stats)
    index: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class VersionInfo:
    version: int
    timestamp: float
    message: str | None
    tag: str | None
    ops: int


@dataclass(frozen=True)
class RecordVersion:
    version: int
    op: str
    vector: np.ndarray | None
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class Change:
    """One entry of ``store.changes()``: the record ``id`` of ``partition``
    was upserted (``vector``, ``metadata`` as written then) or deleted
    (both None) by ``version``.  Rollbacks appear as the upserts and
    deletes they made."""

    version: int
    op: Literal["upsert", "delete"]
    partition: str
    id: str
    vector: np.ndarray | None
    metadata: dict[str, Any] | None
    sparse: dict[int, float] | None = None


# -- hybrid search (issue #13) ------------------------------------------------------------


@dataclass(frozen=True)
class TextIndex:
    """A BM25 text index's analyzer and scoring parameters, recorded with the
    index: ``store.create_index("title", TextIndex(language="english"))``.

    Text is split into Unicode words (runs of letters and digits),
    lowercased and accent-folded; ``language`` (a Snowball language, e.g.
    ``"english"``) adds stemming (``stem``) and that language's stop words
    (``stopwords``: True, False, or a list of words).  BM25: ``k1`` = 1.2,
    ``b`` = 0.75 by default (Lucene's and tantivy's)."""

    language: str | None = None
    stem: bool = True
    stopwords: bool | Sequence[str] = True
    fold_accents: bool = True
    k1: float = 1.2
    b: float = 0.75

    def __post_init__(self) -> None:
        for name in ("k1", "b"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, (int, float)) or val < 0:
                raise InvalidArgumentError(f"TextIndex.{name} must be a number >= 0, got {val!r}")
        if self.b > 1:
            raise InvalidArgumentError(f"TextIndex.b must be in [0, 1], got {self.b!r}")
        if not isinstance(self.stopwords, bool):
            object.__setattr__(self, "stopwords", tuple(self.stopwords))


FUSIONS = ("weighted", "dbsf", "rrf")


@dataclass(frozen=True, init=False)
class HybridQuery:
    """Dense + BM25 (or sparse) search, fused: ``store.query(HybridQuery(vec,
    "rust embedded database"))``.  ``vector=None`` is pure BM25 (or pure
    sparse); ``text`` searches the text index on ``text_field`` (default: the
    store's ``Config.text_field``, else its only text index); ``sparse`` is a
    ``{index: weight}`` query scored by dot product with the records'
    sparse vectors.  Every candidate either side finds is scored on both
    sides, then ``fusion`` normalises each side over the candidates and
    combines them, ``alpha`` weighing the vector side (1.0 = vector only):
    ``"weighted"`` (min-max, the default: measured best overall, see
    docs/hybrid.md), ``"dbsf"`` (mean and 3 standard deviations) or
    ``"rrf"`` (reciprocal ranks, k=60).  ``filter`` applies to both sides."""

    vector: Any
    text: str | None = None
    k: int = 10
    alpha: float = 0.5
    fusion: str = "weighted"
    filter: str | Mapping[str, Any] | None = None
    text_field: str | None = None
    sparse: Mapping[int, float] | None = None
    partitions: tuple[str, ...] | None = None

    def __init__(self, vector: Any, text: str | None = None, k: int = 10, alpha: float = 0.5,
                 fusion: str = "weighted", filter: str | Mapping[str, Any] | None = None,
                 text_field: str | None = None, sparse: Mapping[int, float] | None = None,
                 partitions: Sequence[str] | None = None) -> None:
        if isinstance(k, bool) or not isinstance(k, int):
            raise InvalidArgumentTypeError(f"k must be a positive int, got {k!r}")
        if k <= 0:
            raise InvalidArgumentError(f"k must be a positive int, got {k!r}")
        if text is not None and not isinstance(text, str):
            raise InvalidArgumentTypeError(f"text must be a str or None, got {type(text).__name__}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or \
                not 0.0 <= alpha <= 1.0:
            raise InvalidArgumentError(f"alpha must be a number in [0, 1], got {alpha!r}")
        if fusion not in FUSIONS:
            raise InvalidArgumentError(
                f"fusion must be one of {', '.join(FUSIONS)}; got {fusion!r}")
        if text is not None and sparse is not None:
            raise InvalidArgumentError("give text or sparse, not both")
        if vector is None and text is None and sparse is None:
            raise InvalidArgumentError("a HybridQuery needs a vector, text or sparse")
        if text_field is not None and not isinstance(text_field, str):
            raise InvalidArgumentTypeError("text_field must be a str or None")
        if isinstance(partitions, str):
            partitions = [partitions]
        for name, val in (("vector", vector), ("text", text), ("k", k), ("alpha", float(alpha)),
                          ("fusion", fusion), ("filter", filter), ("text_field", text_field),
                          ("sparse", sparse),
                          ("partitions", None if partitions is None else tuple(partitions))):
            object.__setattr__(self, name, val)

    def _replace(self, **changes: Any) -> HybridQuery:
        args = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        args.update(changes)
        return HybridQuery(**args)

"""Turning source records into write batches.

:class:`BatchMaker` pulls :class:`SourceRecord` objects from a reader,
maps them onto vecstore records (id prefix, Chroma documents into the text
field) and, with ``validate=True``, checks each record on its own with the
store's rules: a bad one becomes a :class:`Failure` and the others of its
batch still go in.  With ``validate=False`` the same checks run batch-wise
(they are what keeps the store sound), but a bad record stops the import,
and duplicate ids are not looked up: a later record replaces an earlier one,
as ``upsert`` does.

Duplicate ids (``validate=True``): the first occurrence in the file wins,
later ones are rejected.  Instead of remembering every id (memory growing
with the file), a record is a duplicate if its id occurs earlier in the
same batch, in the batch still being committed, or is already in the
partition *written by this import*: its newest history entry is newer than
the import's ``base_version`` and that version carries the import's message.
That is one LMDB look-up per record, and memory stays bounded by the batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cbor2
import numpy as np

from .._engine.ops import Upsert
from .._errors import MigrationError, VecStoreError
from .._storage.keys import k64
from .._storage.records import lookup
from .._types import Distance
from .._validate import (
    MAX_METADATA_BYTES,
    check_id,
    check_metadata,
    check_sparse,
    dedupe_last,
    encode_metadata,
)
from ._checks import Reject, json_metadata_ok, one_vector
from ._config import Failure
from ._delta import with_deletes
from ._readers import SourceRecord

if TYPE_CHECKING:
    from .._engine.engine import Engine



@dataclass
class Batch:
    """One batch: records at positions ``first <= p < end``."""

    first: int
    end: int
    request: Upsert | None = None  # None when every record was rejected
    failures: list[Failure] = field(default_factory=list)
    last: bool = False  # the source has no records after this batch
    error: MigrationError | None = None  # the source broke right after this batch

    @property
    def written(self) -> int:
        return 0 if self.request is None else \
            len(self.request.ids) + len(getattr(self.request, "deletes", ()))

    @property
    def read(self) -> int:
        return self.end - self.first


class BatchMaker:
    def __init__(self, records: Iterator[SourceRecord], engine: Engine, *, partition: str,
                 start: int, batch_size: int, validate: bool, id_prefix: str,
                 text_field: str, message: str, base_version: int) -> None:
        self._it = records
        self._engine = engine
        self._partition = partition
        self._pos = start  # position of the next record to hand out
        self._size = batch_size
        self._validate = validate
        self._prefix = id_prefix
        self._text_field = text_field
        self._message = message
        self._base = base_version
        self._peeked: SourceRecord | None = None
        self._ended = False  # the reader is exhausted
        self._finished = False  # the last batch was handed out
        self._prev_ids: set[str] = set()  # ids of the batch that may still be in flight
        self._dim: int | None = None

    def close(self) -> None:
        """Close the reader (its file, or its parsing process)."""
        close = getattr(self._it, "close", None)
        if close is not None:
            close()

    # -- reading ---------------------------------------------------------------

    def _next_record(self) -> SourceRecord | None:
        if self._peeked is not None:
            rec, self._peeked = self._peeked, None
            return rec
        if self._ended:
            return None
        try:
            return next(self._it)
        except StopIteration:
            self._ended = True
            return None

    def next_batch(self) -> Batch | None:
        """The next batch, or None once the last one was handed out."""
        if self._finished:
            return None
        recs: list[SourceRecord] = []
        error: MigrationError | None = None
        try:
            while len(recs) < self._size:
                rec = self._next_record()
                if rec is None:
                    break
                recs.append(rec)
            if len(recs) == self._size and not self._ended:
                self._peeked = self._next_record()
        except MigrationError as exc:
            error = exc
        first = self._pos
        end = recs[-1].position + 1 if recs else first
        last = error is None and self._ended and self._peeked is None
        batch = Batch(first, end, last=last, error=error)
        if recs:
            if self._validate:
                self._checked(batch, recs)
            else:
                self._trusted(batch, recs)
        self._pos = end
        self._finished = last or error is not None
        return batch

    # -- mapping -----------------------------------------------------------------

    def _metadata(self, rec: SourceRecord) -> Any:
        meta = rec.metadata
        if rec.document is None:
            return meta
        if meta is None:
            return {self._text_field: rec.document}
        if not isinstance(meta, dict):
            return meta  # rejected as metadata
        if self._text_field in meta and meta[self._text_field] != rec.document:
            raise Reject("metadata", f"metadata already has a different "
                          f"{self._text_field!r} value than the record's document")
        out = dict(meta)
        out[self._text_field] = rec.document
        return out

    def _rid(self, raw: Any) -> str:
        if raw is None:
            raise Reject("id", "missing id")
        rid = check_id(raw)
        return check_id(self._prefix + rid) if self._prefix else rid

    # -- validate=False: the same checks, but the batch is all or nothing ------------

    def _trusted(self, batch: Batch, recs: list[SourceRecord]) -> None:
        """No duplicate look-ups (a later duplicate replaces the earlier
        record, as upserts do); any bad record stops the import."""
        self._checked(batch, recs, strict=True)
        if batch.failures:
            f = batch.failures[0]
            more = len(batch.failures) - 1
            raise MigrationError(
                f"invalid record at position {f.position} (id {f.id!r}): {f.reason}"
                + (f" (and {more} more in this batch)" if more else "")
                + f". With validate=False a bad record stops the import: the batches before "
                f"position {batch.first} are committed, nothing after; use validate=True to "
                "reject bad records one by one")

    # -- validate=True: record by record ---------------------------------------------

    def _checked(self, batch: Batch, recs: list[SourceRecord], strict: bool = False) -> None:
        fails = batch.failures
        cands: list[SourceRecord] = []
        deletes: list[str] = []  # tombstones of an incremental export
        ids: list[str] = []
        metas: list[bytes] = []
        sparses: list[Any] = []  # per candidate: (indices, weights) or None
        for rec in recs:
            try:
                if rec.error is not None:
                    fails.append(Failure(rec.position, rec.id, rec.error, "record",
                                         rec.excerpt))
                    continue
                rid = self._rid(rec.id)
                if rec.deleted:
                    deletes.append(rid)
                    continue
                meta = self._metadata(rec)
                if meta is None:
                    meta = {}
                elif type(meta) is not dict or not json_metadata_ok(meta):
                    meta = check_metadata(meta)  # raises with the exact reason
                data = cbor2.dumps(meta)
                if len(data) > MAX_METADATA_BYTES:
                    encode_metadata(meta)  # raises
                try:
                    sparse = None if rec.sparse is None else check_sparse(rec.sparse)
                except VecStoreError as exc:
                    raise Reject("sparse", f"sparse vector: {exc}") from None
            except Reject as exc:
                fails.append(Failure(rec.position, rec.id, exc.reason, exc.code))
                continue
            except VecStoreError as exc:
                code = "id" if type(exc).__name__ == "InvalidIdError" else "metadata"
                fails.append(Failure(rec.position, rec.id, str(exc), code))
                continue
            cands.append(rec)
            ids.append(rid)
            metas.append(data)
            sparses.append(sparse)
        keep, mat = self._vectors(fails, cands)
        if keep:
            keep = self._check_values(fails, cands, keep, mat)
        if strict:
            if fails:
                fails.sort(key=lambda f: f.position)
                return
            if len(set(ids)) != len(ids):
                keep = dedupe_last(ids)  # the last one wins, as in upsert_many
        elif keep:
            keep = self._dedupe(fails, cands, ids, keep)
        fails.sort(key=lambda f: f.position)
        self._prev_ids = {ids[i] for i in keep}
        if keep:
            if len(keep) == len(cands):
                out = mat
            else:
                out = mat[np.asarray(keep, np.intp)]
                ids = [ids[i] for i in keep]
                metas = [metas[i] for i in keep]
                sparses = [sparses[i] for i in keep]
            batch.request = Upsert(self._partition, ids, np.ascontiguousarray(out), metas,
                                   self._message,
                                   sparse=sparses if any(sp is not None for sp in sparses)
                                   else None)
        if deletes:
            batch.request = with_deletes(batch.request, self._partition, deletes,
                                         self._message, self._engine.dim)

    def _vectors(self, fails: list[Failure], cands: list[SourceRecord]
                 ) -> tuple[list[int], np.ndarray]:
        """The candidates' vectors as one float32 matrix, and which candidates
        it holds (one numpy call for a well-formed batch; record by record
        when that fails, to find the bad ones)."""
        dim = self._engine.dim if self._engine.dim is not None else self._dim
        if not cands:
            return [], np.empty((0, dim or 1), np.float32)
        raws = [c.vector for c in cands]
        mat = None
        if all(type(v) is list or type(v) is np.ndarray for v in raws):
            try:
                mat = np.array(raws)
            except (ValueError, TypeError, OverflowError):
                mat = None
            if mat is not None and (mat.ndim != 2 or mat.dtype.kind not in "biuf"
                                    or mat.shape[1] == 0):
                mat = None  # ragged, booleans, strings, ...: find the culprits one by one
        keep: list[int] = []
        if mat is not None and (dim is None or mat.shape[1] == dim):
            self._dim = int(mat.shape[1])
            keep = list(range(len(cands)))
        else:
            rows = []
            for i, rec in enumerate(cands):
                try:
                    vec = one_vector(rec.vector, dim)
                except Reject as exc:
                    fails.append(Failure(rec.position, rec.id, exc.reason, exc.code))
                    continue
                if dim is None:
                    dim = self._dim = int(vec.shape[0])
                keep.append(i)
                rows.append(vec)
            if not rows:
                return [], np.empty((0, dim or 1), np.float32)
            assert dim is not None  # set from the first row above
            full = np.zeros((len(cands), dim), np.float64)
            full[keep] = np.stack(rows)
            mat = full
        with np.errstate(over="ignore", invalid="ignore"):
            return keep, mat.astype(np.float32)

    def _check_values(self, fails: list[Failure], cands: list[SourceRecord], keep: list[int],
                      mat: np.ndarray) -> list[int]:
        sub = mat[keep] if len(keep) != len(mat) else mat
        bad = ~np.isfinite(sub).all(axis=1)
        zero = np.zeros(len(keep), bool)
        if self._engine.distance is Distance.COSINE:
            zero = ~bad & (np.einsum("ij,ij->i", sub, sub) == 0.0)
        if not (bad.any() or zero.any()):
            return keep
        out = []
        for j, i in enumerate(keep):
            rec = cands[i]
            if bad[j]:
                fails.append(Failure(rec.position, rec.id,
                                     "vector contains NaN or infinity (or overflows float32)",
                                     "vector"))
            elif zero[j]:
                fails.append(Failure(rec.position, rec.id,
                                     "zero vector has no direction under cosine distance",
                                     "vector"))
            else:
                out.append(i)
        return out

    def _dedupe(self, fails: list[Failure], cands: list[SourceRecord], ids: list[str],
                keep: list[int]) -> list[int]:
        seen: set[str] = set()
        out = []
        eng = self._engine
        pm = eng.parts.get(self._partition)
        st = eng.storage
        prev = self._prev_ids
        with st.read() as txn:
            cur = txn.cursor(db=st.db("hist")) if pm is not None else None
            ours: dict[int, bool] = {}
            for i in keep:
                rid = ids[i]
                dup = rid in seen or rid in prev
                if not dup and cur is not None and pm is not None:
                    hit = lookup(cur, pm.pid, rid)
                    if hit is not None and hit[0] > self._base:
                        v = hit[0]
                        if v not in ours:
                            raw = txn.get(k64(v), db=st.db("versions"))
                            ours[v] = raw is not None and \
                                cbor2.loads(raw).get("m") == self._message
                        dup = ours[v]
                if dup:
                    rec = cands[i]
                    fails.append(Failure(
                        rec.position, rec.id,
                        f"duplicate id {rid!r}: an earlier record of this file has it "
                        "(the first one is kept)", "duplicate"))
                    continue
                seen.add(rid)
                out.append(i)
            if cur is not None:
                cur.close()
        return out

"""Which rows of a segment match a filter at a version: visibility
(``born <= v < died``) and the filter's mask over the segment's metadata
columns.  Shared by snapshots (search, count) and the writer (delete by
filter), so both see the same rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .._filter.core import Filter
from .._metaindex.masks import eligible, id_masks
from .._storage.records import Reader
from .segment import GrowingView, SealedSegment, visible

Segment = SealedSegment | GrowingView


def segment_mask(seg: Segment, flt: Filter, version: int, indexes: Mapping[Any, Any],
                 reader: Reader) -> np.ndarray:
    """Rows of ``seg`` visible at ``version`` whose record matches ``flt``;
    ``indexes``: path -> index definition (its ``fd``, the field's values)."""
    n = seg.n
    rowids = seg.rowids
    dicts = {p: ix.fd for p, ix in indexes.items()}
    base = None if seg.all_visible(version) else visible(seg.born[:n], seg.died[:n], version)
    ids = id_masks(reader, seg, version) if flt.uses_ids else None  # HAS_ID
    return eligible(flt, seg.cols, dicts, n, lambda p: reader.metadata(int(rowids[p])), base,
                    ids)


def matching_rows(segs: Iterable[Segment], flt: Filter, version: int,
                  indexes: Mapping[Any, Any], reader: Reader) -> list[tuple[str, int]]:
    """(id, rowid) of the rows of ``segs`` matching ``flt`` at ``version``."""
    out = []
    for seg in segs:
        for rowid in seg.rowids[np.flatnonzero(segment_mask(seg, flt, version, indexes,
                                                            reader))].tolist():
            out.append((reader.row(rowid)[1], rowid))
    return out

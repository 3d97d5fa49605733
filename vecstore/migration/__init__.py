"""Import from and export to other vector databases' export formats.

The streaming readers and writers live in :mod:`vecstore.migration._formats`.
"""

from ._formats import FORMATS, SourceInfo, SourceRecord, estimate_total, open_reader, source_info, write_export

__all__ = ["FORMATS", "SourceInfo", "SourceRecord", "estimate_total", "open_reader",
           "source_info", "write_export"]

"""Import from and export to other vector databases' export formats.

```python
from vecstore.migration import MigrationConfig, QdrantMigration
m = QdrantMigration(MigrationConfig(batch_size=1000, validate=True)).with_progress(print)
stats = m.import_from_file("points.jsonl", store)       # resumable, exactly once
m.export_to_file(store, "points-out.jsonl")
```

With ``validate=True`` a bad record (even a line that is not JSON) is
rejected alone and listed; a complete import ends by indexing the store
(``MigrationConfig(index=False)`` skips that: call ``store.optimize()``
later).

See ``docs/migration.md``.  The streaming readers and writers live in
:mod:`vecstore.migration._formats`.
"""

from ._config import Failure, MigrationConfig, MigrationStats
from ._formats import (
    FORMATS,
    SourceInfo,
    SourceRecord,
    estimate_total,
    open_reader,
    source_info,
    write_export,
)
from ._migrations import (
    ChromaMigration,
    Migration,
    PineconeMigration,
    QdrantMigration,
    WeaviateMigration,
    migration_for,
)
from ._progress import PREFIX as PROGRESS_PREFIX

__all__ = [
    "FORMATS",
    "PROGRESS_PREFIX",
    "ChromaMigration",
    "Failure",
    "Migration",
    "MigrationConfig",
    "MigrationStats",
    "PineconeMigration",
    "QdrantMigration",
    "SourceInfo",
    "SourceRecord",
    "WeaviateMigration",
    "estimate_total",
    "migration_for",
    "open_reader",
    "source_info",
    "write_export",
]

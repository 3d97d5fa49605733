"""Every error vecstore raises.  All derive from :class:`VecStoreError`.

Argument errors also derive from :class:`ValueError` (or :class:`TypeError`
where the *type* of an argument is wrong), so generic handlers keep working.
A call that raises one of these has changed nothing on disk.
"""

from __future__ import annotations


class VecStoreError(Exception):
    """Base class of every error raised by vecstore."""


class DimensionMismatchError(VecStoreError, ValueError):
    """A vector's length differs from the store's dimension (``Config.dim``)."""


class InvalidVectorError(VecStoreError, ValueError):
    """A vector holds NaN or infinity, is not one-dimensional numeric data, or
    is all zeros under the cosine distance."""


class InvalidMetadataError(VecStoreError, ValueError):
    """Metadata is not a JSON-like dict (str keys; str, int, float, bool, None,
    lists and nested dicts of those), or is too large or too deeply nested."""


class InvalidIdError(VecStoreError, ValueError):
    """A record id is empty, too long (over 480 UTF-8 bytes), contains a NUL
    character, or is neither a str nor an int."""


class FilterError(VecStoreError, ValueError):
    """A filter is malformed.  The message names the position (string form)
    or the key (dict form) where it went wrong."""


class ConfigMismatchError(VecStoreError, ValueError):
    """The store was opened with a ``Config`` whose ``dim`` or ``distance``
    differs from the one stored with the data, or a config value is invalid."""


class StoreClosedError(VecStoreError):
    """The store (or the snapshot's store) was closed before this call."""


class StoreLockedError(VecStoreError):
    """Another process holds the store open for writing.  Raised at once by
    ``open`` (no waiting).  Open with ``read_only=True`` to read beside it."""


class ReadOnlyError(VecStoreError):
    """A write was attempted on a store opened with ``read_only=True``, or on
    a snapshot."""


class VersionNotRetainedError(VecStoreError, LookupError):
    """The requested version (or tag) was never created, or retention has
    dropped it."""


class CorruptionError(VecStoreError):
    """Data on disk failed a checksum or a structural check and could not be
    repaired from the source of truth (the LMDB records)."""


class StorageFullError(VecStoreError, OSError):
    """The disk (or the file-size limit) is full.  The write that hit it was
    rolled back; the store stays open and readable."""


class StorageError(VecStoreError, OSError):
    """An I/O error (e.g. EIO from write or fsync) aborted a write.  The write
    was rolled back and nothing it carried is visible."""


class InvalidArgumentError(VecStoreError, ValueError):
    """An argument has the right type but a value the call cannot take
    (e.g. ``k=0``, an empty batch, mismatched column lengths)."""


class InvalidArgumentTypeError(VecStoreError, TypeError):
    """An argument has the wrong type (e.g. a str where a version int is due)."""


class UnsupportedEventLoopError(VecStoreError, RuntimeError):
    """An async API was used under an event loop it does not run on (today
    :class:`~vecstore.AsyncVecStore` needs trio; :class:`~vecstore.VecStore`
    works anywhere)."""


class StoreNotFoundError(VecStoreError, FileNotFoundError):
    """There is no store at the path: a ``read_only=True`` open (or a CLI
    command that only reads) found no ``data.mdb`` there.  A writable open
    creates the store instead."""


class DestinationExistsError(VecStoreError, FileExistsError):
    """A destination that must be new or empty (``backup(dest)``) already
    holds files.  Nothing was written."""


class UnsupportedOperationError(VecStoreError, NotImplementedError):
    """The call asks for something this store does not offer (e.g. a hybrid
    or sparse query mode through the LlamaIndex adapter)."""


class MigrationError(VecStoreError):
    """An import or export could not proceed (unreadable or malformed source,
    changed source file on resume, ...)."""


__all__ = [
    "ConfigMismatchError",
    "CorruptionError",
    "DestinationExistsError",
    "DimensionMismatchError",
    "FilterError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "InvalidIdError",
    "InvalidMetadataError",
    "InvalidVectorError",
    "MigrationError",
    "ReadOnlyError",
    "StorageError",
    "StorageFullError",
    "StoreClosedError",
    "StoreLockedError",
    "StoreNotFoundError",
    "UnsupportedEventLoopError",
    "UnsupportedOperationError",
    "VecStoreError",
    "VersionNotRetainedError",
]

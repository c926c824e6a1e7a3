"""raftwal's exceptions, defined once here and raised from Python and Rust alike.

Every class derives from :class:`Error`. Operating-system failures stay
``OSError`` subclasses; :class:`WALNotFoundError` is both.
"""

from __future__ import annotations

__all__ = [
    "CRCMismatchError",
    "CompactedError",
    "CorruptionError",
    "EmptySnapshotError",
    "EntryTooLargeError",
    "Error",
    "MetadataConflictError",
    "NoDBSnapshotError",
    "NoSnapshotError",
    "RecordTooLargeError",
    "SliceOutOfRangeError",
    "SnapOutOfDateError",
    "SnapshotMismatchError",
    "SnapshotNotFoundError",
    "SnapshotTemporarilyUnavailableError",
    "TornTailError",
    "UnavailableError",
    "UnknownRecordTypeError",
    "WALClosedError",
    "WALLockedError",
    "WALNotFoundError",
    "WALPoisonedError",
    "WALReadOnlyError",
]


class Error(Exception):
    """Base class of every raftwal error.

    An error about a place on disk says where: ``path`` is the damaged
    segment or snapshot file and ``offset`` the decimal byte offset of the
    record's frame (its length word); both are ``None`` otherwise. The
    native core sets them on the errors it raises."""

    path: str | None
    offset: int | None

    def __init__(self, *args: object, path: str | None = None, offset: int | None = None) -> None:
        super().__init__(*args)
        self.path = path
        self.offset = offset


# --- raft Storage errors (etcd's raft package) -------------------------------


class CompactedError(Error):
    """The requested index is unavailable due to compaction."""


class UnavailableError(Error):
    """The requested entry at index is unavailable."""


class SnapOutOfDateError(Error):
    """The requested index is older than the existing snapshot."""


class SnapshotTemporarilyUnavailableError(Error):
    """The snapshot is temporarily unavailable."""


# --- on-disk damage ----------------------------------------------------------


class CorruptionError(Error):
    """Bytes on disk that do not decode, or that contradict each other."""


class CRCMismatchError(CorruptionError):
    """A record's or a snapshot file's CRC does not match its data."""


class TornTailError(CorruptionError):
    """The log ends in a partially written record; ``raftwal.repair`` fixes it."""


class UnknownRecordTypeError(CorruptionError):
    """A WAL record has a type etcd does not define."""


class RecordTooLargeError(CorruptionError):
    """A record read from disk is larger than the format allows (or than
    etcd 3.4 can read)."""


class SliceOutOfRangeError(CorruptionError):
    """The entries in the WAL skip an index."""


# --- refused before writing -------------------------------------------------


class EntryTooLargeError(Error, ValueError):
    """A record to write (an entry, the metadata) is larger than etcd 3.4
    reads; refused before anything is written. Not damage: the caller's
    argument (a ``ValueError``)."""


# --- WAL and snapshot semantics ----------------------------------------------


class SnapshotMismatchError(Error):
    """The WAL holds a snapshot record at the index asked for, with another term."""


class SnapshotNotFoundError(Error):
    """The WAL holds no snapshot record matching the one it was opened at."""


class MetadataConflictError(Error):
    """Two metadata records of one WAL differ."""


class NoSnapshotError(Error):
    """No readable snapshot file is available."""


class NoDBSnapshotError(Error, FileNotFoundError):
    """No ``%016x.snap.db`` backend database for the snapshot asked for."""


class EmptySnapshotError(Error):
    """A snapshot file is empty or has no data."""


class WALNotFoundError(Error, FileNotFoundError):
    """No usable WAL segment: none at all, a gap in the sequence, or none old enough."""


class WALLockedError(Error):
    """Another process holds the WAL's lock."""


class WALClosedError(Error):
    """The WAL was closed, or cannot be used after a failed ``read_all``."""


class WALReadOnlyError(WALClosedError):
    """A save on a WAL opened with ``WAL.open_for_read``: it can only read."""


class WALPoisonedError(Error):
    """A write or fsync failed earlier; the WAL refuses further saves. Reopen it."""

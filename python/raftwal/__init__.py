"""raftwal: etcd's Raft log storage for Python, byte for byte, with a Rust core."""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from . import aio
from ._native import crc32c
from .durable import DiskStorage, DurableStorage
from .errors import (
    CompactedError,
    CorruptionError,
    CRCMismatchError,
    EmptySnapshotError,
    EntryTooLargeError,
    Error,
    MetadataConflictError,
    NoDBSnapshotError,
    NoSnapshotError,
    RecordTooLargeError,
    SliceOutOfRangeError,
    SnapOutOfDateError,
    SnapshotMismatchError,
    SnapshotNotFoundError,
    SnapshotTemporarilyUnavailableError,
    TornTailError,
    UnavailableError,
    UnknownRecordTypeError,
    WALClosedError,
    WALLockedError,
    WALNotFoundError,
    WALPoisonedError,
    WALReadOnlyError,
)
from .messages import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfChangeV2,
    ConfState,
    Entry,
    EntryConfChange,
    EntryConfChangeV2,
    EntryNormal,
    EntryType,
    HardState,
    MemberMetadata,
    Snapshot,
    SnapshotMetadata,
    WalSnapshot,
)
from .metrics import DiskStorageStats, DurableStorageStats, HistogramValue, WALStats
from .restart import RecoveryMode, RecoveryReport, open
from .snap import Snapshotter
from .storage import MemoryStorage, Storage
from .wal import (
    WAL,
    SalvageReport,
    repair,
    salvage,
    valid_snapshot_entries,
    verify,
    wal_exists,
)

try:
    __version__: str = _version("raftwal")
    """The installed distribution's version."""
except _PackageNotFoundError:  # pragma: no cover - a source tree never installed
    __version__ = "0+unknown"

__all__ = [
    "WAL",
    "CRCMismatchError",
    "CompactedError",
    "ConfChange",
    "ConfChangeSingle",
    "ConfChangeTransition",
    "ConfChangeType",
    "ConfChangeV2",
    "ConfState",
    "CorruptionError",
    "DiskStorage",
    "DiskStorageStats",
    "DurableStorage",
    "DurableStorageStats",
    "EmptySnapshotError",
    "Entry",
    "EntryConfChange",
    "EntryConfChangeV2",
    "EntryNormal",
    "EntryTooLargeError",
    "EntryType",
    "Error",
    "HardState",
    "HistogramValue",
    "MemberMetadata",
    "MemoryStorage",
    "MetadataConflictError",
    "NoDBSnapshotError",
    "NoSnapshotError",
    "RecordTooLargeError",
    "RecoveryMode",
    "RecoveryReport",
    "SalvageReport",
    "SliceOutOfRangeError",
    "SnapOutOfDateError",
    "Snapshot",
    "SnapshotMetadata",
    "SnapshotMismatchError",
    "SnapshotNotFoundError",
    "SnapshotTemporarilyUnavailableError",
    "Snapshotter",
    "Storage",
    "TornTailError",
    "UnavailableError",
    "UnknownRecordTypeError",
    "WALClosedError",
    "WALLockedError",
    "WALNotFoundError",
    "WALPoisonedError",
    "WALReadOnlyError",
    "WALStats",
    "WalSnapshot",
    "__version__",
    "aio",
    "crc32c",
    "open",
    "repair",
    "salvage",
    "valid_snapshot_entries",
    "verify",
    "wal_exists",
]

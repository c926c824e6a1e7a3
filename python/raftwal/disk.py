"""DiskStorage: a WAL and a Snapshotter used together, as etcd's server
storage glue uses them."""

from __future__ import annotations

import time
from collections.abc import Sequence

from .messages import Entry, HardState, Snapshot, WalSnapshot
from .metrics import Histogram, logger
from .snap import Snapshotter
from .wal import WAL

__all__ = ["DiskStorage"]


class DiskStorage:
    """What etcd persists for raft: entries and HardStates in the WAL,
    snapshots as ``.snap`` files referenced by WAL snapshot records."""

    __slots__ = ("snap_save", "snapshotter", "wal")

    def __init__(self, wal: WAL, snapshotter: Snapshotter) -> None:
        self.wal = wal
        self.snapshotter = snapshotter
        self.snap_save = Histogram()  # etcd's snap_save_total_duration_seconds

    def save(self, hard_state: HardState, entries: Sequence[Entry] = ()) -> None:
        """Append to the WAL; durable on return when raft's MustSync says so."""
        self.wal.save(hard_state, entries)

    def save_snap(self, snap: Snapshot) -> None:
        """Persist a snapshot: the ``.snap`` file first, then its WAL record
        (etcd 3.4's form: index and term), then release the WAL locks the
        snapshot makes unnecessary. A crash in between leaves an orphan
        ``.snap`` file, which recovery ignores; never a WAL record without
        its file."""
        t0 = time.perf_counter()
        self.wal._refuse_forked()  # before the .snap file is written
        self.snapshotter.save_snap(snap)
        self.record_snap(snap, t0)

    def record_snap(self, snap: Snapshot, started: float | None = None) -> None:
        """The second half of :meth:`save_snap`, once the ``.snap`` file is
        durable: the WAL record, then the lock release. ``started`` is when
        the file's write began (for ``snap_save_total_duration_seconds``)."""
        t0 = time.perf_counter() if started is None else started
        md = snap.metadata
        self.wal.save_snapshot(WalSnapshot(index=md.index, term=md.term))
        self.wal.release_lock_to(md.index)
        self.snap_save.observe(time.perf_counter() - t0)
        logger.info("saved snapshot at index %d term %d", md.index, md.term)

    def release(self, snap: Snapshot) -> None:
        """Release WAL locks and ``.snap.db`` files older than ``snap``."""
        self.wal.release_lock_to(snap.metadata.index)
        self.snapshotter.release_snap_dbs(snap)

    def close(self) -> None:
        """Close the WAL (syncing what it buffered)."""
        self.wal.close()

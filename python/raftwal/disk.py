""":class:`DiskStorage`: what etcd persists for raft, the WAL and the
Snapshotter used together as etcd's server storage glue uses them; the one
owner of their handles, which a :class:`~raftwal.DurableStorage` goes
through."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future

from . import _native
from .messages import Entry, HardState, Snapshot, WalSnapshot
from .metrics import DiskStorageStats, Histogram, logger
from .snap import Snapshotter
from .wal import WAL

__all__ = ["DiskStorage"]


class DiskStorage:
    """What etcd persists for raft: entries and HardStates in the WAL,
    snapshots as ``.snap`` files referenced by WAL snapshot records. The
    one owner of the WAL and Snapshotter handles: a :class:`DurableStorage`
    goes through its methods."""

    __slots__ = ("snap_save", "snapshotter", "wal")

    def __init__(self, wal: WAL, snapshotter: Snapshotter) -> None:
        self.wal = wal
        self.snapshotter = snapshotter
        self.snap_save = Histogram()  # etcd's snap_save_total_duration_seconds

    def save(self, hard_state: HardState, entries: Sequence[Entry] = ()) -> None:
        """Append to the WAL; durable on return when raft's MustSync says so."""
        self.wal.save(hard_state, entries)

    def save_async(self, hard_state: HardState, entries: Sequence[Entry] = ()) -> Future[None]:
        """Append to the WAL; the future resolves once an fsync covers it."""
        return self.wal.save_async(hard_state, entries)

    def sync(self) -> None:
        """Flush and fdatasync the WAL: every save made so far is durable."""
        self.wal.sync()

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

    def write_snap_file(self, snap: Snapshot) -> None:
        """The first half of :meth:`save_snap`: the ``.snap`` file alone,
        written and fsynced (until its WAL record, recovery ignores it)."""
        self.snapshotter.save_snap(snap)

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

    def purge(self, max_snapshots: int, max_wals: int) -> list[str]:
        """etcd's purge after a snapshot: keep the newest ``max_snapshots``
        ``.snap`` files and ``max_wals`` unlocked WAL segments (0 keeps
        everything), and remove snapshot writes cut short earlier in this
        process (a signal). Returns the names removed."""
        purged = self.snapshotter.purge_snapshots(max_snapshots)
        purged += _native.purge_segments(self.wal.dirpath, max_wals)
        purged += self.snapshotter.remove_leftover_temporaries(transfers=False)
        return purged

    @property
    def durable_index(self) -> int:
        """The WAL's last index known to be on stable storage."""
        return self.wal.durable_index

    def stats(self) -> DiskStorageStats:
        """The WAL's metrics plus ``snap_save_total_duration_seconds``."""
        return {**self.wal.stats(), "snap_save_total_duration_seconds": self.snap_save.value()}

    def close(self) -> None:
        """Close the WAL (syncing what it buffered)."""
        self.wal.close()

"""``raftwal.open``: a durable raft Storage, recovered the way etcd restarts
a member.

    with raftwal.open("data") as storage:
        hs, cs = storage.initial_state()
        storage.save(HardState(term=1, vote=1, commit=1), [Entry(term=1, index=1, data=b"x")])
        if storage.needs_snapshot(applied_index=1):
            storage.create_snapshot(1, ConfState(voters=[1]), b"state machine bytes")
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import _native
from ._checks import check_u64
from ._fsutil import fsync_dir
from ._native import DiskLog, MemLog
from .durable import DiskStorage, DurableStorage
from .errors import (
    CorruptionError,
    EntryTooLargeError,
    Error,
    SnapshotMismatchError,
    SnapshotNotFoundError,
    WALNotFoundError,
)
from .lazylog import LazyEntries
from .messages import Entry, HardState, Snapshot, WalSnapshot
from .metrics import logger
from .snap import Snapshotter, db_file_name
from .storage import MemoryStorage
from .wal import (
    DEFAULT_SEGMENT_SIZE,
    WAL,
    Recovered,
    SalvageReport,
    salvage,
    valid_snapshot_entries,
    wal_exists,
)

__all__ = ["RECOVERY_MODES", "RecoveryMode", "RecoveryReport", "open"]

StrPath = str | os.PathLike[str]


@dataclass(slots=True, repr=False)
class RecoveryReport:
    """What :func:`open` found: the snapshot it started from, the entries
    it loaded and whether a torn tail had to be repaired."""

    mode: str = "tolerate-tail"
    # .snap files (names) that failed to read and were passed over,
    # newest first, with why
    broken_snapshots: list[tuple[str, str]] = field(default_factory=list)
    # files renamed to *.broken (paths, as renamed to)
    quarantined: list[str] = field(default_factory=list)
    # leftover files deleted (paths): db.tmp* of an interrupted transfer
    removed: list[str] = field(default_factory=list)
    # the snapshot's .snap.db renamed into place as the backend:
    # (from, to), as etcd's openSnapshotBackend
    backend_restored: tuple[str, str] | None = None
    damage: tuple[str, int] | None = None
    salvage: SalvageReport | None = None
    created: bool = False
    snapshot_index: int = 0
    snapshot_term: int = 0
    entries: int = 0
    last_index: int = 0
    repaired: bool = False

    def __repr__(self) -> str:
        return (
            f"RecoveryReport(created={self.created}, snapshot=({self.snapshot_index}, "
            f"{self.snapshot_term}), entries={self.entries}, last_index={self.last_index}, "
            f"repaired={self.repaired}, damage={self.damage}, mode={self.mode!r}, "
            f"broken_snapshots={[n for n, _ in self.broken_snapshots]}, "
            f"quarantined={self.quarantined}, removed={self.removed}, "
            f"backend_restored={self.backend_restored})"
        )


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


RecoveryMode = Literal["strict", "tolerate-tail", "salvage"]
"""The values of :func:`open`'s ``recovery=``."""
RECOVERY_MODES: tuple[RecoveryMode, ...] = ("strict", "tolerate-tail", "salvage")


def _choose_snapshot(
    wal_dir: Path, snapshotter: Snapshotter | None, recovery: str, report: RecoveryReport
) -> tuple[Snapshot | None, list[str]]:
    """The snapshot a restart uses (the newest readable ``.snap`` file the
    WAL holds a record of) and the names of the newer files that failed to
    read, found without changing anything, by a scan of the whole WAL
    before it is opened (the streaming CLI reads, ``cli/logruns.py``; an
    open finds it within its replay, see :func:`_load`). ``strict`` refuses
    such a file with a :class:`CorruptionError` naming it."""
    if snapshotter is None:
        return None, []
    snapshot, broken = snapshotter.scan_newest_available(valid_snapshot_entries(wal_dir))
    if broken and recovery == "strict":
        name, exc = broken[0]
        if not isinstance(exc, Error):
            raise exc  # an operating-system failure, not damage
        path = os.path.join(snapshotter.dirpath, name)
        raise CorruptionError(f"snap: cannot load {path}: {exc}") from exc
    report.broken_snapshots = [(name, str(exc)) for name, exc in broken]
    return snapshot, [name for name, _ in broken]


_Loaded = tuple[WAL, Snapshot | None, bytes, HardState, list[Entry] | DiskLog | MemLog]


def _first_segment_index(wal_dir: Path) -> int | None:
    """The first index of the oldest segment (from its name), None if none."""
    names = sorted(n for n in os.listdir(wal_dir) if n.endswith(".wal"))
    try:
        return int(names[0][17:33], 16) if names else None
    except ValueError:
        return None


def _replay_read_only(
    wal_dir: Path, walsnap: WalSnapshot, bounded: bool
) -> tuple[WAL, bytes, HardState, list[Entry] | DiskLog | MemLog]:
    """A reader's open and replay (no lock; a torn tail ends the log)."""
    races = 0
    while True:
        try:
            wal = WAL.open_for_read(wal_dir, walsnap)
            try:
                md, hs, entries = wal.read_all_indexed() if bounded else wal.read_all_packed()
            except BaseException:
                wal.close()
                raise
            return wal, md, hs, entries
        except FileNotFoundError:
            # a live writer purged a file between listing and opening it
            if races >= 3:
                raise
            races += 1


def _recover(
    wal_dir: Path,
    walsnap: WalSnapshot,
    segment_size: int,
    bounded: bool,
    recovery: str,
    report: RecoveryReport,
) -> tuple[WAL, bytes, HardState, list[Entry] | DiskLog | MemLog]:
    """A writer's open and its one replay, which cuts away the damage
    ``recovery`` allows. Damage the replay does not cut but ``salvage``
    does (a gap in the segments' sequence, an undecodable snapshot record)
    is salvaged in a pass of its own, then the replay runs again."""

    def replay() -> tuple[WAL, bytes, HardState, list[Entry] | DiskLog | MemLog, Recovered]:
        return WAL.recover(
            wal_dir,
            walsnap,
            mode=recovery,
            segment_size=segment_size,
            indexed=bounded,
            native=not bounded,
        )

    try:
        wal, md, hs, entries, rec = replay()
    except (CorruptionError, WALNotFoundError) as exc:
        if recovery != "salvage" or report.repaired:
            raise
        if exc.path is not None and exc.offset is not None:
            report.damage = (exc.path, exc.offset)
        report.salvage = salvage(wal_dir)
        if not report.salvage.changed:
            raise
        report.repaired = True
        wal, md, hs, entries, rec = replay()
    if rec.damage is not None:
        report.repaired = True
        report.damage = rec.damage
        if recovery == "salvage":
            report.salvage = SalvageReport(
                kind="torn" if rec.torn else "corrupt",
                detail=rec.detail,
                damaged_file=rec.damage[0],
                damaged_offset=rec.damage[1],
                moved=rec.moved,
                last_kept_index=rec.last_index,
                dropped_from_segment_index=int(rec.moved[0][17:33], 16) if rec.moved else None,
            )
    return wal, md, hs, entries


def _replay_at(
    wal_dir: Path,
    snapshot: Snapshot | None,
    segment_size: int,
    bounded: bool,
    recovery: str,
    report: RecoveryReport,
    read_only: bool,
) -> _Loaded | None:
    """The WAL opened at ``snapshot`` (None: its start) and replayed once;
    None when the WAL holds no record of ``snapshot`` that a restart may use
    (one with its index and term, the index at most the last commit)."""
    walsnap = WalSnapshot()
    if snapshot is not None:
        walsnap = WalSnapshot(index=snapshot.metadata.index, term=snapshot.metadata.term)
        first = _first_segment_index(wal_dir)
        if first is not None and walsnap.index < first:
            return None  # its record, if any, went with the purged segments
    try:
        if read_only:
            wal, md, hs, entries = _replay_read_only(wal_dir, walsnap, bounded)
        else:
            wal, md, hs, entries = _recover(
                wal_dir, walsnap, segment_size, bounded, recovery, report
            )
    except (SnapshotNotFoundError, SnapshotMismatchError):
        if snapshot is None:
            raise
        return None
    if walsnap.index > hs.commit:
        if isinstance(entries, DiskLog):
            entries.close()
        wal.close()
        return None
    return wal, snapshot, md, hs, entries


def _load(
    wal_dir: Path,
    snapshotter: Snapshotter | None,
    segment_size: int,
    bounded: bool,
    recovery: str,
    report: RecoveryReport,
    read_only: bool,
) -> tuple[WAL, Snapshot | None, bytes, HardState, list[Entry] | DiskLog | MemLog, list[str]]:
    """etcd's restart: the newest readable ``.snap`` file the WAL holds a
    usable record of, the WAL opened at it and replayed. The candidates are
    tried newest first, each by the replay that opens the WAL at it (which
    finds its record and the last commit on the way), so that the WAL is
    read once when the newest one is usable. Nothing is renamed or deleted
    here; the names of unreadable ``.snap`` files passed over are returned
    for the writer to quarantine once it holds the WAL. ``strict`` refuses
    such a file with a :class:`CorruptionError` naming it."""
    broken: list[tuple[str, Error | OSError]] = []
    loaded: _Loaded | None = None
    if snapshotter is not None:
        for name, got in snapshotter.newest_first():
            if isinstance(got, Snapshot):
                loaded = _replay_at(
                    wal_dir, got, segment_size, bounded, recovery, report, read_only
                )
                if loaded is not None:
                    break
                continue
            if recovery == "strict":
                if not isinstance(got, Error):
                    raise got  # an operating-system failure, not damage
                path = os.path.join(snapshotter.dirpath, name)
                raise CorruptionError(f"snap: cannot load {path}: {got}") from got
            broken.append((name, got))
    report.broken_snapshots = [(name, str(exc)) for name, exc in broken]
    if loaded is None:
        loaded = _replay_at(wal_dir, None, segment_size, bounded, recovery, report, read_only)
    assert loaded is not None  # at the log's start, a missing record raises
    return (*loaded, [name for name, _ in broken])


def _tidy_snap_dir(snapshotter: Snapshotter, broken: list[str], report: RecoveryReport) -> None:
    """What etcd's restart changes in the snapshot directory, done only by a
    writer that holds the WAL, and reported: unreadable ``.snap`` files
    renamed to ``*.broken``, leftovers of an interrupted transfer
    (``db.tmp*``) or snapshot write (``*.snap.*.tmp``) deleted."""
    for name in broken:
        renamed = snapshotter.quarantine(name)
        if renamed is not None:
            report.quarantined.append(os.path.join(snapshotter.dirpath, renamed))
    for name in snapshotter.remove_leftover_temporaries():
        report.removed.append(os.path.join(snapshotter.dirpath, name))


def _restore_backend(
    snapshotter: Snapshotter,
    index: int,
    backend: str,
    backend_index: Callable[[str], int] | None,
) -> tuple[str, str] | None:
    """etcd's ``openSnapshotBackend``: the snapshot's ``.snap.db``, if any,
    renamed to ``backend`` when the backend is behind the snapshot."""
    src = os.path.join(snapshotter.dirpath, db_file_name(index))
    if not os.path.isfile(src):
        return None
    if backend_index is not None and os.path.exists(backend):
        applied = backend_index(backend)
        check_u64("backend_index(backend)", applied)
        if applied >= index:
            return None
    os.replace(src, backend)
    fsync_dir(os.path.dirname(os.path.abspath(backend)))
    fsync_dir(snapshotter.dirpath)
    logger.info("restored backend %s from %s", backend, src)
    return src, backend


def open(
    data_dir: StrPath,
    *,
    metadata: bytes | None = None,
    snapshot_count: int = 10000,
    catch_up_entries: int = 5000,
    max_snapshots: int = 5,
    max_wals: int = 5,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    recovery: RecoveryMode = "tolerate-tail",
    bounded_memory: bool = False,
    read_only: bool = False,
    backend: StrPath | None = None,
    backend_index: Callable[[str], int] | None = None,
) -> DurableStorage:
    """Open (creating when absent) the durable storage in ``data_dir``:
    ``data_dir/wal`` and ``data_dir/snap``. An etcd member directory
    (``.../member``) is a valid ``data_dir``.

    Recovery follows etcd's restart: the newest readable ``.snap`` file that
    the WAL references (with an index no greater than the last commit), the
    WAL opened at it and replayed, then the snapshot, the HardState and the
    entries loaded into memory. ``metadata`` is used only when creating.

    ``recovery`` says what damage may be repaired on the way:

    * ``"strict"``: none; any damage raises (a torn tail: :class:`TornTailError`).
    * ``"tolerate-tail"`` (etcd's behaviour, the default): a torn or cut-short
      record at the end of the last segment is truncated once (a ``.broken``
      copy is kept); other damage raises.
    * ``"salvage"``: any damage is cut away (see :func:`raftwal.salvage`):
      the longest verified prefix is kept and ``.recovery.salvage`` says what
      was dropped.

    ``.recovery`` (a :class:`RecoveryReport`) tells what was found and done.
    Nothing is renamed or deleted before the WAL's lock is held: unreadable
    ``.snap`` files passed over (``strict`` refuses them) are then renamed
    to ``*.broken`` and ``db.tmp*`` leftovers deleted, as etcd does, and
    both are listed in ``.recovery``.

    ``read_only=True`` recovers the same state from a directory that may be
    live (an etcd member) or a backup without writing anything and without
    a lock: the WAL is read as :meth:`WAL.open_for_read` reads it (the
    intact prefix), unreadable ``.snap`` files are passed over (named in
    ``.recovery.broken_snapshots``) and left where they are, a missing
    directory raises :class:`WALNotFoundError`, and ``save``,
    ``save_async`` and ``create_snapshot`` raise :class:`raftwal.Error`.

    ``bounded_memory=True`` keeps the recovered log on disk: memory holds 12
    bytes of index per entry, and entries are read back (CRC-checked) when
    asked for; for logs larger than memory. Entries saved afterwards are
    held in memory until a snapshot compacts them, as usual. The log reads
    the segment files through the descriptors the replay opened (a writer's
    locked ones); ``close()`` lets go of them, and reading an entry still on
    disk raises :class:`WALClosedError` from then on.

    ``backend`` is the path of the application's backend database, for
    state kept beside the snapshots as etcd keeps its bbolt file (see
    :meth:`DurableStorage.create_snapshot`'s ``db``). When the snapshot
    recovery uses has a ``.snap.db`` and the backend is behind it, that file
    is renamed to ``backend`` (then both directories fsynced) before
    ``open`` returns, as etcd's ``openSnapshotBackend``, and
    ``.recovery.backend_restored`` says so. Behind means: the backend file
    is missing, or ``backend_index(backend)`` (the index the application's
    backend has applied) is below the snapshot's; without ``backend_index``
    a ``.snap.db`` still present is taken as newer (it leaves the snapshot
    directory when it is moved into place)."""
    t0 = time.perf_counter()
    if recovery not in RECOVERY_MODES:
        raise ValueError(f"recovery must be one of {RECOVERY_MODES}, not {recovery!r}")
    if not isinstance(data_dir, str | os.PathLike):
        raise TypeError(f"data_dir must be a path, not {type(data_dir).__name__}")
    if not os.fspath(data_dir):
        raise ValueError("data_dir must not be empty (use '.' for the current directory)")
    for name, value in (
        ("snapshot_count", snapshot_count),
        ("catch_up_entries", catch_up_entries),
        ("max_snapshots", max_snapshots),
        ("max_wals", max_wals),
        ("segment_size", segment_size),
    ):
        check_u64(name, value)
    if metadata is not None:
        if not isinstance(metadata, bytes):
            raise TypeError(f"metadata must be bytes or None, not {type(metadata).__name__}")
        if not _native.metadata_fits(len(metadata)):
            raise EntryTooLargeError(
                f"metadata of {len(metadata)} bytes; etcd 3.4 reads records below 10 MiB"
            )
    if backend is not None:
        if not isinstance(backend, str | os.PathLike):
            raise TypeError(f"backend must be a path or None, not {type(backend).__name__}")
        if read_only:
            raise ValueError("backend= moves the snapshot's database into place: not read_only")
    if backend_index is not None and not callable(backend_index):
        raise TypeError("backend_index must be a callable or None")
    root = Path(data_dir)
    wal_dir, snap_dir = root / "wal", root / "snap"
    report = RecoveryReport(mode=recovery)
    snapshotter: Snapshotter | None
    if read_only:
        if not wal_exists(wal_dir):
            raise WALNotFoundError(f"raftwal: no WAL segment in {wal_dir}")
        snapshotter = Snapshotter(snap_dir) if snap_dir.is_dir() else None
    else:
        _private_dir(root)
        _private_dir(snap_dir)
        snapshotter = Snapshotter(snap_dir)
    memory = MemoryStorage(MemLog(Entry))  # packed, as a recovered log is
    created: WAL | None = None
    if not wal_exists(wal_dir):
        try:
            created = WAL.create(wal_dir, metadata, segment_size=segment_size)
        except FileExistsError:
            # Another process created it meanwhile: open it as an existing
            # one (while its writer holds it, that is WALLockedError).
            if not wal_exists(wal_dir):
                raise
    wal: WAL | None = created
    try:
        if created is not None:
            wal = created
            report.created = True
            md = metadata or b""
            if snapshotter is not None:
                _tidy_snap_dir(snapshotter, [], report)
        else:
            wal, snapshot, md, hs, entries, broken = _load(
                wal_dir, snapshotter, segment_size, bounded_memory, recovery, report, read_only
            )
            if not read_only and snapshotter is not None:
                # The WAL is open for writing: its lock is held.
                _tidy_snap_dir(snapshotter, broken, report)
                if backend is not None and snapshot is not None:
                    report.backend_restored = _restore_backend(
                        snapshotter, snapshot.metadata.index, os.fspath(backend), backend_index
                    )
            if snapshot is not None:
                memory.apply_snapshot(snapshot)
                report.snapshot_index = snapshot.metadata.index
                report.snapshot_term = snapshot.metadata.term
            start = memory.snapshot()
            if isinstance(entries, DiskLog):
                # the recovered log stays on disk, behind the dummy entry
                at = start.metadata
                dummy = Entry(term=at.term, index=at.index)
                memory = MemoryStorage(LazyEntries(dummy, entries), snapshot=start)
            elif isinstance(entries, MemLog):
                # packed natively, its dummy at the snapshot the replay began at
                memory = MemoryStorage(entries, snapshot=start)
            else:
                memory.append(entries)
            memory.set_hard_state(hs)
            report.entries = len(entries)
            del entries
        report.last_index = memory.last_index()
        disk = DiskStorage(wal, snapshotter or Snapshotter(snap_dir))
        took = time.perf_counter() - t0
        storage = DurableStorage(
            disk,
            memory,
            metadata=md,
            snapshot_count=snapshot_count,
            catch_up_entries=catch_up_entries,
            max_snapshots=max_snapshots,
            max_wals=max_wals,
            report=report,
            read_only=read_only,
            recovery_seconds=took,
        )
    except BaseException:
        # whatever failed after the WAL was opened, it is not left open
        if wal is not None:
            wal.close()
        raise
    if report.repaired:
        logger.warning("recovered %s after repairing damage: %r", root, report)
    else:
        logger.info("opened %s in %.3f s: %r", root, took, report)
    return storage

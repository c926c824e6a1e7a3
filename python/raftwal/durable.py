""":class:`DurableStorage`: a durable raft Storage, memory kept in step with
a :class:`DiskStorage` (the WAL and the Snapshotter used together, as
etcd's server storage glue uses them) that persists every change first.
:func:`raftwal.open` (in :mod:`raftwal.restart`) builds one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ._checks import check_db, check_u64, entry_list, made_entries
from ._closing import Closing
from .disk import DiskStorage
from .errors import (
    CompactedError,
    SnapOutOfDateError,
    WALClosedError,
    WALPoisonedError,
    WALReadOnlyError,
)
from .messages import ConfState, Entry, HardState, Snapshot
from .metrics import DurableStorageStats, Histogram, logger
from .snap import DBSource, Snapshotter, db_file_name
from .storage import MemoryStorage
from .wal import WAL, OffLoop, run_save_off_loop

if TYPE_CHECKING:
    from .restart import RecoveryReport

__all__ = ["DiskStorage", "DurableStorage"]


class _Pending:
    """A save_async waiting for its fsync before it becomes visible."""

    __slots__ = ("done", "entries", "hard_state", "snapshot", "ticket")

    def __init__(
        self,
        ticket: int,
        hard_state: HardState,
        entries: list[Entry],
        snapshot: Snapshot | None,
        done: Future[None],
    ) -> None:
        self.ticket = ticket
        self.hard_state = hard_state
        self.entries = entries
        self.snapshot = snapshot
        self.done = done


# signal.signal wraps the C function in conversions to and from enums; the
# one of a Python handler raises and catches a ValueError inside enum, and
# the two swaps cost a small save 17 us of its ~110. The C function does the
# same for an int signal number (its previous handler: a function, or an int
# such as SIG_DFL, which compares equal to the enum).
_swap_handler: Callable[[int, Any], Any] = getattr(
    getattr(signal, "_signal", None), "signal", signal.signal
)
_SIGINT = int(signal.SIGINT)


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT (KeyboardInterrupt) back while a save or snapshot moves
    disk and memory together, then deliver it: an interrupted call ends
    with both in the old state (interrupted before it began) or both in the
    new one (the KeyboardInterrupt raised once it is complete), never with
    the WAL ahead of memory. Python runs signal handlers in the main thread
    only, so other threads need nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    try:
        previous = _swap_handler(_SIGINT, lambda signum, frame: caught.append(signum))
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        _swap_handler(_SIGINT, previous)
        if caught:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)


class DurableStorage(Closing):
    """A raft :class:`~raftwal.storage.Storage` whose log, HardState and
    snapshots survive crashes: a :class:`MemoryStorage` serving reads, kept
    in step with a :class:`DiskStorage` that persists every change first.

    Build it with :func:`raftwal.open`. Safe to share between threads."""

    def __init__(
        self,
        disk: DiskStorage,
        memory: MemoryStorage,
        *,
        metadata: bytes,
        snapshot_count: int,
        catch_up_entries: int,
        max_snapshots: int,
        max_wals: int,
        report: RecoveryReport,
        read_only: bool = False,
        recovery_seconds: float | None = None,
    ) -> None:
        self._disk = disk
        self._mem = memory
        self._metadata = metadata
        self._snapshot_count = snapshot_count
        self._catch_up_entries = catch_up_entries
        self._max_snapshots = max_snapshots
        self._max_wals = max_wals
        self._snap_index = memory.snapshot().metadata.index
        self._accepted_snap = self._snap_index
        self._accepted_last = memory.last_index()
        self._accepted_commit = memory.initial_state()[0].commit
        self._closed = False
        self._read_only = read_only
        self._failure: str | None = None
        self._lock = threading.RLock()
        # create_snapshot writes its file outside _lock; this keeps
        # snapshots and compactions one at a time (taken before _lock)
        self._snap_lock = threading.Lock()
        self._off_loop = OffLoop()
        self._snapshots = 0
        self._purged = 0
        self._recovery_time = Histogram()
        if recovery_seconds is not None:
            self._recovery_time.observe(recovery_seconds)
        # save_async calls made, and those not yet applied to memory, in order
        self._tickets = 0
        self._pending: deque[_Pending] = deque()
        self.recovery = report

    # --- Storage protocol (reads come from memory) ------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The HardState and the ConfState of the snapshot, as persisted."""
        return self._mem.initial_state()

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries in ``[lo, hi)``, at most ``max_size`` serialized bytes (at
        least one). They are copies: changing them changes nothing stored."""
        ents = self._mem.entries(lo, hi, max_size)
        if self._mem._serves_copies():
            return ents
        return [e.__copy__() for e in ents]

    def term(self, i: int) -> int:
        """The term of entry ``i``."""
        return self._mem.term(i)

    def last_index(self) -> int:
        """Index of the last entry."""
        return self._mem.last_index()

    def first_index(self) -> int:
        """Index of the first entry still available (after the compacted prefix)."""
        return self._mem.first_index()

    def snapshot(self) -> Snapshot:
        """The most recent snapshot."""
        return self._mem.snapshot()

    # --- persisting -----------------------------------------------------------

    def _plan(
        self, hard_state: object, entries: object, snapshot: object, made: bool = False
    ) -> tuple[list[Entry], tuple[int, int, int]]:
        """Check a save completely before anything is written, against the
        log as it will be once the saves in flight land: the arguments'
        types, the batch (consecutive indexes, no gap after the last index,
        types 0-2, each record small enough for etcd), the snapshot (newer
        than the current one) and the HardState (commits nothing past the
        last index, and at least the snapshot). Returns the entries to
        write, without those at or below the compacted prefix (memory
        ignores them, so the WAL must not hold them either), and the log's
        (last index, snapshot index, commit) once the save lands. ``made``:
        ``entries`` is a list of consecutive entries this storage built."""
        self._check_usable()
        if not isinstance(hard_state, HardState):
            raise TypeError(
                "hard_state must be a raftwal.HardState (HardState() saves none), "
                f"not {type(hard_state).__name__}"
            )
        for name in ("term", "vote", "commit"):
            check_u64(f"hard_state.{name}", getattr(hard_state, name))
        if snapshot is not None and not isinstance(snapshot, Snapshot):
            raise TypeError(
                f"snapshot must be a raftwal.Snapshot or None, not {type(snapshot).__name__}"
            )
        ents = entries if made else entry_list(entries)
        assert isinstance(ents, list)
        last, snap, commit = self._accepted_last, self._accepted_snap, self._accepted_commit
        old_last = last
        if snapshot is not None:
            si = snapshot.metadata.index
            if si <= snap:
                raise SnapOutOfDateError("requested index is older than the existing snapshot")
            snap = last = floor = si
        elif snap > self._mem.snapshot().metadata.index:
            floor = snap  # a snapshot in flight resets memory's log when it lands
        else:
            floor = max(snap, self._mem.first_index() - 1)
        if ents:
            if ents[0].index > last + 1:
                raise ValueError(f"missing log entry [last: {last}, append at: {ents[0].index}]")
            skip = floor + 1 - ents[0].index
            if skip > 0:
                ents = ents[skip:]
            if ents:
                last = ents[-1].index
        if not hard_state.is_empty():
            commit = hard_state.commit
            if commit > last:
                raise ValueError(f"hard state commits {commit} past the last index {last}")
        elif commit > last and last < old_last:
            raise ValueError(f"entries from {last} replace committed entries (commit {commit})")
        if commit < snap and (snapshot is not None or not hard_state.is_empty()):
            raise ValueError(
                f"hard state commit {commit} is below the snapshot at {snap}: "
                "a restart would not use that snapshot"
            )
        return ents, (last, snap, commit)

    def _check_usable(self) -> None:
        """Every change starts here, before anything is written."""
        if self._read_only:
            raise WALReadOnlyError(
                "raftwal: the storage was opened with read_only=True; it cannot write"
            )
        if self._closed:
            raise WALClosedError("the storage is closed")
        if self._failure is not None:
            raise WALPoisonedError(
                f"an earlier write or fsync failed ({self._failure}); reopen the storage"
            )

    def _failed(self, exc: BaseException) -> None:
        """A WAL write or fsync failed (or was interrupted): what is on disk
        may now differ from memory, so every later change is refused until
        a reopen. A refused argument (ValueError, TypeError) is no failure."""
        if self._failure is None and not isinstance(exc, ValueError | TypeError):
            self._failure = f"{type(exc).__name__}: {exc}"

    def _persist_snapshot(self, snapshot: Snapshot | None) -> None:
        """The ``.snap`` file (a failure there changes nothing), then the
        WAL record (a failure there poisons: the record may be on disk)."""
        if snapshot is None:
            return
        t0 = time.perf_counter()
        self._disk.write_snap_file(snapshot)
        try:
            self._disk.record_snap(snapshot, t0)
        except BaseException as exc:
            self._failed(exc)
            raise

    def _apply(
        self, hard_state: HardState, entries: Sequence[Entry], snapshot: Snapshot | None
    ) -> None:
        if snapshot is not None:
            self._mem.apply_snapshot(snapshot)
            self._snap_index = snapshot.metadata.index
        if entries:
            self._mem._append(entries)  # entry_list checked them
        if not hard_state.is_empty():
            self._mem.set_hard_state(hard_state)

    def save(
        self,
        hard_state: HardState,
        entries: Sequence[Entry] = (),
        snapshot: Snapshot | None = None,
    ) -> None:
        """Persist what a raft Ready carries, then make it visible: a
        snapshot (file, WAL record), the entries and the HardState. Returns
        once they are durable (when raft's MustSync rule requires it).

        ``snapshot=None`` means none; a snapshot not newer than the current
        one raises :class:`SnapOutOfDateError` (MemoryStorage's rule);
        entries that are not consecutive or would leave a gap, and a
        HardState committing past the last index (or below the snapshot),
        raise ``ValueError``; an entry too large for etcd raises
        :class:`EntryTooLargeError`; all before anything is written, and
        a call that raises changes nothing. Entries at or below the
        compacted prefix are ignored, as MemoryStorage ignores them.
        Recovery uses a snapshot only once a HardState commits it, as etcd's
        restart does: raft hands snapshots over with one."""
        self._save(hard_state, entries, snapshot, made=False)

    def save_entries(
        self,
        hard_state: HardState,
        term: int,
        first_index: int,
        datas: Sequence[bytes | bytearray | None],
    ) -> None:
        """:meth:`save` of normal entries of ``term`` at ``first_index``,
        ``first_index + 1``, ... whose data are ``datas`` (``None``: no data
        field), for an engine that holds its commands as bytes: the entries
        are built natively, once, instead of by the caller and again as the
        storage's copies."""
        self._save(hard_state, made_entries(term, first_index, datas), None, made=True)

    def _refuse_forked(self) -> None:
        """First, before any lock: in a child forked while a thread of the
        parent held one, that lock is never released."""
        self._disk.wal._refuse_forked()

    def _save(
        self, hard_state: HardState, entries: object, snapshot: Snapshot | None, made: bool
    ) -> None:
        self._refuse_forked()
        with self._lock, _interrupts_deferred():
            ents, shape = self._plan(hard_state, entries, snapshot, made)
            self._persist_snapshot(snapshot)
            try:
                self._disk.save(hard_state, ents)
                self._accepted_last, self._accepted_snap, self._accepted_commit = shape
                if self._pending:
                    # Saves made earlier with save_async become visible first:
                    # one sync makes them durable (with this one), then all of
                    # them are applied in order.
                    self._disk.sync()
            except BaseException as exc:
                self._failed(exc)
                raise
            self._drain(self._tickets)
            self._apply(hard_state, ents, snapshot)

    def save_async(
        self,
        hard_state: HardState,
        entries: Sequence[Entry] = (),
        snapshot: Snapshot | None = None,
    ) -> Future[None]:
        """Like :meth:`save`, returning a future that resolves once the save
        is durable; the entries become visible through the Storage protocol
        then, in the order the saves were made (a later :meth:`save` waits
        for the ones before it). Concurrent saves share fsyncs. A call that
        raises leaves nothing in flight."""
        return self._save_async(hard_state, entries, snapshot, made=False)

    def save_entries_async(
        self,
        hard_state: HardState,
        term: int,
        first_index: int,
        datas: Sequence[bytes | bytearray | None],
    ) -> Future[None]:
        """:meth:`save_entries` as :meth:`save_async` does it."""
        ents = made_entries(term, first_index, datas)
        return self._save_async(hard_state, ents, None, made=True)

    def _save_async(
        self, hard_state: HardState, entries: object, snapshot: Snapshot | None, made: bool
    ) -> Future[None]:
        self._refuse_forked()
        done: Future[None] = Future()
        done.set_running_or_notify_cancel()  # see WAL.save_async
        with self._lock, _interrupts_deferred():
            ents, shape = self._plan(hard_state, entries, snapshot, made)
            self._persist_snapshot(snapshot)
            try:
                fut = self._disk.save_async(hard_state, ents)
            except BaseException as exc:
                self._failed(exc)
                raise
            self._accepted_last, self._accepted_snap, self._accepted_commit = shape
            self._tickets += 1
            ticket = self._tickets
            hs_copy = HardState(hard_state.term, hard_state.vote, hard_state.commit)
            self._pending.append(_Pending(ticket, hs_copy, ents, snapshot, done))
            fut.add_done_callback(lambda f: self._durable(f, ticket))
        return done

    async def asave(
        self,
        hard_state: HardState,
        entries: Sequence[Entry] = (),
        snapshot: Snapshot | None = None,
    ) -> None:
        """``await`` a :meth:`save_async` without ever blocking the event loop
        (see :meth:`WAL.asave`); cancelling the waiter does not cancel the save."""
        ents = list(entries)
        await run_save_off_loop(self._off_loop, lambda: self.save_async(hard_state, ents, snapshot))

    def _durable(self, f: Future[None], ticket: int) -> None:
        """A save_async's fsync finished: apply it (and any before it)."""
        with self._lock:
            exc = f.exception()
            if exc is None:
                self._drain(ticket)
                return
            self._failed(exc)
            for p in list(self._pending):
                if p.ticket == ticket:
                    self._pending.remove(p)
                    p.done.set_exception(exc)

    def _drain(self, upto: int) -> None:
        """Apply pending async saves with tickets up to ``upto``, in order
        (all durable by now), and resolve their futures."""
        while self._pending and self._pending[0].ticket <= upto:
            p = self._pending.popleft()
            try:
                self._apply(p.hard_state, p.entries, p.snapshot)
            except BaseException as err:
                p.done.set_exception(err)
            else:
                p.done.set_result(None)

    def compact(self, index: int) -> None:
        """Drop entries up to ``index`` from memory (MemoryStorage's
        ``compact``; :class:`CompactedError` if already compacted). The WAL
        keeps them until a snapshot lets them be purged, so a restart brings
        back everything after the snapshot it recovers from. ``ValueError``
        if a save still in flight replaces entries up to ``index``."""
        check_u64("index", index)
        with self._snap_lock, self._lock:
            self._check_usable()
            for p in self._pending:
                if p.snapshot is not None or (p.entries and p.entries[0].index <= index):
                    raise ValueError(
                        f"compact({index}) reaches entries a save in flight replaces; "
                        "wait for its future first"
                    )
            self._mem.compact(index)

    def needs_snapshot(self, applied_index: int) -> bool:
        """True when more than ``snapshot_count`` entries were applied since
        the last snapshot (etcd's trigger)."""
        return applied_index - self._snap_index > self._snapshot_count

    def create_snapshot(
        self,
        index: int,
        conf_state: ConfState | None,
        data: bytes | None,
        *,
        db: DBSource | None = None,
    ) -> Snapshot:
        """Take a snapshot at ``index`` (applied by the caller's state
        machine): persist it, compact memory to ``index - catch_up_entries``
        (or 1), and purge old ``.snap`` and WAL files beyond
        ``max_snapshots`` / ``max_wals`` (0 keeps everything).

        ``db``, when given, is the application's state at ``index`` too
        large for ``data``: any source :meth:`Snapshotter.save_db_from`
        takes (a path, a binary file object, an iterable of chunks). It is
        streamed to ``%016x.snap.db`` before the ``.snap`` file and the WAL
        record, so a crash never leaves a snapshot recovery would use
        without its database; older ``.snap.db`` files are then released.

        Raises, before anything is written: :class:`SnapOutOfDateError` for
        an index not above the current snapshot, ``ValueError`` for one past
        the persisted commit (recovery would not use the snapshot) or the
        last index, ``TypeError`` for arguments of the wrong type. A failure
        while persisting leaves memory as it was."""
        check_u64("index", index)
        if conf_state is not None and not isinstance(conf_state, ConfState):
            raise TypeError(
                f"conf_state must be a raftwal.ConfState or None, not {type(conf_state).__name__}"
            )
        if data is not None and not isinstance(data, bytes):
            raise TypeError(f"data must be bytes or None, not {type(data).__name__}")
        check_db(db)
        self._refuse_forked()
        with self._snap_lock:  # one snapshot (or compaction) at a time
            with self._lock, _interrupts_deferred():
                self._check_snapshot(index)
                snap = self._mem.build_snapshot(index, conf_state, data)
            # The database and the .snap file are written and fsynced beside
            # the saves, not under the storage's lock (they can be large):
            # until the WAL record below, recovery ignores them.
            t0 = time.perf_counter()
            if db is not None:
                self._disk.snapshotter.save_db_from(db, index)
            self._disk.write_snap_file(snap)
            return self._record_snapshot(snap, conf_state, data, t0)

    def apply_snapshot(
        self,
        snapshot: Snapshot,
        *,
        db: DBSource | None = None,
        hard_state: HardState | None = None,
    ) -> None:
        """Install a snapshot received from the leader, as a follower does:
        ``db`` (its backend database, any :meth:`Snapshotter.save_db_from`
        source) is streamed to ``%016x.snap.db`` first, then the snapshot is
        saved as :meth:`save` saves one (``.snap`` file, WAL record, memory)
        with ``hard_state``, which defaults to the current one committing the
        snapshot (its term raised to the snapshot's when lower, the vote
        then cleared). Older ``.snap.db`` files are released afterwards.
        Refused as :meth:`save` refuses (:class:`SnapOutOfDateError` for a
        snapshot not newer than the current one), before anything is written."""
        if not isinstance(snapshot, Snapshot):
            raise TypeError(f"snapshot must be a raftwal.Snapshot, not {type(snapshot).__name__}")
        check_db(db)
        md = snapshot.metadata
        self._refuse_forked()
        with self._snap_lock:
            if hard_state is None:
                with self._lock:
                    cur, _ = self._mem.initial_state()
                    pending = [p.hard_state for p in self._pending if not p.hard_state.is_empty()]
                    if pending:
                        cur = pending[-1]
                term, vote = cur.term, cur.vote
                if term < md.term:
                    term, vote = md.term, 0
                hard_state = HardState(term=term, vote=vote, commit=max(cur.commit, md.index))
            with self._lock:
                self._plan(hard_state, (), snapshot)
            if db is not None:
                self._disk.snapshotter.save_db_from(db, md.index)
            self.save(hard_state, (), snapshot)
            with self._lock:
                self._disk.snapshotter.release_snap_dbs(snapshot)

    def snapshot_db_path(self) -> str | None:
        """The backend database saved with the current snapshot
        (``%016x.snap.db``), or None when it has none (or it was moved into
        place as the backend by :func:`raftwal.open`)."""
        index = self._snap_index
        if index == 0:
            return None
        path = os.path.join(self._disk.snapshotter.dirpath, db_file_name(index))
        return path if os.path.isfile(path) else None

    def _check_snapshot(self, index: int) -> None:
        self._check_usable()
        if index <= self._accepted_snap:
            raise SnapOutOfDateError("requested index is older than the existing snapshot")
        hs, _ = self._mem.initial_state()
        if index > hs.commit:
            # recovery only uses snapshots a persisted HardState commits;
            # the purge below would delete the segments it needs instead
            raise ValueError(f"snapshot {index} is past the persisted commit {hs.commit}")

    def _record_snapshot(
        self, snap: Snapshot, conf_state: ConfState | None, data: bytes | None, t0: float
    ) -> Snapshot:
        """The WAL record of a snapshot whose file is durable, then memory
        and the purge; the arguments are checked again (a leader's snapshot
        may have landed while the file was written)."""
        index = snap.metadata.index
        with self._lock, _interrupts_deferred():
            self._check_snapshot(index)
            try:
                self._disk.record_snap(snap, t0)
            except BaseException as exc:
                self._failed(exc)
                raise
            self._mem.create_snapshot(index, conf_state, data)
            self._snap_index = index
            self._accepted_snap = index
            self._disk.release(snap)
            compact = index - self._catch_up_entries if index > self._catch_up_entries else 1
            try:
                self._mem.compact(compact)
            except CompactedError:
                pass
            purged = self._disk.purge(self._max_snapshots, self._max_wals)
            self._snapshots += 1
            self._purged += len(purged)
            if purged:
                logger.info("purged %s", ", ".join(purged))
            return snap

    # --- properties and lifetime -----------------------------------------------------

    def stats(self) -> DurableStorageStats:
        """The WAL's counters and histograms plus ``snap_save_total_duration_seconds``,
        ``recovery_duration_seconds``, ``snapshots_total`` and
        ``purged_files_total``; see :mod:`raftwal.metrics`."""
        return {
            **self._disk.stats(),
            "recovery_duration_seconds": self._recovery_time.value(),
            "snapshots_total": self._snapshots,
            "purged_files_total": self._purged,
        }

    @property
    def metadata(self) -> bytes:
        """The WAL's metadata (``b""`` when it was created without)."""
        return self._metadata

    @property
    def durable_index(self) -> int:
        """The last index known to be on stable storage and visible: the
        WAL's fsync lands before the saves it covers are applied to memory,
        and every entry in memory is durable, so it never exceeds
        :meth:`last_index`."""
        return min(self._disk.durable_index, self._mem.last_index())

    @property
    def wal(self) -> WAL:
        """The underlying WAL."""
        return self._disk.wal

    @property
    def snapshotter(self) -> Snapshotter:
        """The underlying Snapshotter."""
        return self._disk.snapshotter

    def close(self) -> None:
        """Sync and close the WAL; pending futures settle first (saves issued
        before through :meth:`asave` included). Saves, snapshots and
        compaction raise :class:`WALClosedError` afterwards; reads still
        answer from memory."""
        self._off_loop.close()
        with self._lock:
            self._closed = True
        self._disk.close()
        # bounded_memory: the recovered log lets go of its segment files
        self._mem.close()

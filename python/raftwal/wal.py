"""The write-ahead log: etcd's ``wal`` package over raftwal's native core.

A WAL directory holds segment files ``%016x-%016x.wal`` that etcd itself
reads and writes. The same calls in the same order give byte-identical
files to etcd 3.4's.

    with WAL.create(path, b"meta") as w:
        w.save(HardState(term=1, vote=1, commit=0), [Entry(term=1, index=1, data=b"x")])

    with WAL.open(path) as w:
        metadata, state, entries = w.read_all()
        w.save(state, more)                       # durable on return
        fut = w.save_async(state, even_more)      # durable when fut resolves
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import _native
from ._closing import Closing
from .errors import Error, WALClosedError
from .messages import ConfState, Entry, HardState, WalSnapshot
from .metrics import WALStats, logger, wal_stats

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "WAL",
    "Recovered",
    "SalvageReport",
    "repair",
    "salvage",
    "valid_snapshot_entries",
    "verify",
    "wal_exists",
]

DEFAULT_SEGMENT_SIZE: int = _native.DEFAULT_SEGMENT_SIZE
"""etcd's ``SegmentSizeBytes`` (64 MB): preallocation size and cut
threshold; defined once, in the native core."""

StrPath = str | os.PathLike[str]


class WAL(Closing):
    """An open write-ahead log. Build one with :meth:`create`, :meth:`open`
    or :meth:`open_for_read`; it is safe to use from several threads."""

    __slots__ = ("_commit", "_native", "_off_loop", "_pid", "_writable")

    # held by the class, for __del__ at interpreter exit (module globals may
    # be gone by then)
    _current_pid = staticmethod(_native.current_pid)

    def __init__(self, native: _native.Wal, writable: bool) -> None:
        self._native = native
        self._writable = writable
        self._commit = _GroupCommit(native)
        self._off_loop = OffLoop()
        self._pid = _native.current_pid()

    def __del__(self) -> None:
        # A WAL dropped without close() releases its locks, threads and
        # files when collected, and says so, as an unclosed file does.
        native = getattr(self, "_native", None)
        if native is None or native.closed or self._current_pid() != self._pid:
            return
        # at interpreter exit the repr's imports may be gone: close anyway
        with contextlib.suppress(Exception):
            warnings.warn(
                f"unclosed {self!r}: call close() or use it as a context manager",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )
        self._off_loop.close(wait=False)
        self._commit.close()
        with contextlib.suppress(Exception):
            native.close()

    # --- construction ---------------------------------------------------------

    @classmethod
    def create(
        cls,
        dirpath: StrPath,
        metadata: bytes | None = None,
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> WAL:
        """A new WAL in ``dirpath`` (missing or empty; otherwise
        ``FileExistsError`` and nothing is touched). ``metadata=None`` writes
        no metadata field (etcd's nil), ``b""`` an empty one. The directory
        appears complete at once: it is built beside (in ``<dirpath>.tmp``,
        locked) and renamed into place; a second creator of the same
        directory at the same time, in any process, gets
        :class:`WALLockedError`."""
        return cls(_native.Wal.create(os.fspath(dirpath), metadata, segment_size), True)

    @classmethod
    def open(
        cls,
        dirpath: StrPath,
        snap: WalSnapshot | None = None,
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> WAL:
        """Open for appending at snapshot ``snap`` (None: the start of the
        log). Locks every segment from the one holding ``snap`` on; another
        writer gets :class:`WALLockedError`. Call :meth:`read_all` before
        saving."""
        index, term = (snap.index, snap.term) if snap is not None else (0, 0)
        native = _native.Wal.open(os.fspath(dirpath), index, term, True, segment_size)
        return cls(native, True)

    @classmethod
    def open_for_read(cls, dirpath: StrPath, snap: WalSnapshot | None = None) -> WAL:
        """Open read-only: no lock is taken or waited for, and a torn tail
        ends the log (the intact prefix is returned) instead of failing."""
        index, term = (snap.index, snap.term) if snap is not None else (0, 0)
        native = _native.Wal.open(os.fspath(dirpath), index, term, False, DEFAULT_SEGMENT_SIZE)
        return cls(native, False)

    @classmethod
    def recover(
        cls,
        dirpath: StrPath,
        snap: WalSnapshot | None = None,
        *,
        mode: str = "tolerate-tail",
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        indexed: bool = False,
        native: bool = False,
    ) -> tuple[WAL, bytes, HardState, list[Entry] | _native.DiskLog | _native.MemLog, Recovered]:
        """:meth:`open` for appending and :meth:`read_all` (or, with
        ``indexed``, :meth:`read_all_indexed`; with ``native``, the entries
        packed in a :class:`raftwal._native.MemLog`) in one replay, which cuts
        away the damage ``mode`` allows (``"strict"``: none;
        ``"tolerate-tail"``: a torn tail; ``"salvage"``: the first damaged
        frame and all after it), keeping a ``.broken`` copy of what it cuts.
        Returns the WAL, ready to append, what it read and what was done."""
        index, term = (snap.index, snap.term) if snap is not None else (0, 0)
        core, (metadata, (t, v, c), entries), r = _native.recover(
            os.fspath(dirpath), index, term, mode, Entry, segment_size, indexed, native
        )
        wal = cls(core, True)
        damage = None
        if r["damaged_file"] is not None:
            damage = (os.fspath(r["damaged_file"]), r["damaged_offset"])
        recovered = Recovered(
            damage=damage,
            torn=r["torn"],
            detail=r["damage"] or "",
            broken=os.fspath(r["broken"]) if r["broken"] is not None else None,
            moved=list(r["moved"]),
            bytes_read=r["bytes_read"],
            last_index=r["last_index"],
        )
        return (
            wal,
            metadata if metadata is not None else b"",
            HardState(t, v, c),
            entries,
            recovered,
        )

    # --- reading --------------------------------------------------------------

    def read_all(self) -> tuple[bytes, HardState, list[Entry]]:
        """Replay the log from the snapshot it was opened at: the metadata
        (``b""`` when none was written), the last HardState and the entries
        after the snapshot, later entries replacing earlier ones at the same
        index. Raises :class:`SnapshotNotFoundError` if the log holds no
        record of that snapshot; opened for writing, a torn tail raises
        :class:`TornTailError` (see :func:`repair`). Can be called once."""
        metadata, (term, vote, commit), entries = self._native.read_all(Entry)
        assert isinstance(entries, list)
        return (metadata if metadata is not None else b"", HardState(term, vote, commit), entries)

    def read_all_packed(self) -> tuple[bytes, HardState, _native.MemLog]:
        """Like :meth:`read_all`, but the entries are packed in a
        :class:`raftwal._native.MemLog` (their data in one buffer, 32 bytes
        of slot each; position 0 is the dummy entry at the snapshot opened
        at), a ready :class:`~raftwal.MemoryStorage` entry list."""
        metadata, (term, vote, commit), log = self._native.read_all(Entry, True)
        assert isinstance(log, _native.MemLog)
        return (metadata if metadata is not None else b"", HardState(term, vote, commit), log)

    def read_all_indexed(self) -> tuple[bytes, HardState, _native.DiskLog]:
        """Like :meth:`read_all`, but the entries stay on disk: the result's
        third item is a :class:`raftwal._native.DiskLog` (12 bytes of index
        per entry) that reads them back, CRC-checked, on demand."""
        metadata, (term, vote, commit), log = self._native.read_all_indexed()
        return (metadata if metadata is not None else b"", HardState(term, vote, commit), log)

    # --- writing --------------------------------------------------------------

    def save(self, hard_state: HardState, entries: Sequence[Entry] = ()) -> None:
        """Append ``entries`` then ``hard_state`` (skipped when empty).
        Returns once they are on stable storage whenever etcd's rule says the
        save must sync: new entries, or a changed term or vote. A commit-only
        HardState is buffered until the next sync, as in etcd."""
        self._synced(lambda: self._native.save(hard_state, entries, True))

    def _synced(self, save: Callable[[], object]) -> None:
        """Run a synced ``save``, warning when it took over a second."""
        t0 = time.perf_counter()
        save()
        took = time.perf_counter() - t0
        if took > 1.0:
            logger.warning("slow fdatasync: a save took %.3f s (expected under 1 s)", took)

    def save_async(self, hard_state: HardState, entries: Sequence[Entry] = ()) -> Future[None]:
        """Append like :meth:`save` and return at once. The records take
        their place in the log before this returns; the future resolves to
        None once an fsync covers them. Pending saves share fsyncs (group
        commit). asyncio: ``await asyncio.wrap_future(fut)``."""
        return self._queued(lambda: self._native.save(hard_state, entries, False))

    def _queued(self, append: Callable[[], int]) -> Future[None]:
        """Run ``append`` (an unsynced save, returning its sequence number)
        and return the future an fsync covering it resolves."""
        self._refuse_forked()
        fut: Future[None] = Future()
        # Running futures cannot be cancelled: a cancelled waiter must not
        # take the save (or the group-commit thread) down with it.
        fut.set_running_or_notify_cancel()
        self._commit.add(append, fut)
        return fut

    def save_entries(
        self,
        hard_state: HardState,
        term: int,
        first_index: int,
        datas: Sequence[bytes | bytearray | None],
    ) -> None:
        """:meth:`save` of normal entries of ``term`` at indexes
        ``first_index``, ``first_index + 1``, ... whose data are ``datas``
        (``None``: no data field), without an :class:`Entry` per entry:
        for an engine that holds its commands as bytes. The records are
        the ones :meth:`save` writes for the same entries."""
        self._synced(lambda: self._native.save_datas(hard_state, term, first_index, datas, True))

    def save_entries_async(
        self,
        hard_state: HardState,
        term: int,
        first_index: int,
        datas: Sequence[bytes | bytearray | None],
    ) -> Future[None]:
        """:meth:`save_entries` as :meth:`save_async` does it: appended
        before this returns, the future resolving once an fsync covers it."""
        return self._queued(
            lambda: self._native.save_datas(hard_state, term, first_index, datas, False)
        )

    async def asave(self, hard_state: HardState, entries: Sequence[Entry] = ()) -> None:
        """``await`` a :meth:`save_async` without ever blocking the event loop
        (the append runs on a worker thread, in call order, since it may cut
        a segment and fsync). Cancelling the waiter does not cancel the save.
        A save issued before :meth:`close` completes; one issued after it
        raises :class:`WALClosedError`."""
        ents = list(entries)
        await run_save_off_loop(self._off_loop, lambda: self.save_async(hard_state, ents))

    def _refuse_forked(self) -> None:
        """A child forked from the process that opened the WAL shares its
        files and locks: it must not write (nor wait for a lock a thread of
        the parent may have held at the fork)."""
        if _native.current_pid() != self._pid:
            raise WALClosedError(
                "wal: the WAL belongs to the process that opened it; "
                "a forked child cannot write to it"
            )

    def save_snapshot(self, snap: WalSnapshot) -> None:
        """Append a snapshot record and sync. Without ``conf_state`` the
        record is etcd 3.4's (index and term); with it, etcd 3.5's."""
        if not isinstance(snap, WalSnapshot):
            raise TypeError(f"snap must be a raftwal.WalSnapshot, not {type(snap).__name__}")
        cs = snap.conf_state.SerializeToString() if snap.conf_state is not None else None
        self._native.save_snapshot(snap.index, snap.term, cs)

    def sync(self) -> None:
        """Flush buffered records and fdatasync the tail segment."""
        self._native.sync()

    def release_lock_to(self, index: int) -> None:
        """Unlock segments no longer needed to recover from a snapshot at
        ``index`` (etcd's rule: everything before the predecessor of the
        first segment starting at or after ``index``), so they can be purged."""
        self._native.release_lock_to(index)

    def locked_segments(self) -> list[str]:
        """Names of the segments this writer holds locked, oldest first."""
        return self._native.locked_segments()

    @property
    def durable_index(self) -> int:
        """Index of the last entry known to be on stable storage."""
        return self._native.durable_index

    def stats(self) -> WALStats:
        """Counters (``wal_write_bytes_total``, ``wal_saves_total``, ...) and
        histograms (``wal_fsync_duration_seconds``, ``wal_write_duration_seconds``,
        ``wal_cut_duration_seconds``) of this WAL; see :mod:`raftwal.metrics`."""
        return wal_stats(self._native)

    @property
    def dirpath(self) -> str:
        """The WAL directory."""
        return os.fspath(self._native.dirpath)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._native.closed

    def close(self) -> None:
        """Sync what is buffered, settle every pending future and release
        every lock. Saves issued before (:meth:`asave` included) complete
        first; later ones raise :class:`WALClosedError`. Closing twice is
        harmless. In a child forked from the process that opened the WAL,
        only the child's handles are let go (no I/O) and
        :class:`WALClosedError` is raised."""
        if _native.current_pid() != self._pid:
            self._native.close()  # raises: not this process's WAL
            return
        self._off_loop.close()
        self._commit.close()
        self._native.close()

    def __repr__(self) -> str:
        mode = "write" if self._writable else "read"
        return f"<raftwal.WAL {self.dirpath!r} mode={mode} durable_index={self.durable_index}>"


def wal_exists(dirpath: StrPath) -> bool:
    """True if ``dirpath`` holds any ``*.wal`` file (etcd's ``wal.Exist``)."""
    return _native.wal_exists(os.fspath(dirpath))


def repair(dirpath: StrPath) -> bool:
    """Truncate a torn or cut-short record at the end of the last segment,
    keeping a ``<segment>.broken`` copy. True once the WAL verifies (every
    segment's frames and CRC chain, and the log from its newest snapshot
    record), whether or not something had to be cut; False for a
    missing directory or no segments. Damage it cannot repair (anything
    but a torn tail, anywhere) raises the :class:`CorruptionError` (or
    :class:`WALNotFoundError`) that names it, and nothing is changed; a
    writer holding the WAL gives :class:`WALLockedError` at once."""
    return _native.repair(os.fspath(dirpath))


def verify(dirpath: StrPath, snap: WalSnapshot | None = None) -> HardState:
    """Check the log from ``snap`` on without changing it and return its
    last HardState. Stricter than etcd: a torn tail (:class:`TornTailError`),
    a gap between entries (:class:`SliceOutOfRangeError`) and non-zero bytes
    after a segment's end of log (:class:`CorruptionError`) are reported."""
    index, term = (snap.index, snap.term) if snap is not None else (0, 0)
    t, v, c = _native.verify(os.fspath(dirpath), index, term)
    return HardState(t, v, c)


def valid_snapshot_entries(dirpath: StrPath) -> list[WalSnapshot]:
    """Snapshot records a restart may use: every one in the WAL, in order,
    whose index is at most the last HardState's commit index."""
    out = []
    for index, term, cs in _native.valid_snapshot_entries(os.fspath(dirpath)):
        conf = ConfState.FromString(cs) if cs is not None else None
        out.append(WalSnapshot(index=index, term=term, conf_state=conf))
    return out


@dataclass(frozen=True)
class Recovered:
    """What the replay of :meth:`WAL.recover` cut away: ``damage`` is the
    (segment, offset) of the first frame cut (None when nothing was),
    ``torn`` whether it was a torn record rather than corruption, ``detail``
    the error it would have been, ``broken`` the copy kept of the segment
    cut, ``moved`` the later segments renamed ``*.broken``. ``bytes_read``
    counts the segment bytes the replay read; ``last_index`` is the last
    index it replayed."""

    damage: tuple[str, int] | None = None
    torn: bool = False
    detail: str = ""
    broken: str | None = None
    moved: list[str] = field(default_factory=list)
    bytes_read: int = 0
    last_index: int = 0

    @property
    def repaired(self) -> bool:
        """True if something was cut."""
        return self.damage is not None


@dataclass(frozen=True)
class SalvageReport:
    """What :func:`salvage` did. ``kind`` is ``""`` when the WAL was clean,
    else ``"torn"`` or ``"corrupt"``; ``damaged_file``/``damaged_offset``
    name the segment cut short and the frame where the damage starts;
    ``moved`` lists later segments renamed ``*.broken``; entries after
    ``last_kept_index`` were dropped (``dropped_from_segment_index`` is the
    first index of the first segment moved aside)."""

    kind: str = ""
    detail: str = ""
    damaged_file: str | None = None
    damaged_offset: int | None = None
    moved: list[str] = field(default_factory=list)
    last_kept_index: int = 0
    dropped_from_segment_index: int | None = None

    @property
    def changed(self) -> bool:
        """True if anything was cut or moved aside."""
        return bool(self.kind)


def salvage(dirpath: StrPath) -> SalvageReport:
    """Keep the longest verified prefix of the WAL, whatever the damage: the
    segment holding the first bad frame is copied to ``<name>.broken`` and
    truncated before it, and every later segment is renamed ``*.broken``.
    Unlike :func:`repair` this also drops data after a corrupt record (a CRC
    mismatch, a malformed frame, a broken chain, a missing segment, an
    entry index that skips ahead), so use it only when losing that suffix
    is better than not starting."""
    r = _native.salvage(os.fspath(dirpath))
    return SalvageReport(
        kind=r["kind"],
        detail=r["detail"],
        damaged_file=r["damaged_file"],
        damaged_offset=r["damaged_offset"],
        moved=list(r["moved"]),
        last_kept_index=r["last_kept_index"],
        dropped_from_segment_index=r["dropped_from_segment_index"],
    )


def _settle(fut: asyncio.Future[Any]) -> None:
    """Retrieve a shielded future's outcome, so a save that fails after its
    waiter was cancelled is not reported as "exception never retrieved"."""
    if not fut.cancelled():
        fut.exception()


def shielded(
    done: Future[None], loop: asyncio.AbstractEventLoop | None = None
) -> asyncio.Future[None]:
    """An awaitable for a save's future: cancelling it cancels neither the
    save nor the wait of others, and an outcome nobody awaits any more is
    still retrieved."""
    inner = asyncio.wrap_future(done, loop=loop)
    inner.add_done_callback(_settle)
    return asyncio.shield(inner)


def _copy_outcome(src: Future[None], dst: Future[None]) -> None:
    exc = src.exception()
    if exc is None:
        dst.set_result(None)
    else:
        dst.set_exception(exc)


def _chain(started: Future[Future[None]], done: Future[None]) -> None:
    exc = started.exception()
    if exc is not None:
        done.set_exception(exc)
    else:
        started.result().add_done_callback(lambda f: _copy_outcome(f, done))


class _GroupCommit:
    """The ``save_async`` futures of one WAL waiting for an fsync, and two
    threads: the syncer runs fsyncs back to back in native code, without
    the GIL, while an unsynced save is not durable yet (one fsync covers
    every save made before it starts); the settler resolves the futures an
    fsync covered. So the next fsync never waits for the futures of the
    last to resolve, nor for the GIL. It holds the native WAL, never the
    :class:`WAL`, so a WAL its owner forgot to close can be collected."""

    __slots__ = ("_closing", "_cv", "_native", "_pending", "_syncer", "_thread")

    def __init__(self, native: _native.Wal) -> None:
        self._native = native
        self._cv = threading.Condition()
        self._pending: list[tuple[int, Future[None]]] = []
        self._thread: threading.Thread | None = None
        self._syncer: threading.Thread | None = None
        self._closing = False

    def add(self, append: Callable[[], int], fut: Future[None]) -> None:
        """Run ``append`` (it returns the save's sequence number) and settle
        ``fut`` once an fsync covers that save."""
        with self._cv:
            if self._closing:
                raise WALClosedError("wal: the WAL is closed")
            seq = append()
            self._pending.append((seq, fut))
            if self._thread is None:
                self._syncer = threading.Thread(
                    target=self._sync_loop, name="raftwal-syncer", daemon=True
                )
                self._syncer.start()
                self._thread = threading.Thread(
                    target=self._run, name="raftwal-group-commit", daemon=True
                )
                self._thread.start()
            self._cv.notify()

    def _sync_loop(self) -> None:
        # A failed fsync poisons the WAL: the settler's sync_to raises its
        # error into every future it covered, WALPoisonedError into later ones.
        with contextlib.suppress(Error, OSError):
            self._native.sync_loop()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closing:
                    self._cv.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
            self._settle(batch)
            # nothing of a settled batch stays referenced while idle: its
            # futures' callbacks may hold the storage that made them
            del batch

    def _settle(self, batch: list[tuple[int, Future[None]]]) -> None:
        try:
            self._native.sync_to(max(seq for seq, _ in batch))
        except BaseException:
            # Each save learns its own outcome: durable by an earlier fsync,
            # the error of the failed one that was to cover it, or that the
            # WAL was poisoned (or closed) before it (none of these waits).
            for seq, fut in batch:
                try:
                    self._native.sync_to(seq)
                except BaseException as exc:
                    fut.set_exception(exc)
                else:
                    fut.set_result(None)
            return
        for _, fut in batch:
            fut.set_result(None)

    def close(self) -> None:
        """Refuse new saves; settle the pending ones and stop the thread
        (without waiting for it when called from it)."""
        with self._cv:
            self._closing = True
            thread, syncer = self._thread, self._syncer
            self._cv.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        # the settler syncs what is still pending itself
        self._native.stop_sync_loop()
        if syncer is not None:
            syncer.join()


class OffLoop:
    """Runs ``save_async`` calls on one worker thread, in call order, so that
    appending (which may cut a segment: truncate, fsyncs, rename, directory
    sync) never runs on an event loop's thread. :meth:`close` waits for what
    was submitted before it; a later :meth:`submit` raises
    :class:`WALClosedError`."""

    __slots__ = ("_closed", "_executor", "_lock", "_pid")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._pid = _native.current_pid()

    def submit(self, start: Callable[[], Future[None]]) -> Future[None]:
        """Call ``start`` (a ``save_async``) on the worker; the returned
        future settles as the future ``start`` returns does (or with what
        ``start`` raised)."""
        if _native.current_pid() != self._pid:
            # A forked child: the worker is the parent's, and the WAL too.
            raise WALClosedError(
                "wal: the WAL belongs to the process that opened it; "
                "a forked child cannot write to it"
            )
        done: Future[None] = Future()
        done.set_running_or_notify_cancel()  # see WAL.save_async
        with self._lock:
            if self._closed:
                raise WALClosedError("wal: the WAL is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="raftwal-asave")
            started = self._executor.submit(start)
        started.add_done_callback(lambda f: _chain(f, done))
        return done

    def close(self, wait: bool = True) -> None:
        """Refuse new submissions and run every one made before (waiting
        for them unless ``wait`` is false)."""
        with self._lock:
            self._closed = True
            executor = self._executor
        if executor is not None:
            executor.shutdown(wait=wait)


async def await_save(done: Future[None]) -> None:
    """Wait for a save's future without blocking the event loop; cancelling
    the waiter cancels neither the save nor the wait of others."""
    await shielded(done)


async def run_save_off_loop(off_loop: OffLoop, submit: Callable[[], Future[None]]) -> None:
    """Run ``submit`` (a ``save_async`` call) through ``off_loop`` and wait
    until the save is durable, without ever blocking the event loop:
    appending can mean a segment cut and its fsyncs. One worker per WAL
    keeps the saves in call order."""
    await await_save(off_loop.submit(submit))

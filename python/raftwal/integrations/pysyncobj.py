"""A raftwal-backed journal for PySyncObj: its raft log, term and vote in etcd's WAL.

PySyncObj (``pip install pysyncobj``) is a Raft implementation in pure
Python. It keeps a node's log in a *journal*: its own ``FileJournal`` writes
the entries into an mmap'd file that it never fsyncs, and the term and vote
into a small file written without fsync either, so a node survives a
process kill (the page cache keeps the bytes) but not a power cut or a
kernel crash. :class:`RaftwalJournal` keeps the same things in raftwal:
entries as raft entries, the term, the vote and the commit index in the
HardState, PySyncObj's log compaction as snapshot markers, all in etcd's
WAL format with raftwal's recovery.

Plugging it in
--------------
PySyncObj builds its journal itself, from ``SyncObjConf.journalFile``, with
a module-level factory ``pysyncobj.syncobj.createJournal``; it has no
option for a custom journal class. :func:`install` wraps that factory once
so that ``journalFile`` may also be a ``pysyncobj.journal.Journal``
instance, which is then used as is (a path or ``None`` behaves exactly as
before). This is the one monkeypatch, it is idempotent, and every
:class:`RaftwalJournal` calls it. The simplest use::

    from pysyncobj import SyncObj
    from pysyncobj.batteries import ReplDict
    from raftwal.integrations.pysyncobj import syncobj_options

    d = ReplDict()
    node = SyncObj("127.0.0.1:4321", ["127.0.0.1:4322", "127.0.0.1:4323"],
                   consumers=[d], **syncobj_options("data/node1"))

Durability
----------
Raft needs an entry, term or vote on stable storage before any message
that depends on it leaves the node, and before the leader counts its own
copy towards a commit.

* ``group_commit=False``: every ``add`` and ``setCurrentTerm`` returns once
  fsynced (one fsync per entry: simple, slow).
* ``group_commit=True`` (what :func:`syncobj_options` sets up): ``add``
  appends at once and the fsyncs are shared; a barrier waits for every
  pending append (1) before any message is sent, through the transport
  class :func:`durable_transport` returns (PySyncObj's ``transportClass``
  parameter), and (2) whenever PySyncObj records a new commit index, i.e.
  before the leader applies an entry or answers a client. Term and vote
  are synced before ``setCurrentTerm`` returns.

PySyncObj's log compaction (``deleteEntriesTo``) becomes a raftwal snapshot
marker (the state machine itself stays in PySyncObj's ``fullDumpFile``);
given the dump file's path, the journal fsyncs that file before it lets
the log go, because PySyncObj writes it without fsync.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pysyncobj  # type: ignore[import-untyped, import-not-found, unused-ignore]
import pysyncobj.syncobj  # type: ignore[import-untyped, import-not-found, unused-ignore]
from pysyncobj.journal import Journal  # type: ignore[import-untyped, import-not-found, unused-ignore]

from .._fsutil import fsync_dir, fsync_file
from ..durable import DurableStorage
from ..messages import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from ..restart import open as open_storage

__all__ = [
    "JournalFailedError",
    "RaftwalJournal",
    "durable_transport",
    "install",
    "journal_commands",
    "syncobj_options",
]

METADATA = b"pysyncobj journal (raftwal)"
SNAPSHOT_MARKER = b"pysyncobj: the state machine is in the SyncObj fullDumpFile"
VOTES_FILE = "votes.json"
COMMAND_REGULAR = 0
"""PySyncObj's ``_COMMAND_TYPE.REGULAR``: the first byte of a replicated call."""

LogItem = tuple[bytes, int, int]
"""A PySyncObj journal entry: (command, index, term)."""

_install_lock = threading.Lock()
_patched: Callable[..., Any] | None = None


def install() -> None:
    """Let ``SyncObjConf(journalFile=...)`` take a Journal instance. Idempotent."""
    global _patched
    with _install_lock:
        mod = pysyncobj.syncobj
        if _patched is not None and mod.createJournal is _patched:
            return
        original = mod.createJournal

        def create_journal(journalFile: Any = None) -> Any:
            if isinstance(journalFile, Journal):
                return journalFile
            return original(journalFile)

        mod.createJournal = create_journal
        _patched = create_journal


class JournalFailedError(RuntimeError):
    """A write or fsync of the journal failed earlier; nothing more is accepted."""


class _VoteNames:
    """PySyncObj votes for a node id (a string such as ``"host:port"``);
    raft's HardState holds a uint64. The vote is stored as a 64-bit hash of
    the id, and the id itself in a small side file written (and synced)
    once per node before the first HardState that names it."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._by_code: dict[int, str] = {}
        with contextlib.suppress(FileNotFoundError):
            raw = json.loads(path.read_text())
            self._by_code = {int(k): str(v) for k, v in raw.items()}

    @staticmethod
    def code_of(name: str) -> int:
        digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") or 1

    def code(self, name: Any) -> int:
        if name is None:
            return 0
        if not isinstance(name, str):
            raise TypeError(f"node ids must be strings to be persisted, not {type(name).__name__}")
        c = self.code_of(name)
        known = self._by_code.get(c)
        if known is None:
            self._by_code[c] = name
            self._store()
        elif known != name:  # pragma: no cover - a 64-bit collision
            raise RuntimeError(f"node ids {known!r} and {name!r} hash alike")
        return c

    def name(self, code: int) -> str | None:
        if code == 0:
            return None
        # A vote whose name was lost still counts as a vote (PySyncObj only
        # asks whether it voted in this term).
        return self._by_code.get(code, f"unknown-node-{code:016x}")

    def _store(self) -> None:
        tmp = self._path.with_name(self._path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump({str(k): v for k, v in sorted(self._by_code.items())}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)
        fsync_dir(self._path.parent)

    def copy_to(self, directory: Path) -> None:
        if self._by_code:
            _VoteNames(directory / VOTES_FILE)._replace(self._by_code)

    def _replace(self, by_code: dict[int, str]) -> None:
        self._by_code = dict(by_code)
        self._store()


class RaftwalJournal(Journal):  # type: ignore[misc]
    """PySyncObj's journal interface over :func:`raftwal.open`.

    ``data_dir`` holds ``wal/``, ``snap/`` and ``votes.json``; ``dump_file``
    is PySyncObj's ``fullDumpFile`` (synced before compaction when given).
    Use it from PySyncObj's tick thread, as PySyncObj does."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        group_commit: bool = False,
        dump_file: str | os.PathLike[str] | None = None,
        segment_size: int = 16_000_000,
        max_wals: int = 5,
    ) -> None:
        install()
        self._dir = Path(data_dir)
        self._group = group_commit
        self._dump = Path(dump_file) if dump_file is not None else None
        self._opts: dict[str, Any] = {
            "snapshot_count": 1 << 62,  # PySyncObj decides when to compact
            "catch_up_entries": 0,
            "max_snapshots": 2,
            "max_wals": max_wals,
            "segment_size": segment_size,
        }
        self._lock = threading.Lock()
        self._pending: list[Future[None]] = []
        self._error: BaseException | None = None
        self._finish_rebase()
        self._dir.mkdir(parents=True, exist_ok=True)
        self._names = _VoteNames(self._dir / VOTES_FILE)
        self._st: DurableStorage = open_storage(self._dir, metadata=METADATA, **self._opts)
        hs, _ = self._st.initial_state()
        first, last = self._st.first_index(), self._st.last_index()
        entries = self._st.entries(first, last + 1) if last >= first else []
        self._log: list[LogItem] = [(e.data, e.index, e.term) for e in entries]
        self._term, self._vote, self._commit = hs.term, hs.vote, hs.commit
        self._written = (hs.term, hs.vote, hs.commit)
        self._base = self._st.snapshot().metadata.index  # the newest snapshot marker
        self._cleared = False
        self._closed = False
        self.recovery = self._st.recovery

    # --- durability --------------------------------------------------------------

    def barrier(self) -> None:
        """Return once every append made so far is on stable storage. After
        a failed write or fsync it raises, now and on every later call: the
        node stops taking part (fail-stop) until it is restarted from what
        is on disk."""
        self._raise_if_failed()
        with self._lock:
            pending, self._pending = self._pending, []
        try:
            for fut in pending:
                fut.result()
        except BaseException as exc:
            self._error = exc
            raise

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise JournalFailedError(
                f"raftwal journal {self._dir}: an earlier write or fsync failed "
                f"({type(self._error).__name__}: {self._error}); restart the node"
            ) from self._error

    def _last(self) -> int:
        return self._log[-1][1] if self._log else self._base

    def _committed(self) -> int:
        """PySyncObj's commit index as far as this log reaches: a HardState
        never commits past the last entry (raftwal refuses one that does)
        nor below the newest snapshot marker."""
        return max(min(self._commit, self._last()), self._base)

    def _state(self) -> tuple[int, int, int]:
        return (self._term, self._vote, self._committed())

    def _hard_state(self) -> HardState:
        """The HardState to write with the next save: empty when unchanged.
        Its commit never goes below the newest snapshot marker, which
        recovery only uses when a HardState commits it (entries compacted
        into PySyncObj's dump were applied, hence committed)."""
        now = self._state()
        if now == self._written:
            return HardState()
        self._written = now
        return HardState(*now)

    @contextlib.contextmanager
    def _fail_stop(self) -> Iterator[None]:
        """Any failure inside leaves the journal failed for good."""
        try:
            yield
        except BaseException as exc:
            self._error = exc
            raise

    def _append(self, entries: Sequence[Entry]) -> None:
        with self._fail_stop():
            if self._group:
                fut = self._st.save_async(self._hard_state(), entries)
                with self._lock:
                    self._pending.append(fut)
            else:
                self._st.save(self._hard_state(), entries)

    def _save_now(self, entries: Sequence[Entry] = (), snapshot: Snapshot | None = None) -> None:
        self.barrier()  # keeps memory and disk in the order of the calls
        hs = self._hard_state()
        if entries or snapshot is not None or not hs.is_empty():
            with self._fail_stop():
                self._st.save(hs, entries, snapshot)

    def _sync_dump(self) -> None:
        if self._dump is not None and self._dump.exists():
            fsync_file(self._dump)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the raftwal journal is closed")
        self._raise_if_failed()

    # --- PySyncObj's Journal interface -----------------------------------------------

    def add(self, command: bytes, idx: int, term: int) -> None:
        self._check_open()
        data = bytes(command)
        entry = Entry(term=term, index=idx, data=data)
        if self._cleared or not self._log:
            self._start_log_at(entry)
            self._cleared = False
            self._log = [(data, idx, term)]
            return
        if idx != self._log[-1][1] + 1:
            raise ValueError(f"journal: append at {idx} after {self._log[-1][1]}")
        self._append([entry])
        self._log.append((data, idx, term))

    def clear(self) -> None:
        """Forget every entry. Nothing is written until the next ``add``,
        which says where the new log starts (PySyncObj always adds at once)."""
        self._check_open()
        self.barrier()
        self._log = []
        self._cleared = True

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        """Drop the entries from position ``entryFrom`` on (not from an index)."""
        self._check_open()
        if entryFrom >= len(self._log):
            return
        if entryFrom <= 0:
            self.clear()
            return
        data, idx, term = self._log[entryFrom - 1]
        del self._log[entryFrom:]  # first: the HardState's commit follows the log
        # Writing the last kept entry again ends the log there on replay.
        self._append([Entry(term=term, index=idx, data=data)])

    def deleteEntriesTo(self, entryTo: int) -> None:
        """Drop the first ``entryTo`` entries (PySyncObj compacted them into its dump)."""
        self._check_open()
        if entryTo <= 0:
            return
        if entryTo >= len(self._log):
            self.clear()
            return
        base = self._log[entryTo][1] - 1
        self._sync_dump()
        self._base = base
        self._save_now()  # the HardState committing `base` precedes the marker
        with self._fail_stop():
            self._st.create_snapshot(base, ConfState(), SNAPSHOT_MARKER)
        self._log = self._log[entryTo:]

    def __getitem__(self, item: Any) -> Any:
        return self._log[item]

    def __len__(self) -> int:
        return len(self._log)

    def _destroy(self) -> None:
        self.close()

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:
        self._check_open()
        self._commit = raftCommitIndex
        # The leader applies and answers clients right after this: its own
        # appends must be durable first. Written lazily otherwise.
        self.barrier()

    def getRaftCommitIndex(self) -> int:
        return max(self._committed(), 1)

    def setCurrentTerm(self, term: int, votedForNodeId: Any) -> None:
        self._check_open()
        self._term, self._vote = term, self._names.code(votedForNodeId)
        self._save_now()  # a changed term or vote is synced before returning

    def getCurrentTerm(self) -> int:
        return self._term

    def getVotedForNodeId(self) -> str | None:
        return self._names.name(self._vote)

    def onOneSecondTimer(self) -> None:
        if not self._closed and self._state() != self._written:
            self._save_now()  # a commit-only HardState: buffered, no fsync of its own

    def flush(self) -> None:
        """Make everything appended so far durable."""
        self._check_open()
        self.barrier()
        self._st.wal.sync()

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._error is None:
                self._save_now()
        finally:
            self._closed = True
            self._st.close()

    # --- where a new log starts --------------------------------------------------------

    def _start_log_at(self, entry: Entry) -> None:
        """Persist a log that now starts with ``entry`` (after ``clear``, or
        on the very first append): a snapshot marker just before it when the
        log moves forward, the entry alone when it starts right after the
        current snapshot, and a rebuilt directory when it moves back."""
        snap_index = self._st.snapshot().metadata.index
        base = entry.index - 1
        if base == snap_index:
            self._append([entry])  # replaces whatever followed the snapshot
        elif base > snap_index:
            self._sync_dump()  # a snapshot installed from the leader
            self._base = base
            self._save_now([entry], self._marker(base, entry.term))
        else:
            with self._fail_stop():
                self._rebase(entry)

    @staticmethod
    def _marker(index: int, term: int) -> Snapshot:
        meta = SnapshotMetadata(conf_state=ConfState(), index=index, term=term)
        return Snapshot(data=SNAPSHOT_MARKER, metadata=meta)

    def _rebase(self, entry: Entry) -> None:
        """A log starting before the current snapshot cannot be written into
        this WAL: build a new data directory beside it and swap it in."""
        self.barrier()
        self._sync_dump()
        tmp = self._dir.with_name(self._dir.name + ".rebase")
        old = self._dir.with_name(self._dir.name + ".old")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        self._base = entry.index - 1
        hs = HardState(self._term, self._vote, max(min(self._commit, entry.index), self._base))
        snap = self._marker(self._base, entry.term) if self._base > 0 else None
        with open_storage(tmp, metadata=METADATA, **self._opts) as st:
            st.save(hs, [entry], snap)
        self._names.copy_to(tmp)
        fsync_dir(tmp)
        self._st.close()
        os.rename(self._dir, old)
        os.rename(tmp, self._dir)
        fsync_dir(self._dir.parent)
        shutil.rmtree(old, ignore_errors=True)
        self._st = open_storage(self._dir, metadata=METADATA, **self._opts)
        self._written = (hs.term, hs.vote, hs.commit)

    def _finish_rebase(self) -> None:
        tmp = self._dir.with_name(self._dir.name + ".rebase")
        old = self._dir.with_name(self._dir.name + ".old")
        if not self._dir.exists() and tmp.exists() and old.exists():
            os.rename(tmp, self._dir)  # crashed between the two renames
            fsync_dir(self._dir.parent)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)

    def __repr__(self) -> str:
        first = self._log[0][1] if self._log else None
        last = self._log[-1][1] if self._log else None
        return (
            f"<RaftwalJournal {str(self._dir)!r} entries={first}..{last} term={self._term} "
            f"group_commit={self._group}>"
        )


def durable_transport(journal: RaftwalJournal) -> type[Any]:
    """A PySyncObj ``TCPTransport`` whose ``send`` first waits until the
    journal's appends are durable: nothing leaves the node that depends on
    an entry a crash could still take back. Pass it as ``transportClass``."""
    from pysyncobj.transport import TCPTransport  # type: ignore[import-untyped, import-not-found, unused-ignore]

    class RaftwalTCPTransport(TCPTransport):  # type: ignore[misc]
        def send(self, node: Any, message: Any) -> Any:
            journal.barrier()
            return super().send(node, message)

    return RaftwalTCPTransport


def syncobj_options(
    data_dir: str | os.PathLike[str], *, group_commit: bool = True, **conf: Any
) -> dict[str, Any]:
    """Keyword arguments for ``SyncObj(self_node, other_nodes, ...)``: a
    ``SyncObjConf`` whose journal is a :class:`RaftwalJournal` in
    ``data_dir/journal`` and whose ``fullDumpFile`` is ``data_dir/dump.bin``
    (``conf`` adds other SyncObjConf settings), plus, with group commit, the
    durable transport class."""
    from pysyncobj import SyncObjConf

    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    dump = root / "dump.bin"
    journal = RaftwalJournal(root / "journal", group_commit=group_commit, dump_file=dump)
    opts: dict[str, Any] = {
        "conf": SyncObjConf(journalFile=journal, fullDumpFile=str(dump), **conf)
    }
    if group_commit:
        opts["transportClass"] = durable_transport(journal)
    return opts


def journal_commands(data_dir: str | os.PathLike[str]) -> list[tuple[int, Any]]:
    """(index, decoded call) of every replicated call in a stopped node's
    raftwal journal (``data_dir`` as given to :func:`syncobj_options`):
    ``(method id, args)`` or ``(method id, args, kwargs)``."""
    from pysyncobj import pickle as sopickle  # type: ignore[import-untyped, import-not-found, unused-ignore]

    j = RaftwalJournal(Path(data_dir) / "journal")
    try:
        out = []
        for data, idx, _ in j[:]:
            if data[:1] == bytes([COMMAND_REGULAR]):
                out.append((idx, sopickle.loads(data[1:])))
        return out
    finally:
        j.close()

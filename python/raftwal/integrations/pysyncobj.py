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
    from raftwal.pysyncobj_journal import syncobj_options

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

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from queue import Empty, Queue
from typing import IO, Any

import pysyncobj  # type: ignore[import-untyped, import-not-found, unused-ignore]
import pysyncobj.syncobj  # type: ignore[import-untyped, import-not-found, unused-ignore]
from pysyncobj.journal import Journal  # type: ignore[import-untyped, import-not-found, unused-ignore]

from .durable import DurableStorage
from .durable import open as open_storage
from .messages import ConfState, Entry, HardState, Snapshot, SnapshotMetadata

__all__ = [
    "Cluster",
    "JournalFailedError",
    "RaftwalJournal",
    "durable_transport",
    "install",
    "journal_commands",
    "run_node",
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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


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
        _fsync_dir(self._path.parent)

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
        self._log: list[LogItem] = [(e.data or b"", e.index, e.term) for e in entries]
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
            _fsync_file(self._dump)

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
        _fsync_dir(tmp)
        self._st.close()
        os.rename(self._dir, old)
        os.rename(tmp, self._dir)
        _fsync_dir(self._dir.parent)
        shutil.rmtree(old, ignore_errors=True)
        self._st = open_storage(self._dir, metadata=METADATA, **self._opts)
        self._written = (hs.term, hs.vote, hs.commit)

    def _finish_rebase(self) -> None:
        tmp = self._dir.with_name(self._dir.name + ".rebase")
        old = self._dir.with_name(self._dir.name + ".old")
        if not self._dir.exists() and tmp.exists() and old.exists():
            os.rename(tmp, self._dir)  # crashed between the two renames
            _fsync_dir(self._dir.parent)
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


# --- a node process and a local cluster (the demo and the tests) --------------------------

JOURNALS = {
    "raftwal": "raftwal journal, group commit: fdatasync before any raft message leaves "
    "the node and before the leader applies",
    "raftwal-sync": "raftwal journal, one fdatasync per appended entry",
    "file": "PySyncObj FileJournal: mmap'd file, never fsynced (survives a process kill, "
    "not a power cut); term and vote renamed into place without fsync",
}


def _conf_kwargs(compaction_entries: int) -> dict[str, Any]:
    return {
        "appendEntriesPeriod": 0.01,
        "autoTickPeriod": 0.01,
        "raftMinTimeout": 0.4,
        "raftMaxTimeout": 0.8,
        "connectionTimeout": 2.0,
        "connectionRetryTime": 0.25,
        "logCompactionMinEntries": compaction_entries,
        "logCompactionMinTime": 1 << 30,
    }


def run_node(argv: Sequence[str]) -> int:
    """One PySyncObj node holding a replicated dict, driven by JSON lines on
    stdin (``status``, ``set``, ``get_all``, ``load``, ``stop``); each reply
    is one JSON line on stdout. Exits when stdin closes."""
    from pysyncobj import SyncObj, SyncObjConf, SyncObjException
    from pysyncobj.batteries import ReplDict  # type: ignore[import-untyped, import-not-found, unused-ignore]

    p = argparse.ArgumentParser(prog="raftwal _pysyncobj-node")
    p.add_argument("--self", dest="self_addr", required=True)
    p.add_argument("--peers", default="")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--journal", choices=sorted(JOURNALS), default="raftwal")
    p.add_argument("--compaction-entries", type=int, default=1 << 30)
    a = p.parse_args(list(argv))
    root = Path(a.data_dir)
    root.mkdir(parents=True, exist_ok=True)
    conf = _conf_kwargs(a.compaction_entries)
    opts: dict[str, Any]
    if a.journal == "file":
        opts = {
            "conf": SyncObjConf(
                journalFile=str(root / "journal.bin"), fullDumpFile=str(root / "dump.bin"), **conf
            )
        }
    else:
        opts = syncobj_options(root, group_commit=a.journal == "raftwal", **conf)
    peers = [x for x in a.peers.split(",") if x]
    d = ReplDict()
    node = SyncObj(a.self_addr, peers, consumers=[d], **opts)
    node.waitBinded()
    out = sys.stdout

    def reply(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg) + "\n")
        out.flush()

    reply({"event": "ready", "self": a.self_addr, "journal": a.journal})
    for line in sys.stdin:
        req = json.loads(line)
        op, rid = req.get("op"), req.get("id")
        res: dict[str, Any] = {"id": rid}
        try:
            if op == "status":
                st = node.getStatus()
                res.update(
                    self=a.self_addr,
                    leader=None if st["leader"] is None else str(st["leader"]),
                    is_leader=st["state"] == 2,
                    term=st["raft_term"],
                    commit=st["commit_idx"],
                    applied=st["last_applied"],
                    log_len=st["log_len"],
                    size=len(d.rawData()),
                )
            elif op == "set":
                d.set(req["key"], req["value"], sync=True, timeout=req.get("wait", 5.0))
                res["ok"] = True
            elif op == "get_all":
                res["data"] = d.rawData().copy()
            elif op == "load":
                res.update(_load(d, req["seconds"], req["in_flight"], req["size"], req["prefix"]))
            elif op == "stop":
                node.destroy_synchronous()
                reply(res | {"ok": True})
                return 0
            else:
                res["error"] = f"unknown op {op!r}"
        except SyncObjException as exc:
            res.update(ok=False, error=f"SyncObjException: {exc.errorCode}")
        reply(res)
    node.destroy_synchronous()
    return 0


def _load(d: Any, seconds: float, in_flight: int, size: int, prefix: str) -> dict[str, Any]:
    """Keep ``in_flight`` writes outstanding for ``seconds``; count the acknowledged."""
    slots = threading.Semaphore(in_flight)
    lock = threading.Lock()
    counts = {"acked": 0, "failed": 0}

    def done(_res: Any, err: Any) -> None:
        with lock:
            counts["acked" if err == 0 else "failed"] += 1
        slots.release()

    value = "x" * size
    sent = 0
    t0 = time.monotonic()
    deadline = t0 + seconds
    while time.monotonic() < deadline:
        if not slots.acquire(timeout=0.1):
            continue
        d.set(f"{prefix}{sent}", value, callback=done)
        sent += 1
    acked_in_time = counts["acked"]
    elapsed = time.monotonic() - t0
    for _ in range(in_flight):  # drain, bounded
        if not slots.acquire(timeout=5.0):
            break
    return {"sent": sent, "acked": acked_in_time, "failed": counts["failed"], "seconds": elapsed}


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports on 127.0.0.1 that were free a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class NodeError(RuntimeError):
    pass


class _Node:
    def __init__(
        self, addr: str, peers: list[str], data_dir: Path, journal: str, compaction: int
    ) -> None:
        self.addr, self.peers, self.data_dir, self.journal = addr, peers, data_dir, journal
        self.compaction = compaction
        self.proc: subprocess.Popen[str] | None = None
        self._replies: Queue[dict[str, Any] | None] = Queue()
        self._next = 0
        self._log: IO[str] | None = None

    def start(self, timeout: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.data_dir / "node.log", "a")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "raftwal",
                "_pysyncobj-node",
                "--self",
                self.addr,
                "--peers",
                ",".join(self.peers),
                "--data-dir",
                str(self.data_dir),
                "--journal",
                self.journal,
                "--compaction-entries",
                str(self.compaction),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self._replies = Queue()
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        first = self._get(timeout)
        if first.get("event") != "ready":
            raise NodeError(f"{self.addr}: unexpected first line {first}")

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with contextlib.suppress(ValueError):
                self._replies.put(json.loads(line))
        self._replies.put(None)

    def _get(self, timeout: float) -> dict[str, Any]:
        try:
            msg = self._replies.get(timeout=timeout)
        except Empty:
            raise NodeError(f"{self.addr}: no answer within {timeout:.0f} s") from None
        if msg is None:
            raise NodeError(f"{self.addr}: the node exited ({self.log_tail()})")
        return msg

    def call(self, op: str, timeout: float = 15.0, **kw: Any) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None or self.proc.stdin is None:
            raise NodeError(f"{self.addr}: not running")
        self._next += 1
        rid = self._next
        self.proc.stdin.write(json.dumps({"op": op, "id": rid, **kw}) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            msg = self._get(max(0.01, deadline - time.monotonic()))
            if msg.get("id") == rid:
                return msg

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to flush or close anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self._reap()

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive:
            try:
                self.call("stop", timeout=timeout)
            except NodeError:
                pass
            assert self.proc is not None
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            for f in (self.proc.stdin, self.proc.stdout):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = (self.data_dir / "node.log").read_text(errors="replace")
        except OSError:
            return "no log"
        return "\n".join(text.splitlines()[-lines:])


class Cluster:
    """``n`` PySyncObj node processes on 127.0.0.1, each in ``root/nN``.
    Every wait is bounded; leaving the ``with`` block kills what still runs."""

    def __init__(
        self, root: Path, n: int = 3, journal: str = "raftwal", compaction: int = 1 << 30
    ) -> None:
        """``compaction``: PySyncObj's ``logCompactionMinEntries`` (by default
        it never compacts)."""
        ports = free_ports(n)
        addrs = [f"127.0.0.1:{p}" for p in ports]
        self.nodes = [
            _Node(a, [b for b in addrs if b != a], root / f"n{i + 1}", journal, compaction)
            for i, a in enumerate(addrs)
        ]

    def __enter__(self) -> Cluster:
        try:
            for node in self.nodes:
                node.start()
        except BaseException:
            self.kill_all()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_all()

    def kill_all(self) -> None:
        for node in self.nodes:
            node.kill()

    def stop_all(self) -> None:
        for node in self.nodes:
            node.stop()

    def node(self, addr: str) -> _Node:
        return next(n for n in self.nodes if n.addr == addr)

    def wait_leader(self, timeout: float = 20.0, exclude: str | None = None) -> _Node:
        """The leader every running node agrees on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [n for n in self.nodes if n.alive]
            try:
                st = [n.call("status", timeout=5) for n in live]
            except NodeError:
                time.sleep(0.1)
                continue
            leaders = {s["leader"] for s in st}
            if len(leaders) == 1 and None not in leaders:
                (leader,) = leaders
                if leader != exclude and any(s["is_leader"] and s["self"] == leader for s in st):
                    return self.node(leader)
            time.sleep(0.1)
        raise NodeError(f"no leader agreed on within {timeout:.0f} s")

    def write(self, via: _Node, key: str, value: str, timeout: float = 3.0) -> bool:
        """One replicated write through ``via``; True once acknowledged."""
        try:
            reply = via.call("set", timeout=timeout + 10, key=key, value=value, wait=timeout)
            return bool(reply.get("ok"))
        except NodeError:
            return False

    def wait_converged(self, want: dict[str, str], timeout: float = 30.0) -> list[dict[str, str]]:
        """Wait until every running node holds ``want`` and all hold the same
        data; returns each node's data."""
        deadline = time.monotonic() + timeout
        datas: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            datas = [n.call("get_all", timeout=10)["data"] for n in self.nodes if n.alive]
            has_all = all(all(d.get(k) == v for k, v in want.items()) for d in datas)
            if has_all and all(d == datas[0] for d in datas):
                return datas
            time.sleep(0.1)
        missing = [sum(1 for k in want if d.get(k) != want[k]) for d in datas]
        raise NodeError(f"not converged within {timeout:.0f} s; missing per node: {missing}")


@contextlib.contextmanager
def _workdir(data_dir: str | None, keep: bool) -> Iterator[Path]:
    import tempfile

    own = data_dir is None
    path = Path(tempfile.mkdtemp(prefix="raftwal-cluster-")) if own else Path(str(data_dir))
    try:
        yield path
    finally:
        if own and not keep:
            shutil.rmtree(path, ignore_errors=True)


def kill_leader_scenario(root: Path, n: int = 3, writes: int = 50) -> dict[str, Any]:
    """Commit writes, SIGKILL the leader, write more through the survivors,
    read the killed node's raftwal journal, restart it and wait until every
    node holds every acknowledged write. Returns the facts."""
    report: dict[str, Any] = {"nodes": n, "journal": "raftwal"}
    acked: dict[str, str] = {}
    with Cluster(root, n) as c:
        t0 = time.monotonic()
        leader = c.wait_leader()
        report["first_election_seconds"] = round(time.monotonic() - t0, 3)
        for i in range(writes):
            k, v = f"before-{i}", f"value-{i}"
            if c.write(leader, k, v):
                acked[k] = v
        before = dict(acked)
        report["acked_before_kill"] = len(before)
        leader.kill()
        report["killed"] = leader.addr
        t0 = time.monotonic()
        survivors = [x for x in c.nodes if x.alive]
        failed = 0
        deadline = time.monotonic() + 30
        first_ack: float | None = None
        for i in range(writes):
            k, v = f"after-{i}", f"value-{i}"
            while time.monotonic() < deadline:
                via = survivors[(i + failed) % len(survivors)]
                if c.write(via, k, v, timeout=2.0):
                    acked[k] = v
                    first_ack = first_ack or time.monotonic()
                    break
                failed += 1
        new_leader = c.wait_leader(exclude=leader.addr)
        report["new_leader"] = new_leader.addr
        report["failover_seconds"] = round((first_ack or time.monotonic()) - t0, 3)
        report["failed_attempts_during_failover"] = failed
        report["acked_after_kill"] = len(acked) - len(before)
        # What the killed leader had made durable, read straight from its journal.
        found = {
            args[0]
            for _, cmd in journal_commands(leader.data_dir)
            if isinstance(cmd, tuple) and len(cmd) >= 2
            for args in [cmd[1]]
            if args
        }
        report["killed_leader_journal_missing"] = sorted(set(before) - found)
        t0 = time.monotonic()
        leader.start()
        datas = c.wait_converged(acked)
        report["catch_up_seconds"] = round(time.monotonic() - t0, 3)
        report["acked"] = len(acked)
        report["lost"] = sorted(k for k in acked if any(d.get(k) != acked[k] for d in datas))
        report["node_sizes"] = [len(d) for d in datas]
        c.stop_all()
    return report


def throughput(
    root: Path, journal: str, seconds: float, in_flight: int = 64, size: int = 100, n: int = 3
) -> dict[str, Any]:
    """Acknowledged writes per second through the leader of a fresh cluster."""
    with Cluster(root, n, journal) as c:
        leader = c.wait_leader()
        r = leader.call(
            "load",
            timeout=seconds + 30,
            seconds=seconds,
            in_flight=in_flight,
            size=size,
            prefix="w",
        )
        c.stop_all()
    rate = r["acked"] / r["seconds"] if r["seconds"] > 0 else 0.0
    return {
        "journal": journal,
        "how_it_syncs": JOURNALS[journal],
        "writes_per_second": round(rate, 1),
        "acked": r["acked"],
        "seconds": round(r["seconds"], 3),
        "in_flight": in_flight,
        "value_bytes": size,
    }


def cluster_demo(
    n: int,
    *,
    seconds: float,
    data_dir: str | None,
    keep: bool,
    compare: bool = True,
    in_flight: int = 256,
) -> dict[str, Any]:
    """``raftwal demo --cluster N``: the kill-the-leader scenario, then a
    throughput comparison with PySyncObj's own FileJournal."""
    with _workdir(data_dir, keep) as root:
        report = kill_leader_scenario(root / "scenario", n)
        report["data_dir"] = str(root)
        report["pysyncobj_version"] = getattr(pysyncobj, "__version__", None) or _version()
        if compare:
            report["throughput"] = [
                throughput(root / f"bench-{j}", j, seconds, in_flight, n=n)
                for j in ("raftwal", "file")
            ]
    return report


def _version() -> str:
    try:
        from pysyncobj.version import VERSION  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:  # pragma: no cover
        return "unknown"
    return str(VERSION)


def render_demo(r: dict[str, Any]) -> str:
    lines = [
        f"raftwal demo --cluster {r['nodes']}: PySyncObj {r['pysyncobj_version']} nodes on "
        f"127.0.0.1, each keeping its raft log, term and vote in raftwal (group commit)",
        f"  leader elected in {r['first_election_seconds']:.1f} s; "
        f"{r['acked_before_kill']} writes acknowledged",
        f"  leader {r['killed']} killed with SIGKILL; first write acknowledged again after "
        f"{r['failover_seconds']:.1f} s (new leader {r['new_leader']}); "
        f"{r['acked_after_kill']} more writes acknowledged "
        f"({r['failed_attempts_during_failover']} attempt(s) timed out during the election)",
        "  the killed leader's raftwal journal, read after the kill: "
        + (
            "every write it acknowledged is there"
            if not r["killed_leader_journal_missing"]
            else f"MISSING {len(r['killed_leader_journal_missing'])} acknowledged writes"
        ),
        f"  restarted: caught up in {r['catch_up_seconds']:.1f} s; nodes hold "
        f"{r['node_sizes']} keys",
        f"  acknowledged writes lost: {len(r['lost'])}"
        + ("  (none)" if not r["lost"] else f"  {r['lost'][:5]}"),
    ]
    if r.get("throughput"):
        t0 = r["throughput"][0]
        lines.append(
            f"throughput, {r['nodes']} nodes, {t0['in_flight']} writes in flight through the "
            f"leader, {t0['seconds']:.1f} s each:"
        )
        for t in r["throughput"]:
            lines.append(
                f"  {t['journal']:<8} {t['writes_per_second']:>9,.0f} writes/s  {t['how_it_syncs']}"
            )
    return "\n".join(lines)

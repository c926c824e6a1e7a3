"""What ``raftwal bench`` compares: raftwal, a pure-Python encoder of
etcd's WAL format, raw write+fdatasync, sqlite3, py-lmdb and etcd's Go WAL,
each behind one :class:`System` interface."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import _native
from ..messages import Entry, HardState
from ..wal import DEFAULT_SEGMENT_SIZE, WAL

__all__ = [
    "ASYNC_BATCH",
    "ASYNC_BATCH_IN_FLIGHT",
    "DECODE_ENTRY_SIZE",
    "ENTRY_SIZE",
    "IN_FLIGHT",
    "EtcdSystem",
    "LmdbSystem",
    "PurePythonSystem",
    "PyWal",
    "RaftwalSystem",
    "RawSystem",
    "SqliteSystem",
    "System",
    "check_pure_python_encoder",
    "crc32c_py",
    "make_entries",
]

ENTRY_SIZE = 100
"""Payload bytes of an entry in the save scenarios and the sweep."""
DECODE_ENTRY_SIZE = 4096
IN_FLIGHT = 1024
"""save_async calls outstanding in the 1-entry save_async scenario."""
ASYNC_BATCH = 100
"""Entries per save_async call in the batched save_async scenario."""
ASYNC_BATCH_IN_FLIGHT = 64
"""save_async calls outstanding in the batched save_async scenario."""


# ------------------------------------------------------------- pure-Python encoder


def _uvarint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c_py(data: bytes, crc: int = 0) -> int:
    """CRC-32C in pure Python (byte-at-a-time table), continuing from ``crc``."""
    c = crc ^ 0xFFFFFFFF
    table = _TABLE
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


_METADATA, _ENTRY, _STATE, _CRC, _SNAPSHOT = 1, 2, 3, 4, 5


class PyWal:
    """A minimal WAL writer in pure Python that writes etcd's format
    (frames, padding, ``walpb.Record``, CRC32C chaining, segment header and
    cut), so raftwal and etcd can read what it writes. No locks, no repair,
    no reading: it exists to measure what the format costs when encoded in
    Python. ``crc`` is the CRC function: :func:`raftwal.crc32c` (native) or
    :func:`crc32c_py` (pure Python). Each :meth:`save` is one ``os.write``
    and one ``os.fdatasync``, as etcd syncs a Save."""

    def __init__(
        self,
        dirpath: str | os.PathLike[str],
        metadata: bytes | None = None,
        *,
        crc: Callable[[bytes, int], int] = _native.crc32c,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> None:
        self._dir = Path(dirpath)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._crc_fn = crc
        self._crc = 0
        self._segment_size = segment_size
        self._seq = -1
        self._fd = -1
        self._off = 0
        buf = bytearray()
        self._start_segment(0, buf)
        self._frame(buf, _METADATA, metadata)
        self._frame(buf, _SNAPSHOT, b"\x08\x00\x10\x00")  # walpb.Snapshot{}
        self._write_sync(buf)

    def _start_segment(self, index: int, buf: bytearray) -> None:
        self._seq += 1
        path = self._dir / f"{self._seq:016x}-{index:016x}.wal"
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        with contextlib.suppress(OSError):
            os.posix_fallocate(self._fd, 0, self._segment_size)
        self._off = 0
        self._frame(buf, _CRC, None)
        dfd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _frame(self, buf: bytearray, rtype: int, data: bytes | None) -> None:
        if data is not None:
            self._crc = self._crc_fn(data, self._crc)
            rec = b"\x08%c\x10%s\x1a%s%s" % (rtype, _uvarint(self._crc), _uvarint(len(data)), data)
        else:
            rec = b"\x08%c\x10%s" % (rtype, _uvarint(self._crc))
        n = len(rec)
        pad = -n % 8
        buf += (n | (0x80 | pad) << 56 if pad else n).to_bytes(8, "little")
        buf += rec
        if pad:
            buf += bytes(pad)

    def encode(self, hard_state: HardState, entries: Sequence[Entry]) -> bytearray:
        """The frames of one Save (entries, then the HardState), advancing the CRC."""
        buf = bytearray()
        frame = self._frame
        for e in entries:
            data = e.data if e.HasField("data") else None
            ent = b"\x08%s\x10%s\x18%s" % (
                _uvarint(int(e.type)),
                _uvarint(e.term),
                _uvarint(e.index),
            )
            if data is not None:
                ent += b"\x22%s%s" % (_uvarint(len(data)), data)
            frame(buf, _ENTRY, ent)
        hs = hard_state
        frame(
            buf,
            _STATE,
            b"\x08%s\x10%s\x18%s" % (_uvarint(hs.term), _uvarint(hs.vote), _uvarint(hs.commit)),
        )
        return buf

    def _write_sync(self, buf: bytearray) -> None:
        view = memoryview(buf)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._off += len(buf)
        os.fdatasync(self._fd)

    def save(self, hard_state: HardState, entries: Sequence[Entry]) -> None:
        """Append the entries and the HardState, then fdatasync."""
        self._write_sync(self.encode(hard_state, entries))
        if self._off >= self._segment_size and entries:
            self._cut(entries[-1].index + 1)

    def _cut(self, next_index: int) -> None:
        os.ftruncate(self._fd, self._off)
        os.fdatasync(self._fd)
        os.close(self._fd)
        buf = bytearray()
        self._start_segment(next_index, buf)
        self._write_sync(buf)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> PyWal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------ the systems


def make_entries(start: int, count: int, data: bytes) -> list[Entry]:
    return [Entry(term=1, index=i, data=data) for i in range(start, start + count)]


class System:
    """A way to save batches of 100-byte entries durably."""

    key = ""
    label = ""

    def slice(self, path: Path, batch: int, seconds: float) -> tuple[int, float]:
        """Save batches into a fresh store at ``path`` for about ``seconds``;
        return (entries saved durably, seconds taken)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the system holds across slices."""


def _timed_loop(save: Callable[[int], None], batch: int, seconds: float) -> tuple[int, float]:
    """Call ``save(first_index)`` for consecutive batches until ``seconds`` passed."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        save(done + 1)
        done += batch
        now = time.perf_counter()
        if now >= deadline:
            return done, now - start


def _timed_saves(
    save: Callable[[HardState, list[Entry]], None], batch: int, seconds: float
) -> tuple[int, float]:
    """``_timed_loop`` over ``save(HardState, entries)`` of a WAL-like store."""
    data = bytes(ENTRY_SIZE)
    return _timed_loop(
        lambda i: save(HardState(1, 1, i + batch - 1), make_entries(i, batch, data)), batch, seconds
    )


class RaftwalSystem(System):
    key = "raftwal"
    label = "raftwal WAL.save"

    def slice(self, path: Path, batch: int, seconds: float) -> tuple[int, float]:
        with WAL.create(path, None) as w:
            return _timed_saves(w.save, batch, seconds)


class RaftwalDatasSystem(System):
    """WAL.save_entries: the same records, given as the entries' data alone
    (an engine holding its commands as bytes builds no Entry objects)."""

    key = "raftwal_datas"
    label = "raftwal WAL.save_entries (data only)"

    def slice(self, path: Path, batch: int, seconds: float) -> tuple[int, float]:
        data = bytes(ENTRY_SIZE)
        with WAL.create(path, None) as w:
            return _timed_loop(
                lambda i: w.save_entries(HardState(1, 1, i + batch - 1), 1, i, [data] * batch),
                batch,
                seconds,
            )


class PurePythonSystem(System):
    key = "purepy"

    def __init__(self, crc: str) -> None:
        self._crc: Callable[[bytes, int], int] = crc32c_py if crc == "table" else _native.crc32c
        self.label = f"pure-Python encoder ({'table' if crc == 'table' else 'native'} CRC)"

    def slice(self, path: Path, batch: int, seconds: float) -> tuple[int, float]:
        with PyWal(path, None, crc=self._crc) as w:
            return _timed_saves(w.save, batch, seconds)


class RawSystem(System):
    """os.pwrite of as many bytes as the WAL appends per save, then
    os.fdatasync. ``zeroed``: on a file already filled with zeros and synced
    (no block allocation or extent conversion left to do): the disk's limit.
    Otherwise on a fresh file preallocated with fallocate, as etcd
    preallocates segments (its extents start unwritten, so a sync after
    writing a new block also commits the conversion)."""

    def __init__(self, workdir: Path, zeroed: bool, size: int) -> None:
        self._zeroed = zeroed
        self._size = size
        if zeroed:
            self.key, self.label = "raw", "write+fdatasync, zeroed file (disk limit)"
            self._path = workdir / "raw.bin"
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                chunk = bytes(1 << 20)
                for _ in range(size >> 20):
                    os.write(fd, chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            self.key, self.label = "rawfalloc", "write+fdatasync, fallocated file"

    @staticmethod
    def bytes_per_save(batch: int) -> int:
        """What the WAL appends for one save of ``batch`` entries."""
        sizer = PyWal.__new__(PyWal)
        sizer._crc, sizer._crc_fn = 0xFFFFFFFF, _native.crc32c
        hs = HardState(1, 1, 1000 + batch)
        return len(sizer.encode(hs, make_entries(1000, batch, bytes(ENTRY_SIZE))))

    def slice(self, path: Path, batch: int, seconds: float) -> tuple[int, float]:
        return self._slice(path, self.bytes_per_save(batch), batch, seconds)

    def slice_bytes(self, path: Path, nbytes: int, seconds: float) -> tuple[int, float]:
        """pwrite+fdatasync of ``nbytes`` per sync for about ``seconds``;
        return (syncs, seconds taken)."""
        return self._slice(path, nbytes, 1, seconds)

    def _slice(self, path: Path, nbytes: int, batch: int, seconds: float) -> tuple[int, float]:
        if not 0 < nbytes <= self._size:
            raise ValueError(f"{nbytes} bytes per sync do not fit in {self._size}")
        buf = os.urandom(nbytes)
        if self._zeroed:
            fd = os.open(self._path, os.O_RDWR)
        else:
            path.mkdir()
            fd = os.open(path / "raw.bin", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.posix_fallocate(fd, 0, self._size)
            os.fsync(fd)
        try:
            off = 0

            def save(_: int) -> None:
                nonlocal off
                if off + len(buf) > self._size:
                    off = 0
                os.pwrite(fd, buf, off)
                off += len(buf)
                os.fdatasync(fd)

            return _timed_loop(save, batch, seconds)
        finally:
            os.close(fd)


class SqliteSystem(System):
    key = "sqlite"
    label = "sqlite3 WAL mode, synchronous=FULL"

    def slice(self, path: Path, batch: int, seconds: float) -> tuple[int, float]:
        path.mkdir()
        con = sqlite3.connect(path / "log.db", isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("CREATE TABLE log (idx INTEGER PRIMARY KEY, term INTEGER, data BLOB)")
            con.execute(
                "CREATE TABLE hard_state (id INTEGER PRIMARY KEY, term INTEGER, vote INTEGER,"
                " commit_index INTEGER)"
            )
            data = bytes(ENTRY_SIZE)
            execute, executemany = con.execute, con.executemany

            def save(i: int) -> None:
                ents = make_entries(i, batch, data)
                hs = HardState(1, 1, i + batch - 1)
                execute("BEGIN")
                executemany(
                    "INSERT INTO log VALUES (?, ?, ?)", [(e.index, e.term, e.data) for e in ents]
                )
                execute(
                    "INSERT OR REPLACE INTO hard_state VALUES (0, ?, ?, ?)",
                    (hs.term, hs.vote, hs.commit),
                )
                execute("COMMIT")

            return _timed_loop(save, batch, seconds)
        finally:
            con.close()


class LmdbSystem(System):
    key = "lmdb"
    label = "py-lmdb, default sync"

    def __init__(self, lmdb: Any) -> None:
        self._lmdb = lmdb

    def slice(self, path: Path, batch: int, seconds: float) -> tuple[int, float]:
        env = self._lmdb.open(str(path), map_size=1 << 30, max_dbs=2)
        try:
            log = env.open_db(b"log")
            state = env.open_db(b"state")
            data = bytes(ENTRY_SIZE)

            def save(i: int) -> None:
                ents = make_entries(i, batch, data)
                hs = HardState(1, 1, i + batch - 1)
                with env.begin(write=True) as txn:
                    txn.cursor(log).putmulti(
                        [(e.index.to_bytes(8, "big"), b"%d:%s" % (e.term, e.data)) for e in ents],
                        append=True,
                    )
                    txn.put(b"hs", b"%d:%d:%d" % (hs.term, hs.vote, hs.commit), db=state)

            return _timed_loop(save, batch, seconds)
        finally:
            env.close()


class EtcdSystem(System):
    """etcd 3.4's Go ``wal.Save`` loop (tools/etcdref ``bench-save``): only
    its Save loop is timed. Its slices are counted, not timed, so the count
    is calibrated from its previous rate at the same batch size."""

    key = "etcd"
    label = "etcd Go wal.Save"

    def __init__(self, ref: Any) -> None:
        self._ref = ref
        self._rate: dict[int, float] = {}

    def _save(self, path: Path, entries: int, batch: int) -> tuple[int, float]:
        path.mkdir()
        out = self._ref.bench_save(path, entries, ENTRY_SIZE, batch, timeout=120)
        if out.get("error"):
            raise RuntimeError(f"etcdref bench-save: {out['error']}")
        return int(out["entries"]), float(out["seconds"])

    def slice(self, path: Path, batch: int, seconds: float) -> tuple[int, float]:
        if batch not in self._rate:
            n, s = self._save(path.with_name(path.name + "-calib"), batch * 10, batch)
            self._rate[batch] = n / max(s, 1e-6)
        saves = int(self._rate[batch] * seconds / batch)
        saves = min(max(saves, 5), 1_000_000)
        n, s = self._save(path, saves * batch, batch)
        self._rate[batch] = n / max(s, 1e-6)
        return n, s


def check_pure_python_encoder(workdir: Path) -> None:
    """Write a small log (two segments) with :class:`PyWal` and read it back
    with raftwal, so the pure-Python baseline is known to write the format."""
    path = workdir / "pywal-check"
    expect = []
    with PyWal(path, b"meta", segment_size=4096) as w:
        for start in range(1, 200, 20):
            ents = [
                Entry(term=2, index=i, data=None if i % 7 == 0 else bytes([i % 256]) * (i % 300))
                for i in range(start, start + 20)
            ]
            expect += ents
            w.save(HardState(2, 1, start), ents)
    with WAL.open_for_read(path) as r:
        metadata, hs, got = r.read_all()
    if (metadata, hs, got) != (b"meta", HardState(2, 1, 181), expect):
        raise RuntimeError("the pure-Python encoder does not write what raftwal reads")
    if len(list(path.glob("*.wal"))) < 2:
        raise RuntimeError("the pure-Python encoder did not cut a segment")
    shutil.rmtree(path)

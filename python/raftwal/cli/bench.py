"""Side-by-side speed comparison: raftwal against etcd's Go WAL, sqlite3,
py-lmdb, the disk's own write+fdatasync limit and a pure-Python encoder.

Machines are noisy (a virtual disk's fsync latency can swing tenfold within
a second), so every result here is a *ratio* of two systems measured in the
same run, interleaved: each measurement is split into rounds, every round
runs each system for a short, bounded slice (in a shuffled order). A system's figure is its median over rounds; a ratio is the
median of the per-round ratios, reported with their lowest and highest.

    raftwal bench --quick                   # ~15 s, prints the table
    python3 benches/compare.py              # full run: BENCHMARKS.md + chart

This module imports only the standard library and raftwal. The optional
baselines and the chart import their packages when used: ``lmdb``
(py-lmdb) and ``matplotlib`` (``pip install 'raftwal[bench]'``). The etcd Go
baseline needs a raftwal source checkout: ``benches/compare.py`` provides it
(``tests/etcdref.py`` builds ``tools/etcdref`` with ``go`` and Debian's
``golang-etcd-server-dev``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib
import importlib.util
import json
import os
import platform
import random
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _native
from ..messages import Entry, HardState
from ..restart import open as open_storage
from ..wal import DEFAULT_SEGMENT_SIZE, WAL, verify
from .diskcheck import filesystem_of

__all__ = ["PyWal", "add_arguments", "main", "run"]

ENTRY_SIZE = 100
"""Payload bytes of an entry in the save scenarios and the sweep."""
DECODE_ENTRY_SIZE = 4096
IN_FLIGHT = 1024

# ----------------------------------------------------------------------------- results


@dataclass
class Series:
    """One system's samples at one setting: work done and seconds, one pair
    per round. Its figure is the median over rounds, which a stall of the
    disk during one slice does not move."""

    work: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def add(self, work: float, seconds: float) -> None:
        self.work.append(work)
        self.seconds.append(max(seconds, 1e-9))

    def round_rates(self) -> list[float]:
        return [w / s for w, s in zip(self.work, self.seconds, strict=True)]

    @property
    def rate(self) -> float:
        """Median work per second over rounds."""
        return statistics.median(self.round_rates()) if self.seconds else float("nan")

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


@dataclass
class Row:
    """One line of the result table."""

    scenario: str
    measure: str
    unit: str  # "/s", "GB/s" or "s"
    value: float  # raftwal
    baseline: float | None
    ratio: float | None = None
    spread: tuple[float, float] | None = None
    target: str = ""
    met: bool | None = None


def _ratio_row(
    scenario: str,
    measure: str,
    unit: str,
    ours: Series,
    theirs: Series | None,
    target: float | None = None,
    lower_is_better: bool = False,
) -> Row:
    """A row comparing ``ours`` with ``theirs``: median rates, or median
    seconds when ``unit == "s"``. The ratio is the median of the per-round
    ratios (each round measures both systems within a second or so of each
    other); ``target`` is the least (``lower_is_better``: the most)
    acceptable ratio."""
    seconds = unit == "s"
    row = Row(scenario, measure, unit, ours.median_seconds if seconds else ours.rate, None)
    if target is not None:
        row.target = f"{'<=' if lower_is_better else '>='} {target:g}x"
    if theirs is None or not theirs.seconds:
        return row
    row.baseline = theirs.median_seconds if seconds else theirs.rate
    if seconds:
        per_round = [a / b for a, b in zip(ours.seconds, theirs.seconds, strict=False)]
    else:
        per_round = [a / b for a, b in zip(ours.round_rates(), theirs.round_rates(), strict=False)]
    row.ratio = statistics.median(per_round)
    if len(per_round) > 1:
        row.spread = (min(per_round), max(per_round))
    if target is not None:
        row.met = row.ratio <= target if lower_is_better else row.ratio >= target
    return row


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
            data = e.data
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


def _entries(start: int, count: int, data: bytes) -> list[Entry]:
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
        lambda i: save(HardState(1, 1, i + batch - 1), _entries(i, batch, data)), batch, seconds
    )


class RaftwalSystem(System):
    key = "raftwal"
    label = "raftwal WAL.save"

    def slice(self, path: Path, batch: int, seconds: float) -> tuple[int, float]:
        with WAL.create(path, None) as w:
            return _timed_saves(w.save, batch, seconds)


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
        return len(sizer.encode(hs, _entries(1000, batch, bytes(ENTRY_SIZE))))

    def slice(self, path: Path, batch: int, seconds: float) -> tuple[int, float]:
        buf = os.urandom(self.bytes_per_save(batch))
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
                ents = _entries(i, batch, data)
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
                ents = _entries(i, batch, data)
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


# -------------------------------------------------------------------- etcd (Go)


EtcdReference = Callable[[], tuple[Any | None, str]]
"""Gives (a client of etcd's Go WAL, or None; why not). The client is
``tests/etcdref.py``'s ``EtcdRef`` in a raftwal source checkout, which
builds ``tools/etcdref``; ``benches/compare.py`` passes it to :func:`run`."""


def _no_etcd_reference() -> tuple[Any | None, str]:
    return None, "needs a raftwal source checkout: run benches/compare.py there"


# ------------------------------------------------------------------ the machine


def _cmd_output(*cmd: str) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    out = proc.stdout.strip() or proc.stderr.strip()
    return out.splitlines()[0] if proc.returncode == 0 and out else None


def machine_info(bench_dir: Path, lmdb: Any | None) -> list[tuple[str, str]]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    fstype, source, options = filesystem_of(bench_dir)
    repo = Path(__file__).resolve().parents[3]  # a source checkout: python/raftwal/cli/
    commit = None
    if (repo / ".git").exists():
        commit = _cmd_output("git", "-C", str(repo), "describe", "--always", "--dirty")
    return [
        ("CPU", cpu),
        ("cores", str(os.cpu_count())),
        ("load average at the end (1, 5, 15 min)", ", ".join(f"{x:.2f}" for x in os.getloadavg())),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("bench directory filesystem", f"{fstype} on {source} ({options})"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("Rust", _cmd_output("rustc", "--version") or "unknown (rustc not on PATH)"),
        ("Go", _cmd_output("go", "version") or "not found"),
        ("SQLite", sqlite3.sqlite_version),
        ("LMDB", ".".join(map(str, lmdb.version())) if lmdb is not None else "not installed"),
        ("raftwal", commit or "installed package"),
    ]


# --------------------------------------------------------------- the scenarios


@dataclass
class Settings:
    rounds: int
    seconds: float  # per sweep slice
    read_rounds: int  # recovery and decoding, whose slices are whole reads
    raw_file_mib: int  # of the zeroed file (rewritten from its start each slice)
    async_seconds: float
    batches: list[int]
    recovery_entries: int
    decode_mib: int
    crc_seconds: float


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def sweep(systems: list[System], settings: Settings, workdir: Path) -> dict[str, dict[int, Series]]:
    """Entries/s of every system at every batch size, interleaved by round
    (in a shuffled order, so that no system always follows the same one)."""
    out: dict[str, dict[int, Series]] = {s.key: {} for s in systems}
    shuffle = random.Random(20240601).shuffle  # the same orders every run
    for batch in settings.batches:
        for r in range(settings.rounds):
            order = list(systems)
            shuffle(order)
            rates = []
            for s in order:
                path = workdir / f"sweep-{batch}-{r}-{s.key}"
                n, secs = s.slice(path, batch, settings.seconds)
                out[s.key].setdefault(batch, Series()).add(n, secs)
                rates.append(f"{s.key} {_fmt_rate(n / secs)}")
            _say(f"  batch {batch:>4}, round {r + 1}/{settings.rounds}: " + ", ".join(rates))
            for p in workdir.glob(f"sweep-{batch}-{r}-*"):
                shutil.rmtree(p, ignore_errors=True)
    return out


def _async_slice(path: Path, seconds: float) -> tuple[int, float]:
    """save_async of one entry per call with IN_FLIGHT futures outstanding;
    the clock stops when every future has resolved."""
    data = bytes(ENTRY_SIZE)
    with WAL.create(path, None) as w:
        pending: deque[Future[None]] = deque()
        i = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            i += 1
            pending.append(w.save_async(HardState(1, 1, i), [Entry(term=1, index=i, data=data)]))
            if len(pending) >= IN_FLIGHT:
                pending.popleft().result()
        for f in pending:
            f.result()
        took = time.perf_counter() - start
        if w.durable_index != i:
            raise RuntimeError(f"save_async: durable_index {w.durable_index} != {i}")
        return i, took


def async_scenario(settings: Settings, workdir: Path) -> tuple[Series, Series]:
    sync_sys = RaftwalSystem()
    a, s = Series(), Series()
    for r in range(settings.rounds):
        steps: list[tuple[Series, Callable[[Path], tuple[int, float]]]] = [
            (a, lambda p: _async_slice(p, settings.async_seconds)),
            (s, lambda p: sync_sys.slice(p, 1, settings.async_seconds)),
        ]
        if r % 2:
            steps.reverse()
        for i, (series, fn) in enumerate(steps):
            series.add(*fn(workdir / f"async-{r}-{i}"))
        _say(
            f"  round {r + 1}/{settings.rounds}: save_async {_fmt_rate(a.work[-1] / a.seconds[-1])}"
            f"/s, save {_fmt_rate(s.work[-1] / s.seconds[-1])}/s"
        )
        for p in workdir.glob(f"async-{r}-*"):
            shutil.rmtree(p, ignore_errors=True)
    return a, s


def _write_log(wal_dir: Path, count: int, size: int, per_save: int) -> None:
    data = os.urandom(size)
    with WAL.create(wal_dir, None) as w:
        for start in range(1, count + 1, per_save):
            n = min(per_save, count + 1 - start)
            w.save(HardState(1, 1, start + n - 1), _entries(start, n, data))


def recovery_scenario(
    settings: Settings, workdir: Path, ref: Any | None
) -> tuple[Series, Series | None]:
    n = settings.recovery_entries
    data_dir = workdir / "recovery"
    _write_log(data_dir / "wal", n, ENTRY_SIZE, 10_000)
    (data_dir / "snap").mkdir(mode=0o700)
    ours, theirs = Series(), Series() if ref is not None else None

    def raftwal_open() -> None:
        gc.collect()
        start = time.perf_counter()
        s = open_storage(data_dir)
        last = s.entries(n, n + 1)
        took = time.perf_counter() - start
        got = s.last_index()
        s.close()
        del s
        if got != n or len(last) != 1:
            raise RuntimeError(f"recovery: raftwal.open found last index {got}, expected {n}")
        ours.add(1, took)

    def etcd_read() -> None:
        assert ref is not None and theirs is not None
        out = ref.bench_read(data_dir / "wal", timeout=300)
        if out.get("error") or out["entries"] != n:
            raise RuntimeError(f"etcdref bench-read: {out}")
        theirs.add(1, float(out["seconds"]))

    steps = [raftwal_open, etcd_read] if ref is not None else [raftwal_open]
    for r in range(settings.read_rounds):
        for step in steps if r % 2 else steps[::-1]:
            step()
        line = f"  round {r + 1}/{settings.read_rounds}: raftwal.open {ours.seconds[-1]:.3f} s"
        if theirs is not None:
            line += f", etcd OpenForRead+ReadAll {theirs.seconds[-1]:.3f} s"
        _say(line)
    shutil.rmtree(data_dir, ignore_errors=True)
    return ours, theirs


def crc_scenario(settings: Settings) -> tuple[Series, Series]:
    buf = os.urandom(1 << 20)
    ours, zl = Series(), Series()

    def loop(fn: Callable[[bytes], int], series: Series) -> None:
        done = 0
        start = time.perf_counter()
        deadline = start + settings.crc_seconds
        while True:
            for _ in range(16):
                fn(buf)
            done += 16 << 20
            now = time.perf_counter()
            if now >= deadline:
                break
        series.add(done / 1e9, now - start)

    for r in range(settings.read_rounds):
        pair = [(_native.crc32c, ours), (zlib.crc32, zl)]
        for fn, series in pair if r % 2 == 0 else pair[::-1]:
            loop(fn, series)
    return ours, zl


def decode_scenario(
    settings: Settings, workdir: Path, ref: Any | None
) -> tuple[Series, Series | None, Series]:
    """GB/s of entry data: raftwal.verify (the Rust decoder alone: every
    record decoded, entries parsed, the CRC chain checked, no Python
    objects), WAL.open_for_read + read_all (the same, plus a Python Entry
    per entry) and etcd's OpenForRead + ReadAll."""
    count = (settings.decode_mib << 20) // DECODE_ENTRY_SIZE
    wal_dir = workdir / "decode"
    _write_log(wal_dir, count, DECODE_ENTRY_SIZE, 256)
    gb = count * DECODE_ENTRY_SIZE / 1e9
    ours, theirs = Series(), Series() if ref is not None else None
    in_rust = Series()

    def verify_rust() -> float:
        start = time.perf_counter()
        verify(wal_dir)
        return time.perf_counter() - start

    def read_raftwal() -> float:
        gc.collect()
        start = time.perf_counter()
        with WAL.open_for_read(wal_dir) as w:
            ents = w.read_all()[2]
        took = time.perf_counter() - start
        if len(ents) != count:
            raise RuntimeError(f"decode: read {len(ents)} entries, expected {count}")
        return took

    def read_etcd() -> float:
        assert ref is not None
        out = ref.bench_read(wal_dir, timeout=300)
        if out.get("error") or out["entries"] != count:
            raise RuntimeError(f"etcdref bench-read: {out}")
        return float(out["seconds"])

    read_raftwal()  # warm the page cache
    for _ in range(settings.read_rounds):
        in_rust.add(gb, verify_rust())
        ours.add(gb, read_raftwal())
        if theirs is not None:
            theirs.add(gb, read_etcd())
    shutil.rmtree(wal_dir, ignore_errors=True)
    return ours, theirs, in_rust


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


# ------------------------------------------------------------------- reporting


def build_rows(
    settings: Settings,
    swept: dict[str, dict[int, Series]],
    purepy_label: str,
    async_s: Series,
    sync_s: Series,
    recovery: tuple[Series, Series | None],
    crc: tuple[Series, Series],
    decode: tuple[Series, Series | None, Series],
) -> list[Row]:
    """The result table: the issue's scenarios, each against its baselines."""

    def base(key: str, batch: int) -> Series | None:
        return swept.get(key, {}).get(batch)

    rows: list[Row] = []
    if 1 in settings.batches:
        ours = swept["raftwal"][1]
        sc = "durable save, 1 x 100 B per save"
        rows += [
            _ratio_row(
                sc,
                "saves/s vs write+fdatasync, zeroed file (disk limit)",
                "/s",
                ours,
                base("raw", 1),
                0.9,
            ),
            _ratio_row(sc, "saves/s vs etcd Go Save loop", "/s", ours, base("etcd", 1), 1.2),
            _ratio_row(
                sc, "saves/s vs write+fdatasync, fallocated file", "/s", ours, base("rawfalloc", 1)
            ),
            _ratio_row(sc, f"saves/s vs {purepy_label}", "/s", ours, base("purepy", 1)),
        ]
    if 100 in settings.batches:
        ours = swept["raftwal"][100]
        sc = "durable save, 100 x 100 B per save"
        rows += [
            _ratio_row(sc, "entries/s vs etcd Go Save loop", "/s", ours, base("etcd", 100), 2),
            _ratio_row(
                sc,
                "entries/s vs sqlite3 WAL mode, synchronous=FULL",
                "/s",
                ours,
                base("sqlite", 100),
                5,
            ),
            _ratio_row(sc, "entries/s vs py-lmdb, default sync", "/s", ours, base("lmdb", 100)),
            _ratio_row(
                sc,
                "entries/s vs write+fdatasync, zeroed file (disk limit)",
                "/s",
                ours,
                base("raw", 100),
            ),
            _ratio_row(
                sc,
                "entries/s vs write+fdatasync, fallocated file",
                "/s",
                ours,
                base("rawfalloc", 100),
            ),
            _ratio_row(sc, f"entries/s vs {purepy_label}", "/s", ours, base("purepy", 100)),
        ]
    rows.append(
        _ratio_row(
            f"save_async, 1 entry per call, {IN_FLIGHT} in flight",
            "durable entries/s vs synchronous 1-entry saves",
            "/s",
            async_s,
            sync_s,
            10,
        )
    )
    rows.append(
        _ratio_row(
            f"recovery: raftwal.open of {settings.recovery_entries:,} x 100 B until entries() serves",
            "seconds vs etcd Go OpenForRead+ReadAll of the same directory",
            "s",
            recovery[0],
            recovery[1],
            0.5,
            lower_is_better=True,
        )
    )
    crc_row = _ratio_row(
        "CRC32C over 1 MiB buffers",
        "GB/s of raftwal.crc32c vs zlib.crc32 (CRC-32, for scale)",
        "GB/s",
        *crc,
    )
    crc_row.target, crc_row.met = ">= 10 GB/s", crc_row.value >= 10
    py_objects, etcd_read, in_rust = decode
    dec_row = _ratio_row(
        f"decode + verify in Rust, {settings.decode_mib} MiB of 4 KiB entries",
        "entry GB/s of raftwal.verify (records decoded, entries parsed, CRC chain "
        "checked; no Python objects) vs etcd Go OpenForRead+ReadAll",
        "GB/s",
        in_rust,
        etcd_read,
    )
    dec_row.target, dec_row.met = ">= 2 GB/s", dec_row.value >= 2
    py_row = _ratio_row(
        f"decode into Python entries, {settings.decode_mib} MiB of 4 KiB entries",
        "entry GB/s of WAL.open_for_read + read_all (a bytes object per entry) "
        "vs etcd Go OpenForRead+ReadAll",
        "GB/s",
        py_objects,
        etcd_read,
    )
    return [*rows, crc_row, dec_row, py_row]


def _fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "skipped"
    if unit == "s":
        return f"{v:.3f} s"
    if unit == "GB/s":
        return f"{v:.2f} GB/s"
    return f"{_fmt_rate(v)}/s"


def table_markdown(rows: list[Row]) -> str:
    head = "| scenario | measure | raftwal | baseline | ratio | target | met? |"
    lines = [head, "|---|---|---:|---:|---:|---|:-:|"]
    for r in rows:
        base = _fmt_value(r.baseline, r.unit)
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}x"
        if r.spread is not None:
            ratio += f" ({r.spread[0]:.2f} to {r.spread[1]:.2f})"
        met = {True: "yes", False: "**no**", None: "—"}[r.met]
        lines.append(
            f"| {r.scenario} | {r.measure} | {_fmt_value(r.value, r.unit)} | {base} | {ratio} "
            f"| {r.target or '—'} | {met} |"
        )
    return "\n".join(lines)


def sweep_markdown(results: dict[str, dict[int, Series]], systems: list[System]) -> str:
    batches = sorted({b for per in results.values() for b in per})
    lines = [
        "| entries/s at batch size | " + " | ".join(str(b) for b in batches) + " |",
        "|---|" + "---:|" * len(batches),
    ]
    for s in systems:
        cells = [_fmt_rate(results[s.key][b].rate) if b in results[s.key] else "—" for b in batches]
        lines.append(f"| {s.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw_chart(
    results: dict[str, dict[int, Series]], systems: list[System], png: Path, title: str
) -> None:
    figure_mod = importlib.import_module("matplotlib.figure")
    fig = figure_mod.Figure(figsize=(9, 5.5), dpi=120, layout="constrained")
    ax = fig.subplots()
    styles = {
        "raftwal": ("#d62728", "o", 3.0),
        "etcd": ("#1f77b4", "s", 1.8),
        "sqlite": ("#2ca02c", "^", 1.8),
        "lmdb": ("#9467bd", "v", 1.8),
        "raw": ("#555555", "D", 1.5),
        "rawfalloc": ("#999999", "d", 1.5),
        "purepy": ("#ff7f0e", "P", 1.8),
    }
    for s in systems:
        per = results[s.key]
        xs = sorted(per)
        color, marker, width = styles.get(s.key, ("#000000", "x", 1.5))
        ax.plot(
            xs,
            [per[b].rate for b in xs],
            label=s.label,
            color=color,
            marker=marker,
            linewidth=width,
            linestyle={"raw": "--", "rawfalloc": ":"}.get(s.key, "-"),
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    batches = sorted({b for per in results.values() for b in per})
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.tick_params(axis="x", which="minor", bottom=False)
    ax.set_xlabel("entries of 100 B per durable save (batch size)")
    ax.set_ylabel("durable entries per second (log scale)")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", axis="y", alpha=0.15)
    ax.legend(loc="upper left", fontsize=9)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)


# ------------------------------------------------------------------------ the CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the bench options to ``parser`` (``raftwal bench``, benches/compare.py)."""
    parser.add_argument("--quick", action="store_true", help="small sizes (about 15 s in all)")
    parser.add_argument(
        "--dir",
        help="directory to benchmark in (a temporary subdirectory is made and removed); "
        "default: the current directory, so the disk under test is the one you are on",
    )
    parser.add_argument("--out", help="write the Markdown report here (e.g. BENCHMARKS.md)")
    parser.add_argument(
        "--png", help="write the throughput chart here (default: throughput.png beside --out)"
    )
    parser.add_argument("--json", dest="json_out", help="also write the raw samples as JSON here")
    parser.add_argument("--no-etcd", action="store_true", help="skip etcd's Go WAL")
    parser.add_argument("--no-sqlite", action="store_true", help="skip sqlite3")
    parser.add_argument("--no-lmdb", action="store_true", help="skip py-lmdb")
    parser.add_argument("--no-chart", action="store_true", help="do not draw the PNG chart")
    parser.add_argument(
        "--pure-crc",
        choices=("native", "table"),
        default="native",
        help="CRC of the pure-Python encoder: raftwal.crc32c (native, default) or a "
        "byte-at-a-time table in Python",
    )
    parser.add_argument("--rounds", type=int, help="rounds per measurement (default 9; quick 3)")
    parser.add_argument(
        "--seconds", type=float, help="seconds per system per round in the sweep (0.25; quick 0.1)"
    )
    parser.add_argument(
        "--batches",
        help="comma-separated batch sizes of the sweep (default 1,10,100,1000)",
    )
    parser.add_argument(
        "--recovery-entries",
        type=int,
        help="entries in the recovery log (default 1,000,000; quick 100,000)",
    )
    parser.add_argument(
        "--decode-mib", type=int, help="MiB of 4 KiB entries to decode (default 128; quick 16)"
    )
    parser.add_argument(
        "--fail-on-miss", action="store_true", help="exit 1 when a target is missed"
    )


def _settings(args: argparse.Namespace) -> Settings:
    quick = bool(args.quick)
    rounds = args.rounds or (3 if quick else 9)
    seconds = args.seconds or (0.1 if quick else 0.25)
    batches = [int(b) for b in (args.batches or "1,10,100,1000").split(",") if b.strip()]
    if rounds < 1 or seconds <= 0 or not batches or min(batches) < 1:
        raise ValueError("--rounds, --seconds and --batches must be positive")
    return Settings(
        rounds=rounds,
        seconds=seconds,
        read_rounds=min(rounds, 5),
        raw_file_mib=16 if quick or seconds < 0.1 else 256,
        async_seconds=seconds * 2.5,
        batches=batches,
        recovery_entries=args.recovery_entries or (100_000 if quick else 1_000_000),
        decode_mib=args.decode_mib or (16 if quick else 128),
        crc_seconds=min(seconds, 0.25),
    )


def _command_line(args: argparse.Namespace) -> str:
    given = getattr(args, "command_line", None)
    if isinstance(given, str):
        return given
    argv = list(sys.argv)
    if argv and os.path.abspath(argv[0]) == os.path.abspath(__file__):
        return shlex.join(["python3", "-m", "raftwal.cli.bench", *argv[1:]])
    if argv and argv[0].endswith(".py"):
        prog = argv[0]
        with contextlib.suppress(ValueError):
            prog = os.path.relpath(prog)
        return shlex.join(["python3", prog, *argv[1:]])
    return shlex.join([os.path.basename(argv[0]) if argv else "raftwal", *argv[1:]])


@contextlib.contextmanager
def _workdir(parent: str | None) -> Iterator[Path]:
    base = Path(parent) if parent else Path.cwd()
    if not parent and not os.access(base, os.W_OK):
        base = Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=".raftwal-bench-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run(args: argparse.Namespace, etcd_reference: EtcdReference | None = None) -> int:
    """Run the comparison described by ``args`` (see :func:`add_arguments`);
    print the table; write the report, chart and JSON when asked. Returns
    the exit status. ``etcd_reference`` provides the etcd Go baseline
    (skipped, and named in the report, without it)."""
    try:
        settings = _settings(args)
    except ValueError as e:
        print(f"raftwal bench: {e}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    lmdb: Any | None = None
    skipped: list[str] = []
    if not args.no_lmdb:
        try:
            lmdb = importlib.import_module("lmdb")
        except ImportError:
            skipped.append("py-lmdb (not installed: pip install lmdb, or 'raftwal[bench]')")
    ref: Any | None = None
    if not args.no_etcd:
        ref, why = (etcd_reference or _no_etcd_reference)()
        if ref is None:
            skipped.append(f"etcd Go ({why})")
    png = (
        Path(args.png)
        if args.png
        else (Path(args.out).with_name("throughput.png") if args.out else None)
    )
    if png is not None and not args.no_chart:
        try:
            importlib.import_module("matplotlib")
        except ImportError:
            skipped.append(
                "chart (matplotlib not installed: pip install matplotlib, or 'raftwal[bench]')"
            )
            png = None
    if args.no_chart:
        png = None
    for s in skipped:
        _say(f"raftwal bench: skipping {s}")

    with _workdir(args.dir) as workdir:
        fstype = filesystem_of(workdir)[0]
        if fstype in ("tmpfs", "ramfs"):
            _say(f"raftwal bench: WARNING {workdir} is on {fstype}: fsync is a no-op there")
        check_pure_python_encoder(workdir)
        systems: list[System] = [RaftwalSystem()]
        if ref is not None:
            systems.append(EtcdSystem(ref))
        if not args.no_sqlite:
            systems.append(SqliteSystem())
        if lmdb is not None:
            systems.append(LmdbSystem(lmdb))
        systems += [
            RawSystem(workdir, True, settings.raw_file_mib << 20),
            RawSystem(workdir, False, 512 << 20),
            PurePythonSystem(args.pure_crc),
        ]
        _say(f"raftwal bench in {workdir} ({fstype}): throughput vs batch size")
        swept = sweep(systems, settings, workdir)
        _say("save_async, 1 entry per call, 1024 in flight, vs save")
        async_s, sync_s = async_scenario(settings, workdir)
        _say(f"recovery of {settings.recovery_entries:,} entries")
        recovery = recovery_scenario(settings, workdir, ref)
        _say("CRC32C")
        crc = crc_scenario(settings)
        _say(f"decode + verify {settings.decode_mib} MiB of 4 KiB entries")
        decode = decode_scenario(settings, workdir, ref)
        machine = machine_info(workdir, lmdb)

    purepy_label = next(s.label for s in systems if s.key == "purepy")
    rows = build_rows(settings, swept, purepy_label, async_s, sync_s, recovery, crc, decode)

    table = table_markdown(rows)
    elapsed = time.perf_counter() - started
    print(table)
    print()
    print(sweep_markdown(swept, systems))
    print(
        f"\n({elapsed:.0f} s; ratio: median of per-round ratios, in brackets the lowest and highest)"
    )

    info = dict(machine)
    if png is not None:
        draw_chart(
            swept,
            systems,
            png,
            "Durable save throughput vs batch size (100 B entries)\n"
            f"{info['CPU']}, {info['cores']} cores, "
            f"{info['bench directory filesystem'].split(' (')[0]}",
        )
        _say(f"chart: {png}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        chart = None if png is None else os.path.relpath(png, out.parent)
        out.write_text(
            report_markdown(
                table,
                swept,
                systems,
                machine,
                settings,
                _command_line(args),
                chart,
                skipped,
                elapsed,
                args.pure_crc,
            )
        )
        _say(f"report: {out}")
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps(
                {
                    "rows": [r.__dict__ for r in rows],
                    "sweep": {
                        k: {str(b): s.__dict__ for b, s in per.items()} for k, per in swept.items()
                    },
                    "machine": info,
                    "settings": settings.__dict__,
                },
                indent=2,
            )
        )
    if args.fail_on_miss and any(r.met is False for r in rows):
        return 1
    return 0


def report_markdown(
    table: str,
    swept: dict[str, dict[int, Series]],
    systems: list[System],
    machine: list[tuple[str, str]],
    settings: Settings,
    command: str,
    chart: str | None,
    skipped: list[str],
    elapsed: float,
    pure_crc: str,
) -> str:
    today = datetime.date.today().isoformat()
    parts = [
        "# raftwal benchmarks",
        "",
        table,
        "",
        f"Generated by `{command}` on {today} ({elapsed:.0f} s). Every ratio compares two "
        "systems measured side by side in this one run: each measurement is split into "
        f"{settings.rounds} rounds, each round runs every system for a bounded slice "
        f"({settings.seconds:g} s in the sweep) in a shuffled order, and a system's figure is "
        "the median over rounds. A ratio is the median of the per-round ratios; in brackets, "
        "the lowest and highest per-round ratio, a measure of the machine's noise.",
        "",
        "## Throughput vs batch size",
        "",
    ]
    if chart is not None:
        parts += [f"![durable entries/s vs batch size]({chart})", ""]
    parts += [
        sweep_markdown(swept, systems),
        "",
        "Every save is durable before the next starts: raftwal `WAL.save` with "
        "`HardState(1, 1, last)` (so it syncs, as etcd must); etcd 3.4's Go `wal.Save` with the "
        "same HardState (tools/etcdref `bench-save`, only its Save loop timed); sqlite3 in WAL "
        "mode with `synchronous=FULL`, one transaction per batch (entries table plus a "
        "HardState row); py-lmdb with its default sync, one write transaction per batch; "
        "`os.pwrite` + `os.fdatasync` of as many bytes as the WAL appends per save, on a "
        "preallocated file already filled with zeros (the disk's limit: no block allocation "
        "or extent conversion) and on a fresh file preallocated with `fallocate`, as etcd "
        "preallocates segments (its extents start unwritten, so a sync after writing a new "
        "block also commits their conversion; raftwal writes zeros ahead of its writer "
        "instead); and a pure-Python encoder of the same WAL format (frames, "
        "padding, `walpb.Record`, CRC32C chaining, one `os.write` + `os.fdatasync` per batch) "
        + (
            "whose CRC is `raftwal.crc32c` (native), so it measures Python's framing and "
            "encoding cost, not a Python CRC."
            if pure_crc == "native"
            else "whose CRC is a byte-at-a-time table in pure Python."
        )
        + " Every system starts each slice on a fresh store; the Python systems build their "
        "`raftwal.Entry` objects inside the timed loop, as a caller would.",
        "",
        "Recovery times `raftwal.open(data_dir)` (the full restart: snapshot lookup, WAL "
        "replay, MemoryStorage) until `entries()` serves the last entry, against etcd's "
        "`wal.OpenForRead` + `ReadAll` of the same directory, which raftwal wrote. Decoding "
        "times `raftwal.verify` (the Rust decoder alone) and `WAL.open_for_read` + `read_all` "
        "(the same plus a Python entry each; CRC chain verified in both) and counts entry "
        "payload bytes; all reads are served from the page cache. GB means 10⁹ bytes.",
        "",
    ]
    if skipped:
        parts += ["Skipped: " + "; ".join(skipped) + ".", ""]
    parts += ["## Machine", "", "| | |", "|---|---|"]
    parts += [f"| {k} | {v} |" for k, v in machine]
    parts += [
        "",
        "## Command",
        "",
        "```",
        command,
        "```",
        "",
        f"Settings: {settings.rounds} rounds; {settings.seconds:g} s per system per round in the "
        f"sweep (batch sizes {', '.join(map(str, settings.batches))}); "
        f"{settings.async_seconds:g} s per save_async/save slice; recovery of "
        f"{settings.recovery_entries:,} entries and decoding of {settings.decode_mib} MiB in "
        f"{settings.read_rounds} rounds.",
        "",
    ]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="raftwal bench", description=(__doc__ or "").split("\n\n")[0]
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

"""Is this disk good enough for a Raft log? (``raftwal diskcheck [DIR]``)

etcd's hardware guidance measures the disk with fio: sequential 2300-byte
writes, each followed by fdatasync (``fio --rw=write --ioengine=sync
--fdatasync=1 --size=22m --bs=2300``), and asks for a 99th percentile of
fdatasync latency under 10 ms. This module runs the same pattern natively
(``os.write`` + ``os.fdatasync``), for a bounded time, on three files:

* ``preallocated``: a file laid out first with ``posix_fallocate``, as fio
  lays out its file and as etcd (and raftwal) preallocate WAL segments; the
  verdict is taken from this one;
* ``append``: a file that grows with every write, so each fdatasync also
  commits the new size;
* ``raftwal``: raftwal's own ``WAL.save`` of one 2300-byte entry per save
  (durable on return), to show what the log adds on top of the disk.

The three are measured in short interleaved slices, so a disk that slows
down for a moment slows all of them alike.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..messages import Entry, HardState
from ..wal import WAL

__all__ = ["BLOCK_SIZE", "FIO_FILE_SIZE", "THRESHOLD_MS", "filesystem_of", "run_check"]

BLOCK_SIZE = 2300
"""Bytes per write in etcd's fio recipe (about one small raft entry batch)."""
FIO_FILE_SIZE = 22 * 1024 * 1024
"""The recipe's ``--size=22m``: a file is replaced by a fresh one when full."""
THRESHOLD_MS = 10.0
"""etcd's guidance: the 99th percentile of fdatasync should stay below this."""
SLICE_SECONDS = 0.1


@dataclass
class _Series:
    key: str
    label: str
    sync_ns: list[int] = field(default_factory=list)
    busy_ns: int = 0
    files: int = 0

    def report(self, block: int) -> dict[str, Any]:
        n = len(self.sync_ns)
        ordered = sorted(self.sync_ns)

        def pct(q: float) -> float | None:
            if not ordered:
                return None
            return ordered[max(0, math.ceil(q * n) - 1)] / 1e6

        busy = self.busy_ns / 1e9
        return {
            "label": self.label,
            "writes": n,
            "seconds": round(busy, 4),
            "writes_per_second": round(n / busy, 1) if busy > 0 else None,
            "mib_per_second": round(n * block / busy / 2**20, 3) if busy > 0 else None,
            "files": self.files,
            "fdatasync_ms": {
                "p50": _r(pct(0.50)),
                "p90": _r(pct(0.90)),
                "p99": _r(pct(0.99)),
                "max": _r(ordered[-1] / 1e6 if ordered else None),
                "mean": _r(sum(ordered) / n / 1e6 if n else None),
            },
        }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


class _RawFile:
    """Sequential write + fdatasync on a preallocated or appending file."""

    def __init__(self, workdir: Path, series: _Series, block: int, preallocate: bool) -> None:
        self._dir = workdir
        self._series = series
        self._buf = os.urandom(block)
        self._prealloc = preallocate
        self._fd = -1
        self._written = 0

    def _fresh(self) -> None:
        self.close()
        self._series.files += 1
        path = self._dir / f"{self._series.key}-{self._series.files}.bin"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        if not self._prealloc:
            flags |= os.O_APPEND
        self._fd = os.open(path, flags, 0o600)
        if self._prealloc:
            try:
                os.posix_fallocate(self._fd, 0, FIO_FILE_SIZE)
            except OSError:  # a filesystem without fallocate: write the zeros
                chunk = bytes(1 << 20)
                for _ in range(FIO_FILE_SIZE >> 20):
                    os.write(self._fd, chunk)
                os.lseek(self._fd, 0, os.SEEK_SET)
            os.fsync(self._fd)
        self._written = 0

    def run(self, until: float) -> None:
        s = self._series
        while time.monotonic() < until:
            if self._fd < 0 or self._written + len(self._buf) > FIO_FILE_SIZE:
                self._fresh()  # outside the timed part, as fio's lay-out is
            t0 = time.perf_counter_ns()
            os.write(self._fd, self._buf)
            t1 = time.perf_counter_ns()
            os.fdatasync(self._fd)
            t2 = time.perf_counter_ns()
            self._written += len(self._buf)
            s.sync_ns.append(t2 - t1)
            s.busy_ns += t2 - t0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _WalFile:
    """raftwal's WAL.save of one entry per save: write and fdatasync inside."""

    def __init__(self, workdir: Path, series: _Series, block: int) -> None:
        self._dir = workdir
        self._series = series
        self._data = os.urandom(block)
        self._wal: WAL | None = None
        self._index = 0

    def _fresh(self) -> None:
        self.close()
        self._series.files += 1
        self._wal = WAL.create(self._dir / f"wal-{self._series.files}", b"raftwal diskcheck")
        self._index = 0

    def run(self, until: float) -> None:
        s = self._series
        while time.monotonic() < until:
            if self._wal is None or self._index * len(self._data) > FIO_FILE_SIZE:
                self._fresh()
            assert self._wal is not None
            self._index += 1
            i = self._index
            entry = Entry(term=1, index=i, data=self._data)
            t0 = time.perf_counter_ns()
            self._wal.save(HardState(term=1, vote=1, commit=i - 1), [entry])
            t1 = time.perf_counter_ns()
            s.sync_ns.append(t1 - t0)
            s.busy_ns += t1 - t0

    def close(self) -> None:
        if self._wal is not None:
            self._wal.close()
            self._wal = None


def filesystem_of(path: Path) -> tuple[str, str, str]:
    """(type, source, options) of the mount holding ``path``, from
    /proc/self/mountinfo; ("unknown", "", "") elsewhere."""
    best: tuple[int, str, str, str] = (-1, "unknown", "", "")
    real = os.path.realpath(path)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return best[1:]
    for line in lines:
        left, _, right = line.partition(" - ")
        parts, rparts = left.split(), right.split()
        if len(parts) < 6 or len(rparts) < 2:
            continue
        mnt = parts[4].encode().decode("unicode_escape")
        inside = real == mnt or real.startswith(mnt.rstrip("/") + "/")
        if inside and len(mnt) >= best[0]:
            best = (len(mnt), rparts[0], rparts[1], parts[5])
    return best[1:]


def run_check(
    directory: Path,
    seconds: float = 3.0,
    *,
    block: int = BLOCK_SIZE,
    include_wal: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure for about ``seconds`` in a temporary subdirectory of
    ``directory`` (removed afterwards) and return the report."""
    if seconds <= 0 or block <= 0:
        raise ValueError("seconds and block size must be positive")
    directory.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".raftwal-diskcheck-", dir=directory))
    pre = _Series("preallocated", f"write({block}) + fdatasync, preallocated file (fio's layout)")
    app = _Series("append", f"write({block}) + fdatasync, appending file (grows each write)")
    wal = _Series("raftwal", f"raftwal WAL.save of one {block}-byte entry (durable on return)")
    runners: list[tuple[_Series, _RawFile | _WalFile]] = [
        (pre, _RawFile(work, pre, block, preallocate=True)),
        (app, _RawFile(work, app, block, preallocate=False)),
    ]
    if include_wal:
        runners.append((wal, _WalFile(work, wal, block)))
    started = time.monotonic()
    try:
        deadline = started + seconds
        rounds = 0
        while time.monotonic() < deadline:
            order = runners[rounds % len(runners) :] + runners[: rounds % len(runners)]
            for _, r in order:
                r.run(min(deadline, time.monotonic() + SLICE_SECONDS))
            rounds += 1
            if progress is not None and rounds % 10 == 0:
                progress(f"{time.monotonic() - started:.1f} s")
    finally:
        for _, r in runners:
            r.close()
        shutil.rmtree(work, ignore_errors=True)
    results = {s.key: s.report(block) for s, _ in runners}
    fstype = filesystem_of(directory)[0]
    p99 = results["preallocated"]["fdatasync_ms"]["p99"]
    ok = p99 is not None and p99 < THRESHOLD_MS
    notes = []
    if fstype in ("tmpfs", "ramfs"):
        notes.append(
            f"{directory} is on {fstype}: memory, not a disk; fdatasync costs nothing here"
        )
    if results["preallocated"]["writes"] < 100:
        notes.append("fewer than 100 writes: the p99 is close to the slowest write")
    if p99 is None:
        message = "no write completed: the disk is far too slow (or --seconds too small)"
    elif ok:
        message = (
            f"good for a Raft log: p99 fdatasync {p99:.2f} ms < {THRESHOLD_MS:g} ms "
            "(etcd's guidance)"
        )
    else:
        message = (
            f"too slow for a Raft log: p99 fdatasync {p99:.2f} ms >= {THRESHOLD_MS:g} ms; "
            "etcd would warn of slow fdatasync and miss heartbeats under load "
            "(use a dedicated SSD/NVMe disk for the WAL)"
        )
    return {
        "directory": str(directory),
        "filesystem": fstype,
        "block_size": block,
        "seconds": round(time.monotonic() - started, 3),
        "results": results,
        "verdict": {
            "ok": ok,
            "p99_fdatasync_ms": p99,
            "threshold_ms": THRESHOLD_MS,
            "based_on": "preallocated",
            "message": message,
            "notes": notes,
        },
    }


def render(report: dict[str, Any]) -> str:
    """The report for people."""
    lines = [
        f"disk check in {report['directory']} ({report['filesystem']}), "
        f"{report['block_size']}-byte sequential writes, each followed by fdatasync, "
        f"{report['seconds']:.1f} s",
        "",
        f"  {'':<14}{'writes/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  what",
    ]

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    for key, r in report["results"].items():
        f = r["fdatasync_ms"]
        lines.append(
            f"  {key:<14}{num(r['writes_per_second'], ',.0f'):>10}{num(f['p50'], '.2f'):>9}"
            f"{num(f['p99'], '.2f'):>9}{num(f['max'], '.2f'):>9}  {r['label']}"
        )
    v = report["verdict"]
    lines += ["", ("OK: " if v["ok"] else "SLOW: ") + v["message"]]
    lines += [f"note: {n}" for n in v["notes"]]
    if "raftwal" in report["results"]:
        lines.append("(the raftwal row times a whole durable save: write, CRC, fdatasync)")
    return "\n".join(lines)

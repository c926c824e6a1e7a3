#!/usr/bin/env python3
"""raftwal inside a long-running service: what a large snapshot does to save
latency, what the CLI's dump and inspect cost on a large log, and what the
storage's copies of entries cost. Every figure is a ratio against a baseline
measured in the same run, rounds interleaved (the machine is noisy).

    python3 benches/service.py                 # about 5 minutes, a ~2 GB WAL
    python3 benches/service.py --gib 0.2       # quicker
    python3 benches/service.py --out BENCHMARKS.md   # also (re)write its section

Rows:
* p99 of synchronous ``save()`` (1 x 100 B) while ``create_snapshot`` writes
  and fsyncs a 200 MiB snapshot, against the p99 of the same saves in a
  window of the same length without one;
* peak RSS (``ru_maxrss`` of the child, measured by a small wrapper process
  so nothing is inherited) of ``raftwal dump --start N --end N+4`` and
  ``raftwal inspect`` on a WAL of 100 B entries, against the interpreter
  with raftwal imported; their time against ``raftwal verify`` of the same
  directory (one streaming pass, no Python objects);
* ``DurableStorage.save`` against ``WAL.save`` (100 x 100 B per durable
  save), and the entry copies alone (in on save, out on ``entries()``)
  against the time of one ``WAL.save``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sections import write_section

import raftwal
from raftwal import WAL, ConfState, Entry, HardState

# Runs one command and prints its peak RSS (KiB): the wrapper is small, so
# the child inherits nothing large over fork.
WRAP = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "took = time.perf_counter() - t\n"
    "assert r.returncode in (0, 1), r.stderr[-2000:]\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, took)\n"
)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _p99(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


class Row:
    def __init__(
        self, scenario: str, measure: str, fmt: Callable[[float], str], target: str = "—"
    ) -> None:
        self.scenario, self.measure, self.fmt, self.target = scenario, measure, fmt, target
        self.ours: list[float] = []
        self.base: list[float] = []

    def add(self, ours: float, base: float) -> None:
        self.ours.append(ours)
        self.base.append(base)

    def cells(self) -> list[str]:
        ratios = [a / b for a, b in zip(self.ours, self.base, strict=True) if b]
        r = statistics.median(ratios)
        return [
            self.scenario,
            self.measure,
            self.fmt(statistics.median(self.ours)),
            self.fmt(statistics.median(self.base)),
            f"{r:.2f}x ({min(ratios):.2f} to {max(ratios):.2f})",
            self.target,
        ]


def _ms(x: float) -> str:
    return f"{x * 1e3:.2f} ms"


def _mb(x: float) -> str:
    return f"{x / 1024:.1f} MB"


def _s(x: float) -> str:
    return f"{x:.3f} s"


# --- save latency beside a large snapshot ------------------------------------


def _write_and_fsync(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    path.unlink()


def snapshot_latency(root: Path, rounds: int, snap_mib: int) -> list[Row]:
    row = Row(
        f"save() beside create_snapshot of {snap_mib} MiB",
        "p99 save latency, 1 x 100 B per save, vs the same saves without a snapshot",
        _ms,
        "<= 2x",
    )
    disk = Row(
        f"save() beside a plain write+fsync of {snap_mib} MiB (the disk's share)",
        "p99 save latency vs the same saves with nothing beside them",
        _ms,
    )
    d = root / "snaplat"
    data = os.urandom(1 << 20) * snap_mib
    with raftwal.open(d, max_snapshots=1, max_wals=1, snapshot_count=1 << 62) as s:
        last = [0]

        def save_for(stop: threading.Event | float) -> list[float]:
            lat = []
            end = stop if isinstance(stop, float) else None
            while True:
                if end is not None and time.perf_counter() >= end:
                    break
                if isinstance(stop, threading.Event) and stop.is_set():
                    break
                i = last[0] + 1
                t = time.perf_counter()
                s.save(HardState(1, 1, i), [Entry(term=1, index=i, data=b"x" * 100)])
                lat.append(time.perf_counter() - t)
                last[0] = i
            return lat

        save_for(time.perf_counter() + 0.5)  # warm up
        for r in range(rounds):
            done = threading.Event()
            took = [0.0]

            def snap(done: threading.Event = done, took: list[float] = took) -> None:
                t = time.perf_counter()
                s.create_snapshot(last[0], ConfState(voters=[1]), data)
                took[0] = time.perf_counter() - t
                done.set()

            th = threading.Thread(target=snap)
            th.start()
            with_snap = save_for(done)
            th.join()
            without = save_for(time.perf_counter() + max(took[0], 0.5))
            row.add(_p99(with_snap), _p99(without))
            plain = threading.Event()

            def write(plain: threading.Event = plain) -> None:
                _write_and_fsync(root / "plain.bin", data)
                plain.set()

            th = threading.Thread(target=write)
            th.start()
            with_write = save_for(plain)
            th.join()
            disk.add(_p99(with_write), _p99(without))
            _say(
                f"  round {r}: snapshot {took[0]:.2f} s, p99 {_p99(with_snap) * 1e3:.2f} ms "
                f"({len(with_snap)} saves) vs {_p99(without) * 1e3:.2f} ms without, "
                f"{_p99(with_write) * 1e3:.2f} ms beside a plain write"
            )
    shutil.rmtree(d)
    return [row, disk]


# --- dump and inspect on a large log -----------------------------------------


def write_log(d: Path, gib: float) -> int:
    """About ``gib`` GiB of WAL of 100 B entries (10,000 a save); returns the
    last index."""
    w = WAL.create(d / "wal", b"bench")
    payload = bytes(range(100))
    target = int(gib * (1 << 30))
    size = i = 0
    t = time.perf_counter()
    while size < target:
        w.save(HardState(1, 1, i + 10_000), [Entry(1, i + k, 0, payload) for k in range(1, 10_001)])
        i += 10_000
        if i % 1_000_000 == 0:
            size = sum(p.stat().st_size for p in (d / "wal").glob("*.wal"))
    w.close()
    _say(f"  wrote {i:,} entries, {size / 1e9:.2f} GB in {time.perf_counter() - t:.0f} s")
    return i


def _wrapped(*cmd: str) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", WRAP, *cmd], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1])


def cli_rows(d: Path, last: int, rounds: int) -> list[Row]:
    cli = [sys.executable, "-m", "raftwal"]
    mid = last // 2
    rng = ["--start", str(mid), "--end", str(mid + 4)]
    rss = [
        Row(
            "raftwal dump --start N --end N+4, 100 B entries",
            "peak RSS vs the interpreter with raftwal imported",
            _mb,
            "< 100 MB",
        ),
        Row(
            "raftwal inspect, 100 B entries",
            "peak RSS vs the interpreter with raftwal imported",
            _mb,
            "< 100 MB",
        ),
    ]
    took = [
        Row(
            "raftwal dump --start N --end N+4, 100 B entries",
            "seconds vs raftwal verify (one streaming pass in Rust)",
            _s,
        ),
        Row("raftwal inspect, 100 B entries", "seconds vs raftwal verify", _s),
    ]
    for r in range(rounds):
        base, _ = _wrapped(sys.executable, "-c", "import raftwal, raftwal.cli")
        _, verify_s = _wrapped(*cli, "verify", str(d))
        dump_kib, dump_s = _wrapped(*cli, "dump", *rng, str(d))
        insp_kib, insp_s = _wrapped(*cli, "inspect", str(d))
        rss[0].add(dump_kib, base)
        rss[1].add(insp_kib, base)
        took[0].add(dump_s, verify_s)
        took[1].add(insp_s, verify_s)
        _say(
            f"  round {r}: dump {dump_kib / 1024:.0f} MB {dump_s:.2f} s, inspect "
            f"{insp_kib / 1024:.0f} MB {insp_s:.2f} s, verify {verify_s:.2f} s, "
            f"interpreter {base / 1024:.0f} MB"
        )
    return rss + took


# --- the storage's copies of entries -----------------------------------------


def copy_rows(root: Path, rounds: int, slice_s: float) -> list[Row]:
    save_row = Row(
        "DurableStorage.save, 100 x 100 B per save",
        "saves/s vs WAL.save of the same batches (both durable)",
        lambda x: f"{x:,.0f}/s",
    )
    copy_row = Row(
        "entry copies, 100 x 100 B",
        "copy in (save) + copy out (entries()) per batch vs one WAL.save",
        lambda x: f"{x * 1e6:.1f} µs",
    )
    payload = b"y" * 100

    def batch(i: int) -> list[Entry]:
        return [Entry(term=1, index=i + k, data=payload) for k in range(1, 101)]

    def rate(save: Callable[[HardState, list[Entry]], object]) -> float:
        n, i, end = 0, 0, time.perf_counter() + slice_s
        t = time.perf_counter()
        while time.perf_counter() < end:
            save(HardState(1, 1, i + 100), batch(i))
            i += 100
            n += 1
        return n / (time.perf_counter() - t)

    for r in range(rounds):
        dd, wd = root / f"durable{r}", root / f"wal{r}"
        with raftwal.open(dd, snapshot_count=1 << 62) as s, WAL.create(wd, b"") as w:
            order = [("durable", s.save), ("wal", w.save)]
            if r % 2:
                order.reverse()
            got = {name: rate(fn) for name, fn in order}
            save_row.add(got["durable"], got["wal"])
            b = batch(0)
            t = time.perf_counter()
            for _ in range(1000):
                [Entry(e.term, e.index, e.type, e.data) for e in b]
            one_copy = (time.perf_counter() - t) / 1000
            copy_row.add(2 * one_copy, 1 / got["wal"])
            _say(
                f"  round {r}: durable {got['durable']:,.0f}/s, wal {got['wal']:,.0f}/s, "
                f"copy {one_copy * 1e6:.1f} µs"
            )
        shutil.rmtree(dd)
        shutil.rmtree(wd)
    return [save_row, copy_row]


# --- save_async latency with a busy caller -----------------------------------


def async_latency_rows(root: Path, rounds: int, slice_s: float, work_us: int = 200) -> list[Row]:
    """The futures of save_async resolve on another thread, which needs the
    GIL: with a caller that keeps it busy between saves, the longest that
    thread should wait is one switch interval."""
    scenario = f"DurableStorage.save_async, 1 x 100 B, {work_us} µs of Python between calls"
    versus = "vs sys.getswitchinterval() (the longest a thread waits for a GIL another keeps busy)"
    p50 = Row(scenario, f"p50 latency from the call to the future resolved, {versus}", _ms)
    p99 = Row(scenario, f"p99 latency, {versus}", _ms)
    interval = sys.getswitchinterval()
    for r in range(rounds):
        d = root / f"asynclat{r}"
        lat: list[float] = []
        with raftwal.open(d, snapshot_count=1 << 62) as s:
            i = s.last_index()
            futs = []
            end = time.perf_counter() + slice_s
            while time.perf_counter() < end:
                i += 1
                t0 = time.perf_counter()
                f = s.save_async(HardState(1, 1, i - 1), [Entry(term=1, index=i, data=b"z" * 100)])
                f.add_done_callback(lambda _, t0=t0, lat=lat: lat.append(time.perf_counter() - t0))
                futs.append(f)
                stop = time.perf_counter() + work_us / 1e6
                while time.perf_counter() < stop:
                    pass
            for f in futs:
                f.result(timeout=60)
        shutil.rmtree(d)
        lat.sort()
        p50.add(lat[len(lat) // 2], interval)
        p99.add(_p99(lat), interval)
        _say(
            f"  round {r}: {len(lat)} saves, p50 {lat[len(lat) // 2] * 1e3:.2f} ms, "
            f"p99 {_p99(lat) * 1e3:.2f} ms (switch interval {interval * 1e3:.1f} ms)"
        )
    return [p50, p99]


# --- report ------------------------------------------------------------------


def markdown(rows: list[Row], command: str, note: str) -> str:
    head = "| scenario | measure | raftwal | baseline | ratio | target |\n|---|---|---:|---:|---:|---|\n"
    body = "".join("| " + " | ".join(r.cells()) + " |\n" for r in rows)
    return (
        "## In a service: snapshots beside saves, the CLI on a large log, copies\n\n"
        f"{head}{body}\n{note}\n\n```\n{command}\n```\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benches/service.py", description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=2.0, help="size of the WAL dump/inspect read")
    ap.add_argument("--snapshot-mib", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--out", default=None, help="(re)write this script's section of this file")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="raftwal-service-", dir=args.dir))
    t0 = time.perf_counter()
    rows: list[Row] = []
    try:
        _say("save latency beside a large snapshot")
        rows.extend(snapshot_latency(root, args.rounds, args.snapshot_mib))
        _say("entry copies")
        rows.extend(copy_rows(root, args.rounds, 0.5))
        _say("save_async latency with a busy caller")
        rows.extend(async_latency_rows(root, args.rounds, 1.0))
        _say(f"dump and inspect on a {args.gib} GiB WAL")
        d = root / "large"
        last = write_log(d, args.gib)
        size = sum(p.stat().st_size for p in (d / "wal").glob("*.wal"))
        rows.extend(cli_rows(d, last, max(3, args.rounds // 2)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    cmd = "python3 benches/service.py " + " ".join(argv if argv is not None else sys.argv[1:])
    note = (
        f"Run on {time.strftime('%Y-%m-%d')} ({elapsed:.0f} s), CPython "
        f"{platform.python_version()}, {os.cpu_count()} cores. The large log: {last:,} "
        f"entries of 100 B, {size / 1e9:.2f} GB in 64 MB segments. A ratio is the median of "
        "per-round ratios, in brackets the lowest and highest. Peak RSS is the child's "
        "`ru_maxrss` under a small wrapper process; the baseline is the interpreter importing "
        "raftwal and its CLI. Save latency: one thread saves (sync, 1 entry each) while "
        f"another runs `create_snapshot` of {args.snapshot_mib} MiB (`.snap` written and "
        "fsynced), then for as long again without it, then beside a plain `write` + "
        "`fsync` of as many bytes to the same filesystem (what the disk alone does to the "
        "saves' fsyncs). Copies: the storage copies each entry "
        "it is given and each it serves (`Entry(term, index, type, data)`, data shared as "
        "immutable bytes), timed alone and as part of `DurableStorage.save`. save_async latency: one "
        "thread calls `save_async` and spins in Python between calls; each future's latency "
        "is taken in its done-callback (run by the thread that resolves it)."
    )
    md = markdown(rows, cmd.strip(), note)
    print(md)
    if args.out:
        write_section(Path(args.out), "service.py", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
(``tests/support/etcdref.py`` builds ``tools/etcdref`` with ``go`` and Debian's
``golang-etcd-server-dev``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.util
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from .. import _native
from ..messages import HardState
from ..restart import open as open_storage
from ..wal import WAL, verify
from .bench_report import (
    Memory,
    Series,
    Settings,
    _fmt_rate,
    build_rows,
    draw_chart,
    machine_info,
    memory_note,
    report_markdown,
    sweep_markdown,
    table_markdown,
)
from .bench_systems import (
    ASYNC_BATCH,
    ASYNC_BATCH_IN_FLIGHT,
    DECODE_ENTRY_SIZE,
    ENTRY_SIZE,
    IN_FLIGHT,
    EtcdSystem,
    LmdbSystem,
    PurePythonSystem,
    PyWal,
    RaftwalDatasSystem,
    RaftwalSystem,
    RawSystem,
    SqliteSystem,
    System,
    check_pure_python_encoder,
    crc32c_py,
    make_entries,
)
from .diskcheck import filesystem_of
from .output import CommandError, document, error_doc

__all__ = ["PyWal", "add_arguments", "check_pure_python_encoder", "crc32c_py", "main", "run"]


# -------------------------------------------------------------------- etcd (Go)


EtcdReference = Callable[[], tuple[Any | None, str]]
"""Gives (a client of etcd's Go WAL, or None; why not). The client is
``tests/support/etcdref.py``'s ``EtcdRef`` in a raftwal source checkout, which
builds ``tools/etcdref``; ``benches/compare.py`` passes it to :func:`run`."""


OTHER_SECTIONS = "<!-- benches/"
"""Where the sections of BENCHMARKS.md that other scripts write begin."""


def _no_etcd_reference() -> tuple[Any | None, str]:
    return None, "needs a raftwal source checkout: run benches/compare.py there"


# --------------------------------------------------------------- the scenarios


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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


def _async_run(
    path: Path, seconds: float, batch: int = 1, in_flight: int = IN_FLIGHT, datas: bool = False
) -> tuple[int, float, int, int]:
    """save_async of ``batch`` entries per call (with ``datas``,
    save_entries_async of their data) with at most ``in_flight`` futures
    outstanding; the clock stops when every future has resolved. Returns
    (entries, seconds, bytes the WAL wrote, fsyncs), the last two from its
    stats() over the timed loop."""
    data = bytes(ENTRY_SIZE)
    with WAL.create(path, None) as w:
        before = w.stats()
        pending: deque[Future[None]] = deque()
        i = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            if datas:
                pending.append(
                    w.save_entries_async(HardState(1, 1, i + batch), 1, i + 1, [data] * batch)
                )
                i += batch
            else:
                ents = make_entries(i + 1, batch, data)
                i += batch
                pending.append(w.save_async(HardState(1, 1, i), ents))
            if len(pending) >= in_flight:
                pending.popleft().result()
        for f in pending:
            f.result()
        took = time.perf_counter() - start
        after = w.stats()
        if w.durable_index != i:
            raise RuntimeError(f"save_async: durable_index {w.durable_index} != {i}")
        written = after["wal_write_bytes_total"] - before["wal_write_bytes_total"]
        fsyncs = after["wal_fsyncs_total"] - before["wal_fsyncs_total"]
        return i, took, written, fsyncs


def _async_slice(path: Path, seconds: float) -> tuple[int, float]:
    """save_async of one entry per call with IN_FLIGHT futures outstanding."""
    n, took, _, _ = _async_run(path, seconds)
    return n, took


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


def async_batch_scenario(
    settings: Settings, workdir: Path, disk: RawSystem, datas: bool = False
) -> tuple[Series, Series, list[float]]:
    """save_async of ASYNC_BATCH entries per call, at most ASYNC_BATCH_IN_FLIGHT
    in flight, against pwrite+fdatasync on the zeroed file of as many bytes
    per sync as the WAL wrote per fsync, as entries/s at the WAL's bytes per
    entry. The disk's slice uses the bytes per fsync of the latest save_async
    slice (an untimed one first), so the two can run in a shuffled order.
    With ``datas``, save_entries_async of the entries' data instead.
    Returns (save_async, disk, bytes per fsync of each round)."""
    ours, theirs = Series(), Series()
    per_fsync: list[float] = []
    secs = settings.async_seconds

    def run_async(path: Path) -> tuple[int, float, float, float]:
        n, took, written, fsyncs = _async_run(path, secs, ASYNC_BATCH, ASYNC_BATCH_IN_FLIGHT, datas)
        if fsyncs < 1 or n < 1:
            raise RuntimeError(f"save_async: {n} entries, {fsyncs} fsyncs")
        return n, took, written / fsyncs, written / n

    _, _, fsync_bytes, entry_bytes = run_async(workdir / "async-batch-calibration")
    shutil.rmtree(workdir / "async-batch-calibration", ignore_errors=True)
    shuffle = random.Random(20240602).shuffle
    for r in range(settings.rounds):

        def wal_step(path: Path) -> None:
            nonlocal fsync_bytes, entry_bytes
            n, took, fsync_bytes, entry_bytes = run_async(path)
            ours.add(n, took)
            per_fsync.append(fsync_bytes)

        def disk_step(path: Path) -> None:
            syncs, took = disk.slice_bytes(path, round(fsync_bytes), secs)
            theirs.add(syncs * round(fsync_bytes) / entry_bytes, took)

        steps = [wal_step, disk_step]
        shuffle(steps)
        for i, step in enumerate(steps):
            step(workdir / f"async-batch-{r}-{i}")
        _say(
            f"  round {r + 1}/{settings.rounds}: save_async {_fmt_rate(ours.work[-1] / ours.seconds[-1])}"
            f"/s ({per_fsync[-1] / 1024:,.1f} KiB per fsync), disk "
            f"{_fmt_rate(theirs.work[-1] / theirs.seconds[-1])}/s"
        )
        for p in workdir.glob(f"async-batch-{r}-*"):
            shutil.rmtree(p, ignore_errors=True)
    return ours, theirs, per_fsync


def _write_log(wal_dir: Path, count: int, size: int, per_save: int) -> None:
    data = os.urandom(size)
    with WAL.create(wal_dir, None) as w:
        for start in range(1, count + 1, per_save):
            n = min(per_save, count + 1 - start)
            w.save(HardState(1, 1, start + n - 1), make_entries(start, n, data))


_RSS_CHILD = """\
import json, resource, sys

def peak():
    try:  # this process's own high-water mark: Linux keeps ru_maxrss across exec,
        with open("/proc/self/status") as f:  # so it would report the parent's
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb if sys.platform == "darwin" else kb * 1024

import raftwal

imported = peak()
s = raftwal.open(sys.argv[1])
n = int(sys.argv[2])
served = len(s.entries(n, n + 1))
print(json.dumps({"imported": imported, "peak": peak(), "last": s.last_index(), "served": served}))
"""
"""The child of the peak-RSS measurement: it imports raftwal, opens the data
directory, touches entries(last, last + 1) and prints its peak RSS in bytes
after the import and at the end: VmHWM from /proc/self/status, or ru_maxrss
where there is no /proc (on Linux ru_maxrss survives exec, so a child forked
from this large process would report at least the parent's RSS)."""


def wal_used_bytes(wal_dir: Path) -> int:
    """Bytes of the WAL's segment files up to the end of their last record
    (a segment is preallocated past it): the length-prefixed frames of
    etcd's format, walked until a zero length."""
    total = 0
    for seg in sorted(wal_dir.glob("*.wal")):
        buf = seg.read_bytes()
        off = 0
        while off + 8 <= len(buf):
            head = int.from_bytes(buf[off : off + 8], "little")
            if head == 0:
                break
            pad = (head >> 56) & 0x7 if head >> 63 else 0
            off += 8 + (head & 0xFFFFFFFFFFFFFF) + pad
        total += min(off, len(buf))
    return total


def _rss_child(data_dir: Path, n: int) -> dict[str, int]:
    """Peak RSS of a fresh interpreter that only opens ``data_dir`` with
    raftwal.open (see _RSS_CHILD)."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])  # the directory holding raftwal/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(data_dir), str(n)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"peak RSS child failed: {proc.stderr.strip()[-2000:]}")
    out: dict[str, int] = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["last"] != n or out["served"] != 1:
        raise RuntimeError(f"peak RSS child: raftwal.open found {out}, expected last index {n}")
    return out


def recovery_scenario(
    settings: Settings, workdir: Path, ref: Any | None
) -> tuple[Series, Series | None, Memory | None]:
    """Seconds of raftwal.open until entries() serves against etcd's
    OpenForRead+ReadAll, and the peak RSS of raftwal.open in a child process
    (None where the resource module is missing) against the WAL's bytes."""
    n = settings.recovery_entries
    data_dir = workdir / "recovery"
    _write_log(data_dir / "wal", n, ENTRY_SIZE, 10_000)
    (data_dir / "snap").mkdir(mode=0o700)
    ours, theirs = Series(), Series() if ref is not None else None
    memory = None
    if importlib.util.find_spec("resource") is not None:
        memory = Memory(wal_bytes=wal_used_bytes(data_dir / "wal"))

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

    def rss_child() -> None:
        assert memory is not None
        out = _rss_child(data_dir, n)
        memory.add(out["peak"], out["imported"])

    steps = [raftwal_open]
    if ref is not None:
        steps.append(etcd_read)
    if memory is not None:
        steps.append(rss_child)
    shuffle = random.Random(20240603).shuffle
    for r in range(settings.read_rounds):
        shuffle(steps)
        for step in steps:
            step()
        line = f"  round {r + 1}/{settings.read_rounds}: raftwal.open {ours.seconds[-1]:.3f} s"
        if theirs is not None:
            line += f", etcd OpenForRead+ReadAll {theirs.seconds[-1]:.3f} s"
        if memory is not None:
            line += (
                f", peak RSS {memory.peak.work[-1] / 1e6:,.1f} MB (WAL {memory.wal_bytes / 1e6:,.1f}"
                f" MB, interpreter with raftwal imported {memory.imported[-1] / 1e6:,.1f} MB)"
            )
        _say(line)
    shutil.rmtree(data_dir, ignore_errors=True)
    return ours, theirs, memory


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
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the results as one JSON document on stdout (the tables go to stderr)",
    )
    parser.add_argument(
        "--samples-json", dest="json_out", help="also write the raw samples as JSON here"
    )
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
        if getattr(args, "json", False):
            print(document(error_doc(CommandError(str(e)), 2)))
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
        systems: list[System] = [RaftwalSystem(), RaftwalDatasSystem()]
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
        _say(f"save_async, 1 entry per call, {IN_FLIGHT} in flight, vs save")
        async_s, sync_s = async_scenario(settings, workdir)
        _say(
            f"save_async, {ASYNC_BATCH} entries per call, {ASYNC_BATCH_IN_FLIGHT} in flight, "
            "vs write+fdatasync of the same bytes per fsync"
        )
        disk = next(s for s in systems if isinstance(s, RawSystem) and s.key == "raw")
        async_batch = async_batch_scenario(settings, workdir, disk)
        _say("the same with save_entries_async (the entries' data alone)")
        async_datas = async_batch_scenario(settings, workdir, disk, datas=True)
        _say(f"recovery of {settings.recovery_entries:,} entries")
        recovery = recovery_scenario(settings, workdir, ref)
        _say("CRC32C")
        crc = crc_scenario(settings)
        _say(f"decode + verify {settings.decode_mib} MiB of 4 KiB entries")
        decode = decode_scenario(settings, workdir, ref)
        machine = machine_info(workdir, lmdb)

    purepy_label = next(s.label for s in systems if s.key == "purepy")
    rows = build_rows(
        settings,
        swept,
        purepy_label,
        async_s,
        sync_s,
        (async_batch, async_datas),
        recovery,
        crc,
        decode,
    )
    memory = recovery[2]

    table = table_markdown(rows)
    elapsed = time.perf_counter() - started
    tables = sys.stderr if getattr(args, "json", False) else sys.stdout
    print(table, file=tables)
    print(file=tables)
    print(sweep_markdown(swept, systems), file=tables)
    if memory is not None:
        print(f"\n{memory_note(memory)}", file=tables)
    print(
        f"\n({elapsed:.0f} s; ratio: median of per-round ratios, in brackets the lowest and highest)",
        file=tables,
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
        # sections other scripts own (benches/service.py, benches/backend_db.py)
        # sit between their own markers after this report: keep them
        old = out.read_text() if out.exists() else ""
        kept = old[old.index(OTHER_SECTIONS) :] if OTHER_SECTIONS in old else ""
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
                memory,
            )
            + ("\n" + kept if kept else "")
        )
        _say(f"report: {out}")
    samples = {
        "rows": [r.__dict__ for r in rows],
        "sweep": {k: {str(b): s.__dict__ for b, s in per.items()} for k, per in swept.items()},
        "machine": info,
        "settings": settings.__dict__,
        "async_batch_bytes_per_fsync": async_batch[2],
        "async_datas_bytes_per_fsync": async_datas[2],
    }
    if memory is not None:
        samples["memory"] = {
            "wal_bytes": memory.wal_bytes,
            "peak_rss_bytes": memory.peak.work,
            "imported_rss_bytes": memory.imported,
        }
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(samples, indent=2, default=str))
    if getattr(args, "json", False):
        print(document(samples | {"elapsed_seconds": round(elapsed, 1)}))
    if args.fail_on_miss and any(r.met is False for r in rows):
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="raftwal bench", description=(__doc__ or "").split("\n\n")[0]
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

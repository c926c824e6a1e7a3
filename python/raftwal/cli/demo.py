"""``raftwal demo``: durable appends, snapshots, a SIGKILLed writer,
recovery and a report (``--cluster N``: PySyncObj nodes on raftwal)."""

from __future__ import annotations

import argparse
import hashlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path

from ..messages import ConfState, Entry, HardState
from ..restart import open as open_storage
from .output import CommandError, Progress, emit

__all__ = ["cmd_demo", "writer"]


def _payload(index: int, size: int) -> bytes:
    seed = hashlib.sha256(index.to_bytes(8, "little")).digest()
    return (seed * (size // len(seed) + 1))[:size]


def writer(data_dir: str, size: int, in_flight: int, snapshot_count: int) -> int:
    """The demo's child: append until killed, printing each durable index."""
    out = sys.stdout
    with open_storage(
        data_dir, metadata=b"raftwal demo", snapshot_count=snapshot_count, segment_size=4_000_000
    ) as s:
        index = s.last_index()
        pending: deque[tuple[int, Future[None]]] = deque()
        cs = ConfState(voters=[1])
        while True:
            index += 1
            hs = HardState(term=1, vote=1, commit=max(0, index - in_flight))
            fut = s.save_async(hs, [Entry(term=1, index=index, data=_payload(index, size))])
            pending.append((index, fut))
            if len(pending) >= in_flight:
                acked, f = pending.popleft()
                f.result()
                while pending and pending[0][1].done():
                    acked, f = pending.popleft()
                    f.result()
                out.write(f"{acked}\n")
                out.flush()
                # a snapshot covers applied, hence committed, entries only
                committed = s.initial_state()[0].commit
                if s.needs_snapshot(committed):
                    s.create_snapshot(committed, cs, f"applied through {committed}".encode())


def cmd_cluster_demo(args: argparse.Namespace) -> int:
    """``raftwal demo --cluster N``: PySyncObj nodes whose journal is raftwal."""
    try:
        from . import pysyncobj_cluster as psj
    except ImportError as exc:
        raise CommandError(
            f"--cluster needs PySyncObj ({exc}): pip install pysyncobj", "MissingDependency"
        ) from exc
    if args.cluster < 3:
        raise CommandError("--cluster needs at least 3 nodes")
    report = psj.cluster_demo(
        args.cluster,
        seconds=args.compare_seconds,
        data_dir=args.data_dir,
        keep=args.keep,
        compare=args.compare_seconds > 0,
    )
    emit(args, psj.render_demo(report), report)
    ok = not report["lost"] and not report["killed_leader_journal_missing"]
    return 0 if ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    if args.cluster:
        return cmd_cluster_demo(args)
    own_dir = args.data_dir is None
    if not own_dir and Path(args.data_dir).exists() and not Path(args.data_dir).is_dir():
        raise CommandError(f"{args.data_dir}: not a directory", "NotADirectoryError")
    data_dir = Path(tempfile.mkdtemp(prefix="raftwal-demo-")) if own_dir else Path(args.data_dir)
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "raftwal",
            "_demo-writer",
            str(data_dir),
            str(args.entry_size),
            str(args.in_flight),
            str(args.snapshot_count),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    acked = 0
    started = time.monotonic()
    deadline = started + args.seconds
    first_ack = None
    try:
        bar = Progress("writing", args.seconds)
        for line in child.stdout:
            acked = int(line)
            if first_ack is None:
                first_ack = time.monotonic()
            bar.update(time.monotonic() - started, f"{acked:,} acknowledged")
            if time.monotonic() >= deadline:
                break
        bar.close()
    finally:
        elapsed = time.monotonic() - (first_ack or started)
        child.send_signal(signal.SIGKILL)
        child.wait()
    if acked == 0:
        raise CommandError(
            "the writer acknowledged nothing before it was killed", "DemoFailed", status=1
        )

    t0 = time.monotonic()
    with open_storage(data_dir) as s:
        recovery_seconds = time.monotonic() - t0
        first, last = s.first_index(), s.last_index()
        snap_index = s.snapshot().metadata.index
        lost: list[int] = []
        checked = 0
        lo = max(first, 1)
        for start in range(lo, acked + 1, 4096):
            hi = min(acked + 1, start + 4096)
            if hi > last + 1:
                lost.extend(range(max(start, last + 1), hi))
                hi = last + 1
            if hi <= start:
                continue
            for e in s.entries(start, hi):
                checked += 1
                if e.data != _payload(e.index, args.entry_size):
                    lost.append(e.index)
        report = s.recovery
    deleted = own_dir and not args.keep
    segs = sorted(p.name for p in (data_dir / "wal").iterdir() if p.suffix == ".wal")
    snaps = sorted(p.name for p in (data_dir / "snap").iterdir() if p.suffix == ".snap")
    rate = acked / elapsed if elapsed > 0 else 0.0
    data = {
        # null once the temporary directory is deleted
        "data_dir": None if deleted else str(data_dir),
        "acknowledged": acked,
        "recovered_last_index": last,
        "checked_after_snapshot": checked,
        "snapshot_index": snap_index,
        "lost": len(lost),
        "torn_tail_repaired": report.repaired,
        "durable_entries_per_second": round(rate),
        "recovery_seconds": round(recovery_seconds, 4),
        "segments": len(segs),
        "snapshots": len(snaps),
    }
    human = "\n".join(
        [
            f"raftwal demo in {data_dir}"
            + (" (a temporary directory, now deleted)" if deleted else ""),
            f"  writer: durable appends with group commit ({args.in_flight} in flight, "
            f"{args.entry_size}-byte entries), snapshots every {args.snapshot_count} entries",
            f"  killed with SIGKILL after {acked} acknowledged entries "
            f"({rate:,.0f} durable entries/s)",
            f"  recovered in {recovery_seconds * 1000:.1f} ms: snapshot at {snap_index}, "
            f"entries {first}..{last}, torn tail repaired: {report.repaired}",
            f"  on disk: {len(segs)} WAL segment(s), {len(snaps)} snapshot file(s)",
            f"  acknowledged entries checked byte for byte after the snapshot: {checked}",
            f"  lost: {len(lost)}" + ("  (every acknowledged entry survived)" if not lost else ""),
        ]
    )
    if deleted:
        shutil.rmtree(data_dir, ignore_errors=True)
    emit(args, human, data)
    return 0 if not lost else 1

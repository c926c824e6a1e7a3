"""The writer of the crash campaign (tests/faults/test_crash.py), run as a child process.

    python tests/support/crash_writer.py DATA_DIR SEED [--stop-at PHASE:N]

It opens ``raftwal.open(DATA_DIR, **OPTIONS)`` (creating or recovering) and
appends forever in a single term, with increasing indexes: blocking ``save``
calls and ``save_async`` calls with many futures in flight, single entries
and batches, commit-only HardStates, and a snapshot whenever
``needs_snapshot`` says so. Entry data is ``payload(index)`` and snapshot data
``snapshot_data(index)``, so the parent can check every byte it recovers.

It reports on stdout, one line per event, each written with one
``os.write`` (a line is whole or absent when the process is killed):

    start                          imports done, about to open
    ready LAST SNAP REPAIRED       recovery done (last index, snapshot index, 0/1)
    sent INDEX                     about to hand entries up to INDEX to raftwal
    ack INDEX                      entries up to INDEX are acknowledged durable
    cut NAME                       the WAL continues in a new segment NAME
    snapfile INDEX / snaprecord INDEX / snappurged INDEX
                                   phases inside create_snapshot (see --stop-at)
    snap INDEX                     create_snapshot(INDEX) returned
    stopped PHASE N                paused at a phase boundary (--stop-at)

With ``--stop-at PHASE:N`` the writer pauses for good right after its N-th
PHASE event, so the parent can kill it exactly there. PHASE is one of the
event names above (``sent`` excluded) or ``async`` (a ``save_async`` call
returned, its future not yet resolved).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import raftwal
from raftwal import ConfState, Entry, HardState

TERM = 1
SEGMENT_SIZE = 64 * 1024
OPTIONS: dict[str, Any] = dict(
    snapshot_count=120,
    catch_up_entries=40,
    max_snapshots=3,
    max_wals=3,
    segment_size=SEGMENT_SIZE,
)
CONF_STATE = ConfState(voters=[1])
PHASES = ("start", "ready", "ack", "async", "cut", "snapfile", "snaprecord", "snappurged", "snap")


def payload(index: int) -> bytes:
    """Entry ``index``'s data: a function of the index alone, of varied
    length (mostly below 1.2 KiB, one in 17 between 4 and 10 KiB, so some
    frames straddle pages and the page writer's watermark)."""
    r = index * 2654435761 % (1 << 32)
    n = 4000 + r % 6000 if r % 17 == 0 else r % 1200
    head = b"entry %d:" % index
    block = hashlib.blake2b(head, digest_size=32).digest()
    return (head + block * (n // 32 + 1))[: max(n, len(head))]


def snapshot_data(index: int) -> bytes:
    """The state machine image of a snapshot at ``index``."""
    return b"through %d" % index


class Reporter:
    def __init__(self, stop_at: tuple[str, int] | None) -> None:
        self.stop_at = stop_at
        self.counts: collections.Counter[str] = collections.Counter()

    def __call__(self, event: str, value: object = "") -> None:
        os.write(1, f"{event} {value}\n".encode())
        self.counts[event] += 1
        if self.stop_at == (event, self.counts[event]):
            os.write(1, f"stopped {event} {self.counts[event]}\n".encode())
            while True:  # the parent kills us here
                time.sleep(60)


def hook_snapshot_phases(report: Reporter) -> None:
    """Report the phases of ``DurableStorage.create_snapshot`` by wrapping
    the Snapshotter methods it calls between them (observation only)."""
    cls = raftwal.Snapshotter

    def after(name: str, event: str) -> None:
        orig: Callable[..., Any] = getattr(cls, name)

        def wrapper(self: raftwal.Snapshotter, snap: Any, *args: Any) -> Any:
            out = orig(self, snap, *args)
            report(event, snap.metadata.index if event != "snappurged" else "")
            return out

        setattr(cls, name, wrapper)

    def before(name: str, event: str) -> None:
        orig: Callable[..., Any] = getattr(cls, name)

        def wrapper(self: raftwal.Snapshotter, snap: Any, *args: Any) -> Any:
            report(event, snap.metadata.index)
            return orig(self, snap, *args)

        setattr(cls, name, wrapper)

    # DiskStorage.save_snap: snapshotter.save_snap (file durable) -> WAL record
    after("save_snap", "snapfile")
    # create_snapshot: save_snap (file + WAL record) -> release_snap_dbs -> compact
    #   -> purge_snapshots -> purge_segments
    before("release_snap_dbs", "snaprecord")
    after("purge_snapshots", "snappurged")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("seed", type=int)
    ap.add_argument("--stop-at", default=None)
    args = ap.parse_args()
    stop_at = None
    if args.stop_at:
        phase, n = args.stop_at.split(":")
        assert phase in PHASES, phase
        stop_at = (phase, int(n))
    rng = random.Random(args.seed)
    report = Reporter(stop_at)
    hook_snapshot_phases(report)

    report("start")
    s = raftwal.open(args.data_dir, **OPTIONS)
    last = s.last_index()
    report("ready", f"{last} {s.snapshot().metadata.index} {int(s.recovery.repaired)}")

    next_index = last + 1
    commit = s.initial_state()[0].commit
    # Recovery made everything it read durable, but a save's entries precede
    # its HardState in the WAL, so a torn tail can keep the entries and lose
    # the commit that came with them: only what is committed may be applied.
    applied = min(last, commit)
    tail = s.wal.locked_segments()[-1]
    inflight: collections.deque[tuple[Future[None], int]] = collections.deque()
    max_inflight = rng.choice([1, 4, 16, 64, 256])

    def acked(index: int) -> None:
        nonlocal applied
        applied = index
        report("ack", index)

    def settle(block: int) -> None:
        """Report the futures that resolved, in order; wait until at most
        ``block`` are left in flight."""
        while inflight and (len(inflight) > block or inflight[0][0].done()):
            fut, index = inflight.popleft()
            fut.result(timeout=60)
            acked(index)

    while True:
        r = rng.random()
        n = 1 if rng.random() < 0.6 else rng.randint(2, 24)
        ents = [
            Entry(term=TERM, index=i, data=payload(i)) for i in range(next_index, next_index + n)
        ]
        last_new = next_index + n - 1
        hs = HardState(term=TERM, vote=1, commit=last_new)
        if r < 0.25:
            # A blocking save, possibly behind async saves still in flight.
            report("sent", last_new)
            s.save(hs, ents)
            acked(last_new)
        elif r < 0.27:
            # A commit-only HardState (the highest index sent): no sync required.
            s.save(HardState(term=TERM, vote=1, commit=commit))
            continue
        else:
            report("sent", last_new)
            inflight.append((s.save_async(hs, ents), last_new))
            report("async", last_new)
        next_index = last_new + 1
        commit = last_new
        now_tail = s.wal.locked_segments()[-1]
        if now_tail != tail:
            tail = now_tail
            report("cut", tail)
        settle(max_inflight)
        if rng.random() < 0.01:
            max_inflight = rng.choice([1, 4, 16, 64, 256])
        if s.needs_snapshot(applied):
            s.create_snapshot(applied, CONF_STATE, snapshot_data(applied))
            report("snap", applied)


if __name__ == "__main__":
    sys.exit(main())

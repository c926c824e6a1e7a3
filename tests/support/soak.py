"""Soak: several storages in one process, used the way a service uses them,
for a fixed time; afterwards the process holds what it held before.

    python tests/support/soak.py --seconds 600 --storages 8      (or: make soak)

Each storage has a writer thread (synchronous saves and bursts of
``save_async``), a snapshot thread (``create_snapshot`` at the committed
index, which compacts and purges), and reader threads calling every getter
and ``stats()``. Every few seconds one storage is closed and reopened, or
dropped without ``close()`` and reopened after a garbage collection. After
every reopen, everything acknowledged must be there with its bytes.

At the end every storage is closed and the process's descriptors, threads,
resident memory, disk usage and temporary files are compared with what they
were after a warm-up. One JSON line reports the figures; exit status 1 when
a bound was broken or an acknowledged entry was lost.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import raftwal
from raftwal import ConfState, Entry, HardState

SEGMENT_SIZE = 256 * 1024
OPTIONS: dict[str, Any] = {
    "segment_size": SEGMENT_SIZE,
    "max_wals": 2,
    "max_snapshots": 2,
    "catch_up_entries": 50,
}


def data_for(index: int, term: int) -> bytes:
    return (b"%d:%d;" % (term, index)) * (1 + index % 7)


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def disk_bytes(root: Path) -> int:
    """Bytes allocated to files under root (the storages purge meanwhile)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


def temporaries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp" in p.name)


class Node:
    """One storage and its threads."""

    def __init__(self, path: Path, rng: random.Random) -> None:
        self.path = path
        self.rng = rng
        self.storage = raftwal.open(path, **OPTIONS)
        self.acked = self.storage.last_index()
        self.term = max(1, self.storage.initial_state()[0].term)
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.saves = 0
        self.reads = 0
        self.snapshots = 0
        self.workers: list[threading.Thread] = []

    def start(self) -> None:
        self.stop.clear()
        self.workers = [
            threading.Thread(target=self._guard, args=(self._write,), daemon=True),
            threading.Thread(target=self._guard, args=(self._snapshot,), daemon=True),
            threading.Thread(target=self._guard, args=(self._read,), daemon=True),
            threading.Thread(target=self._guard, args=(self._read,), daemon=True),
        ]
        for t in self.workers:
            t.start()

    def halt(self) -> None:
        self.stop.set()
        for t in self.workers:
            t.join(timeout=60)
            if t.is_alive():
                self.errors.append(f"{self.path.name}: a worker did not stop")
        self.workers = []

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except Exception as err:  # every failure is reported, none expected
            self.errors.append(f"{self.path.name}: {type(err).__name__}: {err}")
            self.stop.set()

    def _write(self) -> None:
        s = self.storage
        while not self.stop.is_set():
            last = s.last_index()
            if self.rng.random() < 0.5:
                n = self.rng.randint(1, 20)
                ents = [
                    Entry(term=self.term, index=i, data=data_for(i, self.term))
                    for i in range(last + 1, last + n + 1)
                ]
                s.save(HardState(term=self.term, vote=1, commit=last + n), ents)
                self.acked = last + n
                self.saves += 1
            else:
                futs: list[tuple[int, Future[None]]] = []
                i = last
                for _ in range(self.rng.randint(1, 16)):
                    i += 1
                    e = Entry(term=self.term, index=i, data=data_for(i, self.term))
                    futs.append((i, s.save_async(HardState(term=self.term, vote=1, commit=i), [e])))
                for i, f in futs:
                    f.result(timeout=60)
                    self.acked = max(self.acked, i)
                    self.saves += 1

    def _snapshot(self) -> None:
        s = self.storage
        while not self.stop.wait(0.05):
            commit = s.initial_state()[0].commit
            at = min(commit, s.durable_index, s.last_index())
            if at > s.snapshot().metadata.index:
                s.create_snapshot(at, ConfState(voters=[1]), b"state at %d" % at)
                self.snapshots += 1

    def _read(self) -> None:
        s = self.storage
        while not self.stop.is_set():
            first, last = s.first_index(), s.last_index()
            if first <= last:
                lo = self.rng.randint(first, last)
                try:
                    for e in s.entries(lo, min(last, lo + 10) + 1):
                        if e.data != data_for(e.index, e.term):
                            raise AssertionError(f"entry {e.index} holds other bytes")
                except raftwal.CompactedError:
                    pass  # compacted meanwhile
            s.term(last)
            _ = s.durable_index
            s.stats()
            repr(s)
            self.reads += 1
            time.sleep(0)

    def check_log(self) -> None:
        """Everything acknowledged is there, byte for byte."""
        s = self.storage
        if s.last_index() < self.acked:
            self.errors.append(
                f"{self.path.name}: reopened at {s.last_index()}, {self.acked} acknowledged"
            )
        first, last = s.first_index(), s.last_index()
        for e in s.entries(first, last + 1) if first <= last else []:
            if e.data != data_for(e.index, e.term):
                self.errors.append(f"{self.path.name}: entry {e.index} lost its bytes")
                break

    def reopen(self, drop: bool) -> None:
        self.halt()
        if drop:
            # a service that forgets close(): collection must release it all
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                self.storage = None  # type: ignore[assignment]
                gc.collect()
        else:
            self.storage.close()
        self.storage = raftwal.open(self.path, **OPTIONS)
        self.check_log()
        self.start()


def soak(seconds: float, n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="raftwal-soak-") as tmp:
        root = Path(tmp)
        # warm-up: one round of open/save/close so imports and caches settle
        with raftwal.open(root / "warmup", **OPTIONS) as s:
            s.save(HardState(term=1, vote=1, commit=1), [Entry(term=1, index=1, data=b"w")])
        gc.collect()
        base = {"fds": fds(), "threads": threads(), "rss_kib": rss_kib()}
        nodes = [Node(root / f"n{i}", random.Random(rng.getrandbits(32))) for i in range(n)]
        for node in nodes:
            node.start()
        deadline = time.monotonic() + seconds
        reopens = drops = 0
        peak_disk = 0
        while time.monotonic() < deadline and not any(nd.errors for nd in nodes):
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            peak_disk = max(peak_disk, disk_bytes(root))
            node = rng.choice(nodes)
            drop = rng.random() < 0.4
            node.reopen(drop)
            reopens += 1
            drops += drop
        for node in nodes:
            node.halt()
            node.storage.close()
        end_disk = disk_bytes(root)
        # the last reopen of each: nothing acknowledged lost
        for node in nodes:
            node.storage = raftwal.open(node.path, recovery="strict", **OPTIONS)
            node.check_log()
            node.storage.close()
        leftovers = temporaries(root)
        errors = [e for nd in nodes for e in nd.errors]
        stats = {
            "saves": sum(nd.saves for nd in nodes),
            "reads": sum(nd.reads for nd in nodes),
            "snapshots": sum(nd.snapshots for nd in nodes),
            "acknowledged": sum(nd.acked for nd in nodes),
        }
        nodes.clear()
        gc.collect()
        time.sleep(0.2)
        after = {"fds": fds(), "threads": threads(), "rss_kib": rss_kib()}
        # per storage: at most max_wals + locked + spare segments, snapshots
        disk_bound = n * (OPTIONS["max_wals"] + 4) * SEGMENT_SIZE + n * 256 * 1024
        problems = list(errors)
        if after["fds"] > base["fds"] + 2:
            problems.append(f"descriptors {base['fds']} -> {after['fds']}")
        if after["threads"] > base["threads"]:
            problems.append(f"threads {base['threads']} -> {after['threads']}")
        if after["rss_kib"] > base["rss_kib"] + 128 * 1024:
            problems.append(f"RSS {base['rss_kib']} -> {after['rss_kib']} KiB")
        if peak_disk > disk_bound:
            problems.append(f"disk usage peaked at {peak_disk} bytes (bound {disk_bound})")
        if leftovers:
            problems.append(f"temporary files left: {leftovers[:10]}")
        return {
            "seconds": seconds,
            "storages": n,
            "reopens": reopens,
            "drops_without_close": drops,
            **stats,
            "before": base,
            "after": after,
            "peak_disk_bytes": peak_disk,
            "end_disk_bytes": end_disk,
            "problems": problems,
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--storages", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    report = soak(args.seconds, args.storages, args.seed)
    for p in report["problems"]:
        print("PROBLEM", p, file=sys.stderr)
    print(json.dumps(report))
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())

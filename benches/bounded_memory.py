"""Recovery in bounded-memory mode of a large log: peak RSS of
`raftwal.open(..., bounded_memory=True)` against the size of the log.

    python benches/bounded_memory.py [--gib 4] [--entry-size 1024] [--dir DIR]

Writes the log with raftwal (1024 entries per save), then recovers it in a
fresh process, reads a range from the middle and the last entry, and
reports that process's peak RSS (VmHWM, which, unlike ru_maxrss, does not
carry the parent's size over fork and exec) next to the log's size.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import raftwal
from raftwal import Entry, HardState

CHILD = """
import sys, time, raftwal
t = time.perf_counter()
s = raftwal.open(sys.argv[1], bounded_memory=True)
took = time.perf_counter() - t
last = s.last_index()
mid = s.entries(last // 2, last // 2 + 1000)
assert [e.index for e in mid] == list(range(last // 2, last // 2 + 1000))
assert s.entries(last, last + 1)[0].index == last
hwm = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])
print(last, hwm, took)
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=4.0)
    ap.add_argument("--entry-size", type=int, default=1024)
    ap.add_argument("--dir", default=None, help="where to write (default: a temp dir here)")
    args = ap.parse_args(argv)
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix=".raftwal-bench-", dir="."))
    d = base / "data"
    n = int(args.gib * (1 << 30)) // args.entry_size
    payload = bytes(range(256)) * (args.entry_size // 256 + 1)
    payload = payload[: args.entry_size]
    try:
        t = time.perf_counter()
        with raftwal.open(d, snapshot_count=1 << 62) as s:
            for start in range(1, n + 1, 1024):
                stop = min(n, start + 1023)
                s.save(
                    HardState(1, 1, stop),
                    [Entry(term=1, index=i, data=payload) for i in range(start, stop + 1)],
                )
        wrote = time.perf_counter() - t
        size = sum(p.stat().st_size for p in (d / "wal").iterdir() if p.suffix == ".wal")
        r = subprocess.run(
            [sys.executable, "-c", CHILD, str(d)], capture_output=True, text=True, check=True
        )
        last, rss_kib, took = r.stdout.split()
        rss_mib = int(rss_kib) / 1024
        print(
            f"log: {n:,} entries of {args.entry_size} B, {size / (1 << 30):.2f} GiB in WAL segments (written in {wrote:.1f} s)"
        )
        print(
            f"bounded-memory recovery: {float(took):.2f} s, peak RSS {rss_mib:.0f} MiB = {rss_mib * (1 << 20) / size:.3f}x the log (target < 256 MiB)"
        )
        assert int(last) == n
        return 0 if rss_mib < 256 else 1
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

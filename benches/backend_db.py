"""Backend databases of snapshots: a large database saved with
`create_snapshot(..., db=path)` and moved into place by
`raftwal.open(..., backend=path)`, each in a fresh process whose peak RSS
(VmHWM) is reported, and the time of the save next to a plain copy of the
same file (`shutil.copyfile` + fsync) measured in the same run.

    python benches/backend_db.py [--gib 2] [--dir DIR]

The source file is written with real (non-zero) bytes, so the copy reads
and writes every page.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAVE = """
import sys, time, raftwal
with raftwal.open(sys.argv[1]) as st:
    st.save(raftwal.HardState(term=1, vote=1, commit=1), [raftwal.Entry(term=1, index=1)])
    t = time.perf_counter()
    st.create_snapshot(1, raftwal.ConfState(voters=[1]), b"meta", db=sys.argv[2])
    took = time.perf_counter() - t
hwm = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])
print(hwm, took)
"""

RESTORE = """
import sys, time, raftwal
t = time.perf_counter()
with raftwal.open(sys.argv[1], backend=sys.argv[2]) as st:
    assert st.recovery.backend_restored is not None
took = time.perf_counter() - t
hwm = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])
print(hwm, took)
"""

BASELINE = """
import os, shutil, sys
hwm0 = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])
print(hwm0)
"""


def child(code: str, *args: str) -> tuple[int, float]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True
    ).stdout.split()
    return int(out[0]), float(out[1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--dir", default=None, help="where to write (default: a temp dir here)")
    args = ap.parse_args(argv)
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix=".raftwal-bench-", dir="."))
    size = int(args.gib * (1 << 30))
    src = base / "source.db"
    try:
        block = os.urandom(1 << 20)
        with open(src, "wb") as f:
            for _ in range(size // len(block)):
                f.write(block)
        # a process that only starts Python and imports nothing: the floor
        floor = int(
            subprocess.run(
                [sys.executable, "-c", BASELINE], check=True, capture_output=True, text=True
            ).stdout
        )
        t = time.perf_counter()
        copy = base / "copy.db"
        shutil.copyfile(src, copy)
        fd = os.open(copy, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        copy_s = time.perf_counter() - t
        copy.unlink()
        save_kib, save_s = child(SAVE, str(base / "data"), str(src))
        restore_kib, restore_s = child(RESTORE, str(base / "data"), str(base / "app.db"))
        assert (base / "app.db").stat().st_size == size
        gib = size / (1 << 30)
        print("| scenario | measure | raftwal | baseline | ratio |")
        print("|---|---|---:|---:|---:|")
        print(
            f"| create_snapshot(db=path), {gib:.1f} GiB | seconds vs shutil.copyfile + fsync "
            f"| {save_s:.2f} s | {copy_s:.2f} s | {save_s / copy_s:.2f}x |"
        )
        print(
            f"| create_snapshot(db=path), {gib:.1f} GiB | peak RSS of the process "
            f"(vs a bare interpreter) | {save_kib / 1024:.1f} MiB | {floor / 1024:.1f} MiB | — |"
        )
        print(
            f"| open(backend=) moving it into place | peak RSS of the process "
            f"| {restore_kib / 1024:.1f} MiB | {floor / 1024:.1f} MiB | — |"
        )
        print(f"| open(backend=) moving it into place | seconds | {restore_s:.3f} s | — | — |")
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

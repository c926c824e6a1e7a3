"""A storage left idle costs nothing, and a cut needs no new descriptor."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import raftwal
from raftwal import Entry, HardState


def _raftwal_threads() -> dict[str, int]:
    """Voluntary context switches of this process's raftwal threads, by tid."""
    out: dict[str, int] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            status = (task / "status").read_text()
        except FileNotFoundError:
            continue
        if not comm.startswith("raftwal"):
            continue
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                out[f"{comm}/{task.name}"] = int(line.split()[1])
    return out


def _wakeups_while_idle(seconds: float) -> dict[str, int]:
    before = _raftwal_threads()
    time.sleep(seconds)
    after = _raftwal_threads()
    return {k: after[k] - before[k] for k in before if k in after}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_idle_storages_do_not_wake_up(tmp_path: Path) -> None:
    storages = [raftwal.open(tmp_path / f"n{i}") for i in range(5)]
    try:
        for s in storages:
            s.save(HardState(term=1, vote=1, commit=1), [Entry(term=1, index=1, data=b"x")])
        # let the spare segments be preallocated and every thread go to sleep
        time.sleep(0.5)
        woke = _wakeups_while_idle(1.5)
        assert woke, "no raftwal threads found"
        # a thread that polls (every 200 ms before) wakes several times here
        busy = {k: n for k, n in woke.items() if n > 1}
        assert not busy, f"idle threads woke up: {busy}"
    finally:
        for s in storages:
            s.close()


CHILD = textwrap.dedent(
    """
    import os, resource, sys, time
    import raftwal
    from raftwal import Entry, HardState, WAL

    w = WAL.create(sys.argv[1], b"m", segment_size=64 * 1024)
    data = b"d" * 1000
    i = 0
    while i < 40:
        i += 1
        w.save(HardState(term=1, vote=1, commit=i), [Entry(term=1, index=i, data=data)])
    time.sleep(0.3)  # the spare segment is ready by now
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    held = []
    try:
        while True:
            held.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    cuts = w.stats()["wal_cuts_total"]
    while w.stats()["wal_cuts_total"] == cuts:
        i += 1
        w.save(HardState(term=1, vote=1, commit=i), [Entry(term=1, index=i, data=data)])
    for fd in held:
        os.close(fd)
    w.close()
    print(i)
    """
)


def test_a_cut_needs_no_new_descriptor(tmp_path: Path) -> None:
    """With every descriptor in use, a cut still completes: the writer keeps
    its directory open for the fsync after the rename."""
    wal_dir = tmp_path / "wal"
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(wal_dir)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr[-2000:]
    last = int(r.stdout.strip())
    with raftwal.WAL.open(wal_dir) as w:
        _, hs, ents = w.read_all()
    assert [e.index for e in ents] == list(range(1, last + 1))
    assert hs.commit == last
    assert len(list(wal_dir.glob("*.wal"))) == 2

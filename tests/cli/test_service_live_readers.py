"""Readers beside a live writer: every read-only path, run in a loop while
another process appends, cuts segments, snapshots and purges, reports no
damage, and what it returns is a prefix of the writer's log."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import raftwal
from raftwal import WAL

WRITER = textwrap.dedent(
    """
    import sys, time
    import raftwal
    from raftwal import ConfState, Entry, HardState

    def data(i):
        return (b"%d;" % i) * (1 + i % 9)

    end = time.monotonic() + float(sys.argv[2])
    with raftwal.open(sys.argv[1], segment_size=128 * 1024, max_wals=2, max_snapshots=2,
                      catch_up_entries=10) as s:
        i = 0
        while time.monotonic() < end:
            ents = [Entry(term=1, index=i + k, data=data(i + k)) for k in range(1, 11)]
            i += 10
            s.save(HardState(term=1, vote=1, commit=i), ents)
            if i % 1500 == 0:
                s.create_snapshot(i, ConfState(voters=[1]), b"state %d" % i)
    print(i)
    """
)


def data(i: int) -> bytes:
    return (b"%d;" % i) * (1 + i % 9)


def check_prefix(entries: list[raftwal.Entry], what: str) -> None:
    for a, b in itertools.pairwise(entries):
        assert b.index == a.index + 1, f"{what}: index {a.index} then {b.index}"
    for e in entries:
        assert e.term == 1 and e.data == data(e.index), f"{what}: entry {e.index} differs"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftwal", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.timeout(180)
def test_readers_beside_a_live_writer_see_a_prefix_and_no_damage(tmp_path: Path) -> None:
    d = tmp_path / "data"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(d), "12"], stdout=subprocess.PIPE, text=True
    )
    try:
        while not (d / "wal").is_dir():
            time.sleep(0.01)
        time.sleep(0.2)
        rounds = cli_runs = 0
        while writer.poll() is None:
            rounds += 1
            with raftwal.open(d, read_only=True) as s:
                first, last = s.first_index(), s.last_index()
                if first <= last:
                    check_prefix(s.entries(first, last + 1), "open(read_only=True)")
            snaps = raftwal.valid_snapshot_entries(d / "wal")
            try:
                w = WAL.open_for_read(d / "wal", snaps[-1] if snaps else None)
            except raftwal.WALNotFoundError:
                pass  # the snapshot's segment was purged meanwhile: legitimately gone
            else:
                with w:
                    _, _, ents = w.read_all()
                check_prefix(ents, "open_for_read")
            if rounds % 10 == 0:
                for cmd in ("verify", "inspect"):
                    r = cli(cmd, str(d))
                    cli_runs += 1
                    assert r.returncode == 0, f"{cmd} on a live directory: {r.stdout}{r.stderr}"
        out, _ = writer.communicate(timeout=60)
        assert writer.returncode == 0 and int(out) > 0
        assert rounds >= 20 and cli_runs >= 2
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.communicate()

"""The raftwal command, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from walfile import frames, segments

from etcd_fixtures import ALL, Fixture


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftwal", *args], capture_output=True, text=True, timeout=timeout
    )


def test_demo_loses_nothing(tmp_path: Path) -> None:
    r = run(
        "demo",
        "--seconds",
        "1.5",
        "--json",
        "--snapshot-count",
        "3000",
        "--data-dir",
        str(tmp_path / "d"),
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["acknowledged"] > 0
    assert rep["lost"] == 0
    assert rep["recovered_last_index"] >= rep["acknowledged"]
    assert rep["snapshot_index"] > 0 and rep["snapshots"] >= 1


@pytest.mark.parametrize("fixture", ALL, ids=[f.name for f in ALL])
def test_subcommands_on_fixtures(fixture: Fixture, tmp_path: Path) -> None:
    member = fixture.unpack(tmp_path)
    exp = fixture.expected()
    r = run("inspect", str(member), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["metadata"]["hex"] == exp["metadata_hex"]
    assert info["entries"] == len(exp["entries_from_index_1"])
    # the vote is a member ID: hex, as every 64-bit ID in --json output
    hs = info["hard_state"]
    assert [hs["term"], int(hs["vote"], 16), hs["commit"]] == exp["hard_state_term_vote_commit"]
    assert len(info["snapshots"]) == len(exp["snapshots_newest_first"])
    r = run("verify", str(member))
    assert r.returncode == 0 and "healthy" in r.stdout, r.stdout + r.stderr
    r = run("dump", str(member), "--type", "confchange", "--json")
    assert r.returncode == 0
    confs = [x["index"] for x in exp["entries_from_index_1"] if x["type"] == "EntryConfChange"]
    # JSON Lines: one entry a line
    assert [json.loads(line)["index"] for line in r.stdout.splitlines()] == confs
    r = run(
        "dump", str(tmp_path.parent / tmp_path.name / fixture.member), "--start", "5", "--end", "9"
    )
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 5
    r = run("repair", str(member))
    assert r.returncode == 0


def test_verify_and_repair_report_damage(tmp_path: Path) -> None:
    import raftwal
    from raftwal import Entry, HardState

    d = tmp_path / "data"
    with raftwal.open(d) as s:
        for i in range(1, 30):
            s.save(HardState(1, 1, i), [Entry(term=1, index=i, data=b"z" * 50)])
    tail = segments(d / "wal")[-1]
    f = [x for x in frames(tail) if x.type == 2][-1]
    import os

    os.truncate(tail, f.end - 3)  # the last entry was cut short by a crash
    r = run("verify", str(d))
    assert r.returncode == 1
    assert tail.name in r.stdout and f"offset {f.offset}" in r.stdout
    r = run("repair", str(d), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["broken_copies"] == [tail.name + ".broken"]
    assert run("verify", str(d)).returncode == 0
    # DESIGN: exit status 2 for a missing path (1 is damage)
    assert run("verify", str(tmp_path / "missing")).returncode == 2


def test_repair_salvage_mode(tmp_path: Path) -> None:
    import raftwal
    from raftwal import Entry, HardState

    d = tmp_path / "data"
    with raftwal.open(d, segment_size=1024) as s:
        for i in range(1, 80):
            s.save(HardState(1, 1, i), [Entry(term=1, index=i, data=b"w" * 40)])
    segs = segments(d / "wal")
    f = [x for x in frames(segs[1]) if x.type == 2][1]
    raw = bytearray(segs[1].read_bytes())
    raw[f.end - f.pad - 2] ^= 0x20
    segs[1].write_bytes(bytes(raw))
    assert run("verify", str(d)).returncode == 1
    # tail repair cannot mend damage before the tail: it says so (exit 1,
    # naming the file and offset) and changes nothing
    r = run("repair", str(d))
    assert r.returncode == 1 and segs[1].name in r.stderr and f"offset {f.offset}" in r.stderr
    assert run("verify", str(d)).returncode == 1
    r = run("repair", str(d), "--mode", "salvage", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["kind"] == "corrupt" and rep["damaged_offset"] == f.offset
    assert rep["moved"] == [p.name for p in segs[2:]]
    assert run("verify", str(d)).returncode == 0

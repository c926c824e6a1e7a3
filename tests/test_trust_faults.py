"""The DurableStorage model under injected failures (the failpoints build):
a seeded run of tests/trust_model_child.py in a child process, with EIO or
ENOSPC injected on a write, an fsync, a cut step or a snapshot record.
The failure must reach the caller, poison the storage (the next save
raises WALPoisonedError), leave memory as the last acknowledged call left
it, and a strict reopen must hold exactly the acknowledged state, or the
failed call's effect in full (a failed fsync may leave its bytes on disk),
never anything else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from failpoint_build import child_env
from trust_model_child import OPTS

import raftwal

CHILD = Path(__file__).parent / "trust_model_child.py"

CASES = [
    ("write_before", 7, 1),
    ("write_before", 23, 2),
    ("write_after", 11, 3),
    ("fsync_before", 9, 4),
    ("fsync_before", 30, 5),
    ("fsync_after", 14, 6),
    ("cut_before_rename", 2, 7),
    ("cut_after_rename", 3, 8),
    ("preallocate", 3, 9),
    ("snapshot_before_record", 2, 10),  # in a leader's snapshot
    ("snapshot_before_record", 5, 13),  # in create_snapshot
    ("dirsync_before", 3, 11),
]


def reopened(d: Path) -> dict[str, Any]:
    with raftwal.open(d, recovery="strict", **OPTS) as s:
        assert not s.recovery.repaired
        hs, cs = s.initial_state()
        snap = s.snapshot()
        md = snap.metadata
        first, last = s.first_index(), s.last_index()
        assert first == md.index + 1
        return {
            "hs": [hs.term, hs.vote, hs.commit],
            "snap": [md.index, md.term, (snap.data or b"").hex(), list(cs.voters)],
            "entries": [
                [e.index, e.term, int(e.type), (e.data or b"").hex()]
                for e in (s.entries(first, last + 1) if last >= first else [])
            ],
        }


@pytest.mark.timeout(300)
@pytest.mark.parametrize("err", ["eio", "enospc"])
@pytest.mark.parametrize(("site", "nth", "seed"), CASES, ids=[f"{s}@{n}" for s, n, _ in CASES])
def test_injected_failure_keeps_the_acknowledged_state(
    tmp_path: Path, site: str, nth: int, seed: int, err: str
) -> None:
    d = tmp_path / "data"
    r = subprocess.run(
        [sys.executable, str(CHILD), str(d), str(seed), "80"],
        env=child_env(RAFTWAL_FAILPOINTS=f"{site}={err}@{nth}"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    errors = [e for e in events if "error" in e]
    assert errors, f"{site}@{nth} was never reached"
    if not any("ack" in e for e in events):
        return  # the very first open failed: nothing was promised
    acked: dict[str, Any] = {}
    maybes: list[dict[str, Any]] = []
    for ev in events:
        if "op" in ev:
            maybes = []
        elif "maybe" in ev:
            maybes.append(ev["maybe"])
        elif "ack" in ev:
            acked = ev["ack"]
            # a stream acknowledges its saves one by one: the ones before are settled
            if acked in maybes:
                maybes = maybes[maybes.index(acked) + 1 :]
        elif "error" in ev:
            break
    after = [e["after"] for e in events if "after" in e]
    assert after == ["WALPoisonedError"], events[-4:]
    mem = next(e["mem"] for e in events if "mem" in e)
    # memory is as the last acknowledged call left it
    assert mem["hs"] == acked["hs"] and mem["snap"] == acked["snap"]
    last = acked["entries"][-1][0] if acked["entries"] else acked["snap"][0]
    assert mem["last"] == last
    first = mem["entries"][0][0] if mem["entries"] else last + 1
    lo = max(first, acked["snap"][0] + 1)
    assert [x for x in mem["entries"] if x[0] >= lo] == [x for x in acked["entries"] if x[0] >= lo]
    got = reopened(d)
    assert got == acked or got in maybes, (got, acked, maybes)

"""The DurableStorage model under injected failures (the failpoints build):
a seeded run of tests/support/trust_model_child.py in a child process, with EIO or
ENOSPC injected on a write, an fsync, a cut step or a snapshot record.
The failure must reach the caller, poison the storage (the next save
raises WALPoisonedError), leave memory as the last acknowledged call left
it, and a strict reopen must hold the acknowledged state, or the failed
call's effect (a failed fsync may leave its bytes on disk; a save split
over several writes may leave a prefix of its records), never anything
else. The same with the process killed (or a write torn) at those points."""

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

CHILD = Path(__file__).resolve().parents[1] / "support" / "trust_model_child.py"

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


def reopened(d: Path, recovery: str = "strict") -> dict[str, Any]:
    with raftwal.open(d, recovery=recovery, **OPTS) as s:
        assert recovery != "strict" or not s.recovery.repaired
        hs, cs = s.initial_state()
        snap = s.snapshot()
        md = snap.metadata
        first, last = s.first_index(), s.last_index()
        assert first == md.index + 1
        return {
            "hs": [hs.term, hs.vote, hs.commit],
            "snap": [md.index, md.term, snap.data.hex(), list(cs.voters)],
            "entries": [
                [e.index, e.term, int(e.type), e.data.hex()]
                for e in (s.entries(first, last + 1) if last >= first else [])
            ],
        }


def run_child(d: Path, spec: str, seed: int) -> tuple[int, list[dict[str, Any]]]:
    r = subprocess.run(
        [sys.executable, str(CHILD), str(d), str(seed), "80"],
        env=child_env(RAFTWAL_FAILPOINTS=spec),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, [json.loads(line) for line in r.stdout.splitlines()]


def promised(events: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The last acknowledged state, and the states the call in progress
    would leave (any of them may be on disk)."""
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
    return acked, maybes


def assert_holds(got: dict[str, Any], acked: dict[str, Any], maybes: list[dict[str, Any]]) -> None:
    """``got`` (a reopened directory) is the acknowledged state, or what the
    call in progress would leave, or on the way between them: the process
    stopped between the writes of one save, so a prefix of its records is
    on disk. Everything there was saved by some call; nothing acknowledged
    is lost unless the save in progress replaced it."""
    if got == acked or got in maybes:
        return
    states = [acked, *maybes]
    assert got["hs"] in [x["hs"] for x in states], (got, states)
    assert got["snap"] in [x["snap"] for x in states], (got, states)
    known = {tuple(e) for x in states for e in x["entries"]}
    assert all(tuple(e) in known for e in got["entries"]), (got, states)
    last = got["entries"][-1][0] if got["entries"] else got["snap"][0]
    assert last >= min(x["entries"][-1][0] if x["entries"] else x["snap"][0] for x in states)
    was = {e[0]: tuple(e) for e in acked["entries"]}
    replaced = {e[0] for x in maybes for e in x["entries"] if was.get(e[0]) != tuple(e)}
    have = {e[0]: tuple(e) for e in got["entries"]}
    for e in acked["entries"]:
        if e[0] > got["snap"][0]:  # a newer snapshot covers the ones below
            assert have.get(e[0]) == tuple(e) or e[0] in replaced, (e, got)


KILLS = [
    ("write_before=kill@15", 1),
    ("write_before=tear@12", 2),
    ("fsync_after=kill@10", 3),
    ("cut_before_rename=kill@2", 7),
    ("cut_after_rename=kill@3", 8),
    ("snapshot_before_record=kill@5", 13),
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("spec", "seed"), KILLS, ids=[k for k, _ in KILLS])
def test_killed_mid_call_keeps_the_acknowledged_state(tmp_path: Path, spec: str, seed: int) -> None:
    d = tmp_path / "data"
    rc, events = run_child(d, spec, seed)
    assert rc == -9, events[-3:]
    acked, maybes = promised(events)
    if not acked:
        return  # killed while creating: nothing was promised
    # a torn write is repaired by the default mode; nothing else needs repair
    got = reopened(d, "tolerate-tail" if "tear" in spec else "strict")
    assert_holds(got, acked, maybes)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("err", ["eio", "enospc"])
@pytest.mark.parametrize(("site", "nth", "seed"), CASES, ids=[f"{s}@{n}" for s, n, _ in CASES])
def test_injected_failure_keeps_the_acknowledged_state(
    tmp_path: Path, site: str, nth: int, seed: int, err: str
) -> None:
    d = tmp_path / "data"
    rc, events = run_child(d, f"{site}={err}@{nth}", seed)
    assert rc == 0
    errors = [e for e in events if "error" in e]
    assert errors, f"{site}@{nth} was never reached"
    if not any("ack" in e for e in events):
        return  # the very first open failed: nothing was promised
    acked, maybes = promised(events)
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
    assert_holds(reopened(d), acked, maybes)

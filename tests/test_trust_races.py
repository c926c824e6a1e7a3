"""Threads, processes, paths and event loops against one data directory.

Scenarios that can hang run in a child interpreter with a timeout, so a
deadlock fails the test instead of stopping the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import raftwal
from raftwal import ConfState, Entry, HardState


def _run(script: str, *args: str, timeout: float = 240) -> Any:
    """Run `script` in a fresh interpreter; its last stdout line is JSON."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the scenario hung (no exit within {timeout} s): {exc.stderr!r}")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- paths -------------------------------------------------------------------


def test_a_non_utf8_data_directory_keeps_its_name(tmp_path: Path) -> None:
    """Paths travel as bytes: the WAL lands inside the directory that was
    named, and the directory reopens."""
    raw = os.fsencode(tmp_path) + b"/node\xff"
    node = os.fsdecode(raw)
    with raftwal.open(node, segment_size=4096) as s:
        for i in range(1, 41):
            s.save(HardState(1, 1, i - 1), [Entry(term=1, index=i, data=b"x" * 200)])
        s.create_snapshot(20, ConfState(voters=[1]), b"state")
        assert os.fsencode(s.wal.dirpath) == raw + b"/wal"
    assert sorted(os.listdir(os.fsencode(tmp_path))) == [b"node\xff"]
    assert sorted(os.listdir(raw)) == [b"snap", b"wal"]
    with raftwal.open(node, recovery="strict") as s:
        assert s.last_index() == 40
        assert s.snapshot().metadata.index == 20
    # The module-level helpers and WAL.create take the same paths.
    wal_dir = os.path.join(node, "wal")
    assert raftwal.wal_exists(wal_dir)
    assert raftwal.verify(wal_dir).commit == 39
    w2 = os.fsdecode(raw + b"/other\xfe\xff")
    with raftwal.WAL.create(Path(w2), b"m") as w:
        w.save(HardState(1, 1, 0), [Entry(term=1, index=1)])
    assert b"other\xfe\xff" in os.listdir(raw)
    assert not [n for n in os.listdir(raw) if n.endswith(b".tmp")]
    with raftwal.WAL.open_for_read(w2) as r:
        assert [e.index for e in r.read_all()[2]] == [1]
    with pytest.raises(FileExistsError):
        raftwal.WAL.create(w2)


# --- two creators ------------------------------------------------------------

_CREATE_RACE = r"""
import json, os, sys, time
import raftwal
from raftwal import Entry, HardState

base, trials = sys.argv[1], int(sys.argv[2])
SAVES = 4

def child(me, node, go_r, done_dir):
    os.read(go_r, 1)
    out = os.path.join(done_dir, str(me))
    try:
        s = raftwal.open(node, segment_size=8192)
    except raftwal.Error as exc:
        res = {"error": type(exc).__name__}
    except BaseException as exc:
        res = {"error": type(exc).__name__, "detail": str(exc)}
    else:
        acked = []
        try:
            for i in range(1, SAVES + 1):
                data = b"%d-%d" % (me, i) + b"." * 3000
                s.save(HardState(1, me, i - 1), [Entry(term=1, index=i, data=data)])
                acked.append(i)
        except BaseException as exc:
            res = {"acked": acked, "save_error": repr(exc)}
        else:
            res = {"acked": acked}
        # Stay open until the other creator has tried, so that it cannot
        # simply open a closed directory afterwards.
        other = os.path.join(done_dir, str(1 - me))
        t0 = time.monotonic()
        while not os.path.exists(other) and time.monotonic() - t0 < 60:
            time.sleep(0.002)
        s.close()
    with open(out + ".part", "w") as f:
        json.dump(res, f)
    os.rename(out + ".part", out)
    os._exit(0)

results = []
for t in range(trials):
    node = os.path.join(base, "t%d" % t, "node")
    done_dir = os.path.join(base, "done%d" % t)
    os.makedirs(done_dir)
    go_r, go_w = os.pipe()
    pids = []
    for me in (0, 1):
        pid = os.fork()
        if pid == 0:
            child(me, node, go_r, done_dir)
        pids.append(pid)
    os.write(go_w, b"gg")
    for pid in pids:
        os.waitpid(pid, 0)
    os.close(go_r)
    os.close(go_w)
    got = [json.load(open(os.path.join(done_dir, str(me)))) for me in (0, 1)]
    try:
        with raftwal.open(node, recovery="strict") as s:
            ents = s.entries(s.first_index(), s.last_index() + 1) if s.last_index() else []
            log = [(e.index, e.data[:8].split(b".")[0].decode()) for e in ents]
    except Exception as exc:
        log = "reopen failed: %r" % exc
    leftover = sorted(os.listdir(os.path.dirname(node + "/wal")))
    results.append({"children": got, "log": log, "node": leftover})
print(json.dumps(results))
"""


@pytest.mark.timeout(600)
def test_two_processes_creating_one_directory_lose_nothing(tmp_path: Path) -> None:
    trials = 50
    results = _run(_CREATE_RACE, str(tmp_path), str(trials), timeout=540)
    assert len(results) == trials
    for k, r in enumerate(results):
        children, log = r["children"], r["log"]
        assert isinstance(log, list), (k, r)
        assert r["node"] == ["snap", "wal"], (k, r)  # no temporary left behind
        winners = [me for me, c in enumerate(children) if c.get("acked")]
        assert len(winners) <= 1, (k, r)
        for me, c in enumerate(children):
            if me not in winners:
                assert c.get("error") == "WALLockedError", (k, r)
        # Whatever a creator acknowledged is in the directory, as written.
        for me in winners:
            want = [[i, f"{me}-{i}"] for i in children[me]["acked"]]
            assert log[: len(want)] == want, (k, r)
        assert len(winners) == 1, (k, r)

"""The contract of the ``raftwal`` command (README, "The command"): every
subcommand x every kind of path x human and ``--json`` output gives the
documented exit status, and with ``--json`` stdout holds nothing but the
document (``dump``: JSON Lines), with ``schema_version``, on success and on
failure alike."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from walfile import frames, segments

import raftwal
from raftwal import ConfState, Entry, HardState

TIMEOUT = 60
MEMBER_ID = 0xE1A5_2F3B_9C4D_7A61  # above 2**53: a float (jq) would round it

STATES = ["healthy", "torn", "damaged", "missing", "file", "empty"]

# the exit status for each subcommand on each state (0 healthy or repaired,
# 1 damage found, 2 usage error / missing path / not a WAL directory);
# dump, a reader, ends at a torn tail as etcd's reader does (a live
# writer's last record looks the same): verify is what says it is damage
EXPECTED: dict[str, dict[str, int]] = {
    "inspect": {"healthy": 0, "torn": 1, "damaged": 1, "missing": 2, "file": 2, "empty": 2},
    "dump": {"healthy": 0, "torn": 0, "damaged": 1, "missing": 2, "file": 2, "empty": 2},
    "verify": {"healthy": 0, "torn": 1, "damaged": 1, "missing": 2, "file": 2, "empty": 2},
    "repair": {"healthy": 0, "torn": 0, "damaged": 1, "missing": 2, "file": 2, "empty": 2},
}


def run(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftwal", *args], capture_output=True, text=True, timeout=timeout
    )


def _build(d: Path, n: int) -> None:
    with raftwal.open(d, segment_size=64 * 1024, snapshot_count=1_000_000) as s:
        s.save(HardState(term=2, vote=MEMBER_ID, commit=0), [])
        batch = [Entry(term=2, index=i, data=b"x" * 100) for i in range(1, n + 1)]
        for lo in range(0, n - 10, 500):
            s.save(HardState(term=2, vote=MEMBER_ID, commit=lo), batch[lo : min(lo + 500, n - 10)])
        s.create_snapshot(n // 2, ConfState(voters=[MEMBER_ID]), b"state")
        # the last entries after the snapshot record: the tail a crash tears
        s.save(HardState(term=2, vote=MEMBER_ID, commit=n - 10), batch[n - 10 :])


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One directory of each state, built once for the module (read-only
    commands use them as they are; ``repair`` works on a copy)."""
    root = tmp_path_factory.mktemp("states")
    healthy = root / "healthy"
    _build(healthy, 3000)
    torn = root / "torn"
    shutil.copytree(healthy, torn)
    tail = segments(torn / "wal")[-1]
    last = [f for f in frames(tail) if f.type == 2][-1]
    os.truncate(tail, last.end - 3)  # the last entry cut short by a crash
    damaged = root / "damaged"
    shutil.copytree(healthy, damaged)
    first = segments(damaged / "wal")[0]
    f = [f for f in frames(first) if f.type == 2][3]
    raw = bytearray(first.read_bytes())
    raw[f.end - f.pad - 2] ^= 0x01  # one bit, early in the log
    first.write_bytes(bytes(raw))
    (root / "file").write_text("not a WAL\n")
    (root / "empty").mkdir()
    return {
        "healthy": healthy,
        "torn": torn,
        "damaged": damaged,
        "missing": root / "missing",
        "file": root / "file",
        "empty": root / "empty",
    }


def _documents(cmd: str, stdout: str) -> list[dict[str, Any]]:
    """The JSON documents on stdout: exactly one, or (``dump``) one a line;
    anything else on stdout fails the parse."""
    if cmd == "dump":
        docs = [json.loads(line) for line in stdout.splitlines()]
    else:
        docs = [json.loads(stdout)]
    assert docs, "no document on stdout"
    for doc in docs:
        assert doc["schema_version"] == 1, doc
    return docs


def _hard_states(doc: Any) -> list[dict[str, Any]]:
    """Every ``hard_state`` in a document, however deep."""
    found: list[dict[str, Any]] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k == "hard_state" and v is not None:
                found.append(v)
            found.extend(_hard_states(v))
    elif isinstance(doc, list):
        for v in doc:
            found.extend(_hard_states(v))
    return found


@pytest.mark.parametrize("json_out", [False, True], ids=["human", "json"])
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("cmd", list(EXPECTED))
def test_exit_status_and_output(
    cmd: str, state: str, json_out: bool, dirs: dict[str, Path], tmp_path: Path
) -> None:
    path = dirs[state]
    if cmd == "repair" and path.is_dir():
        path = tmp_path / state
        shutil.copytree(dirs[state], path)
    r = run(cmd, str(path), *(["--json"] if json_out else []))
    want = EXPECTED[cmd][state]
    assert r.returncode == want, (r.stdout[-2000:], r.stderr)
    assert "Traceback" not in r.stderr
    if want == 2:
        assert cmd in r.stderr and str(path) in r.stderr
    if not json_out:
        if want == 2:
            assert r.stdout == ""
        return
    docs = _documents(cmd, r.stdout)
    if want == 2 or "error" in docs[0]:
        # a failure that leaves no report is an error document
        assert len(docs) == 1 and docs[0]["error"]["exit_status"] == want, docs
        assert want == 2 or cmd in ("inspect", "dump"), docs
        return
    doc = docs[0]
    if cmd == "dump":
        indexes = [d["index"] for d in docs]
        assert indexes == list(range(1, 3001 if state == "healthy" else len(indexes) + 1))
        assert len(indexes) >= 2990
        assert set(doc) == {"schema_version", "term", "index", "type", "data"}
        return
    assert doc["healthy"] is (want == 0)
    assert bool(doc["problems"]) is (want == 1)
    for hs in _hard_states(doc):
        assert set(hs) == {"term", "vote", "commit"} and hs["vote"] == f"{MEMBER_ID:x}", hs
    if cmd == "repair":
        assert doc["repaired"] is (state == "torn")
    if cmd == "inspect":
        assert doc["snapshots"][0]["voters"] == [f"{MEMBER_ID:x}"]


def test_repair_modes_report_the_same_keys(dirs: dict[str, Path], tmp_path: Path) -> None:
    keys = []
    for mode in ("tail", "salvage"):
        for state in ("healthy", "torn", "damaged"):
            d = tmp_path / f"{mode}-{state}"
            shutil.copytree(dirs[state], d)
            r = run("repair", str(d), "--mode", mode, "--json")
            doc = json.loads(r.stdout)
            keys.append(set(doc))
            # salvage repairs any damage; tail only a torn tail
            repaired = state == "torn" or (mode == "salvage" and state == "damaged")
            assert doc["repaired"] is repaired, (mode, state, doc)
            assert r.returncode == (1 if state == "damaged" and mode == "tail" else 0), doc
    assert all(k == keys[0] for k in keys), keys


@pytest.mark.parametrize("json_out", [False, True], ids=["human", "json"])
@pytest.mark.parametrize("state", ["missing", "file", "empty"])
def test_diskcheck(state: str, json_out: bool, dirs: dict[str, Path]) -> None:
    args = ["diskcheck", str(dirs[state]), "--seconds", "0.2", "--no-wal"]
    r = run(*args, *(["--json"] if json_out else []))
    if state != "empty":
        assert r.returncode == 2 and not dirs["missing"].exists(), r.stderr
    else:
        assert r.returncode in (0, 1), r.stderr  # 1: this disk is too slow
    if json_out:
        (doc,) = _documents("diskcheck", r.stdout)
        if state == "empty":
            assert r.returncode == (0 if doc["verdict"]["ok"] else 1)
        else:
            assert doc["error"]["exit_status"] == 2
    elif r.returncode == 2:
        assert r.stdout == ""


@pytest.mark.parametrize("json_out", [False, True], ids=["human", "json"])
@pytest.mark.parametrize("state", ["missing", "file", "empty"])
def test_demo(state: str, json_out: bool, dirs: dict[str, Path], tmp_path: Path) -> None:
    d = tmp_path / "d" if state != "file" else dirs["file"]
    if state == "empty":
        d.mkdir()
    args = ["demo", "--seconds", "0.3", "--data-dir", str(d)]
    r = run(*args, *(["--json"] if json_out else []))
    assert r.returncode == (2 if state == "file" else 0), r.stderr
    if json_out:
        (doc,) = _documents("demo", r.stdout)
        if state == "file":
            assert doc["error"]["exit_status"] == 2
        else:
            assert doc["lost"] == 0 and doc["data_dir"] == str(d)


def test_demo_does_not_report_the_directory_it_deleted() -> None:
    r = run("demo", "--seconds", "0.3", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["data_dir"] is None


def test_bench_usage_error_is_a_document() -> None:
    r = run("bench", "--batches", "0", "--json")
    assert r.returncode == 2
    (doc,) = _documents("bench", r.stdout)
    assert doc["error"]["exit_status"] == 2


@pytest.mark.parametrize(
    "args",
    [["bogus", "--json"], ["verify", "--json"], ["dump", "x", "--start", "nope", "--json"]],
    ids=["unknown-command", "no-dir", "bad-int"],
)
def test_usage_errors_exit_2_with_a_document(args: list[str]) -> None:
    r = run(*args)
    assert r.returncode == 2, r.stderr
    (doc,) = _documents("x", r.stdout)
    assert doc["error"]["type"] == "UsageError"
    assert r.stderr.strip()


def test_usage_error_without_json_prints_nothing_on_stdout() -> None:
    r = run("verify")
    assert r.returncode == 2 and r.stdout == "" and "raftwal" in r.stderr


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"raftwal {raftwal.__version__}"


@pytest.mark.parametrize("json_out", [False, True], ids=["human", "json"])
def test_a_closed_pipe_exits_quietly(json_out: bool, dirs: dict[str, Path]) -> None:
    """``raftwal dump DIR | head -1``: no traceback, exit 0 or 141."""
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "raftwal",
            "dump",
            str(dirs["healthy"]),
            *(["--json"] if json_out else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stderr is not None
    p.stdout.readline()
    p.stdout.close()  # the reader goes away with ~3000 lines still to come
    err = p.stderr.read().decode()
    p.stderr.close()
    rc = p.wait(timeout=TIMEOUT)
    assert rc == 141 and err == "", err


def test_human_output_prints_ids_in_hex(dirs: dict[str, Path]) -> None:
    r = run("inspect", str(dirs["healthy"]))
    assert r.returncode == 0, r.stderr
    assert f"{MEMBER_ID:x}" in r.stdout and str(MEMBER_ID) not in r.stdout

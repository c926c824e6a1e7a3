"""Only a writer writes, and the tools tell the truth.

* ``verify``, ``inspect``, ``dump``, ``raftwal.open(..., read_only=True)`` and
  ``WAL.open_for_read`` change nothing: every name, mode and byte of a
  damaged data directory and of a live etcd member directory is the same
  afterwards;
* a writer renames or deletes nothing before it holds the WAL's lock, and
  reports what it renamed or deleted; ``strict`` refuses an unreadable
  ``.snap`` instead of falling back to an older one;
* ``repair`` says success only when the WAL then verifies, and names the
  damage it cannot repair; ``repair --mode salvage`` cuts an index gap;
* ``verify`` reads a WAL whose old segments were purged from where recovery
  starts;
* a FIFO named like a segment or a snapshot is refused, never waited on;
* every single-bit flip of a ``.snap`` file is an error or the original.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from dirtree import tree
from walfile import append_records, frames, segments

import raftwal
from raftwal import WAL, ConfState, Entry, HardState, Snapshotter
from raftwal.snap import snap_file_name

from etcd_fixtures import ALL, Fixture

LIVE_COPY = next(f for f in ALL if f.name == "live-copy")
TIMEOUT = 60


def run(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftwal", *args], capture_output=True, text=True, timeout=timeout
    )


def run_py(code: str, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter (so that a call that would block
    forever fails the test through the timeout instead of hanging it)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def beside_writer(d: Path) -> dict[str, tuple[int, int, str]]:
    """``tree(d)`` less the spare segment (``wal/*.tmp``) that a live writer
    prepares in the background whenever it likes."""
    return {k: v for k, v in tree(d).items() if not (k.startswith("wal/") and k.endswith(".tmp"))}


def flip(path: Path, pos: int, mask: int = 0x01) -> None:
    raw = bytearray(path.read_bytes())
    raw[pos] ^= mask
    path.write_bytes(bytes(raw))


def build(d: Path, n: int = 25, **kw: Any) -> list[Entry]:
    """A data directory with entries 1..n, snapshots at 10 and 15."""
    ents = [Entry(term=1, index=i, data=f"entry {i}".encode() * 3) for i in range(1, n + 1)]
    with raftwal.open(d, **kw) as s:
        for e in ents:
            s.save(HardState(term=1, vote=1, commit=e.index), [e])
            if e.index in (10, 15):
                s.create_snapshot(e.index, ConfState(voters=[1]), f"state at {e.index}".encode())
    return ents


def damage(d: Path) -> dict[str, Any]:
    """A torn WAL tail, an unreadable newest ``.snap`` and a ``db.tmp``
    left by an interrupted transfer; returns where each one is."""
    snap = d / "snap" / snap_file_name(1, 15)
    flip(snap, len(snap.read_bytes()) // 2)
    dbtmp = d / "snap" / "db.tmp.1234"
    dbtmp.write_bytes(b"half of a database transfer")
    tail = segments(d / "wal")[-1]
    last = frames(tail)[-1]
    os.truncate(tail, last.end - 3)
    return {"snap": snap, "dbtmp": dbtmp, "tail": tail, "offset": last.offset}


def state(s: raftwal.DurableStorage) -> tuple[Any, ...]:
    hs, cs = s.initial_state()
    snap = s.snapshot()
    lo, hi = s.first_index(), s.last_index()
    return (
        (hs.term, hs.vote, hs.commit),
        cs.SerializeToString(),
        snap.SerializeToString(),
        [e.SerializeToString() for e in s.entries(lo, hi + 1)] if hi >= lo else [],
    )


# --- read-only means read-only --------------------------------------------------------


def read_only_calls(d: Path, wal_dir: Path) -> dict[str, Any]:
    """Every read-only tool and call on ``d``; returns what they said."""
    said: dict[str, Any] = {}
    for cmd in ("verify", "inspect", "dump"):
        for extra in ((), ("--json",)):
            r = run(cmd, str(d), *extra)
            assert "Traceback" not in r.stderr, r.stderr
            said[" ".join((cmd, *extra))] = r
    said["verify again"] = run("verify", str(d))
    for mode in ("strict", "tolerate-tail", "salvage"):
        try:
            with raftwal.open(d, recovery=mode, read_only=True) as s:
                said[f"open {mode}"] = (state(s), s.recovery)
        except raftwal.Error as exc:
            said[f"open {mode}"] = exc
    try:
        with WAL.open_for_read(wal_dir) as w:
            said["open_for_read"] = w.read_all()
    except raftwal.Error as exc:
        said["open_for_read"] = exc
    return said


def test_read_only_tools_change_nothing_on_a_damaged_directory(tmp_path: Path) -> None:
    d = tmp_path / "data"
    build(d)
    where = damage(d)
    before = tree(d)
    said = read_only_calls(d, d / "wal")
    assert tree(d) == before
    # the damage is reported, every time: verify did not "fix" it by renaming
    for key in ("verify", "verify again", "verify --json", "inspect", "inspect --json"):
        r = said[key]
        assert r.returncode == 1, (key, r.stdout, r.stderr)
        assert where["snap"].name in r.stdout, (key, r.stdout)
        assert where["tail"].name in r.stdout and f"offset {where['offset']}" in r.stdout, key
    assert json.loads(said["verify --json"].stdout)["healthy"] is False
    inspected = json.loads(said["inspect --json"].stdout)
    assert inspected["problems"] and inspected["schema_version"] == 1
    # and what a restart would recover, found with raftwal.open(read_only=True)
    assert inspected["recovery"]["unreadable_snapshots"] == [where["snap"].name]
    assert inspected["recovery"]["snapshot_index"] == 10
    # strict refuses the unreadable snapshot; the others pass over it and say so
    assert isinstance(said["open strict"], raftwal.CorruptionError)
    assert where["snap"].name in str(said["open strict"])
    _, report = said["open tolerate-tail"]
    assert [n for n, _ in report.broken_snapshots] == [where["snap"].name]
    assert report.quarantined == [] and report.removed == []


@pytest.mark.parametrize(
    ("fixture", "in_flight"),
    [(LIVE_COPY, False)] + [(f, True) for f in ALL],
    ids=["live-copy-as-is"] + [f"{f.name}-db-transfer-in-flight" for f in ALL],
)
def test_read_only_tools_change_nothing_on_a_live_etcd_member(
    tmp_path: Path, fixture: Fixture, in_flight: bool
) -> None:
    member = fixture.unpack(tmp_path)
    if in_flight:  # etcd is receiving a snapshot's database right now
        (member / "snap" / "db.tmp.4242").write_bytes(b"x" * 10_000)
    if fixture is LIVE_COPY:
        assert any(p.suffix == ".tmp" for p in (member / "wal").iterdir())
    before = tree(tmp_path)
    said = read_only_calls(member, member / "wal")
    assert tree(tmp_path) == before
    for key in ("verify", "verify again", "inspect", "dump", "dump --json", "verify --json"):
        assert said[key].returncode == 0, (key, said[key].stdout, said[key].stderr)
    exp = fixture.expected()
    for mode in ("strict", "tolerate-tail", "salvage"):
        st, report = said[f"open {mode}"]
        assert st[0] == tuple(exp["hard_state_term_vote_commit"]), mode
        assert report.broken_snapshots == [] and report.quarantined == []


@pytest.mark.interop
@pytest.mark.timeout(300)
def test_read_only_tools_change_nothing_beside_a_running_etcd(tmp_path: Path) -> None:
    """The same calls on the member directory of an etcd 3.4 server that is
    running (holding its WAL locks) and idle: its WAL and .snap files stay
    byte for byte what they were, and what the calls read is healthy."""
    import time

    from etcd_server import EtcdServer, require_etcd34

    bins = require_etcd34()
    data = tmp_path / "etcd"
    with EtcdServer(bins, data, tmp_path / "etcd.log", snapshot_count=20) as srv:
        for i in range(45):
            srv.put(f"key-{i}", f"value-{i}".encode())
        member = data / "member"

        def files() -> dict[str, tuple[int, int, str]]:
            # the WAL and the .snap files (not bbolt's db, which etcd owns)
            return {k: v for k, v in tree(member).items() if k.startswith(("wal/", "snap/0"))}

        before = files()
        for _ in range(100):  # until etcd's own writes have settled
            time.sleep(0.2)
            now, before = before, files()
            if now == before:
                break
        assert any(k.endswith(".snap") for k in before)
        said = read_only_calls(member, member / "wal")
        assert files() == before
        for key in ("verify", "verify --json", "inspect", "dump"):
            assert said[key].returncode == 0, (key, said[key].stdout, said[key].stderr)
        st, report = said["open strict"]
        assert st[0][2] >= 45 and report.snapshot_index > 0
        srv.stop()


def test_a_writer_refused_the_lock_changes_nothing(tmp_path: Path) -> None:
    d = tmp_path / "data"
    build(d)
    with raftwal.open(d):
        # a newer, unreadable .snap and a transfer leftover appear meanwhile
        (d / "snap" / snap_file_name(9, 99)).write_bytes(b"\x00garbage")
        (d / "snap" / "db.tmp.77").write_bytes(b"in flight")
        before = beside_writer(d)
        for mode in ("strict", "tolerate-tail", "salvage"):
            with pytest.raises(raftwal.Error) as info:
                raftwal.open(d, recovery=mode).close()
            if mode != "strict":
                assert isinstance(info.value, raftwal.WALLockedError)
            assert beside_writer(d) == before, mode


def test_strict_refuses_an_unreadable_snapshot_instead_of_falling_back(tmp_path: Path) -> None:
    d = tmp_path / "data"
    build(d)
    bad = d / "snap" / snap_file_name(1, 15)
    flip(bad, 5)
    before = tree(d)
    with pytest.raises(raftwal.CorruptionError, match=bad.name):
        raftwal.open(d, recovery="strict")
    assert tree(d) == before


def test_tolerate_tail_quarantines_after_the_lock_and_reports_it(tmp_path: Path) -> None:
    d = tmp_path / "data"
    ents = build(d)
    where = damage(d)
    damaged_snap = where["snap"].read_bytes()
    with raftwal.open(d) as s:
        rep = s.recovery
        assert rep.quarantined == [str(where["snap"]) + ".broken"]
        assert rep.removed == [str(where["dbtmp"])]
        assert [n for n, _ in rep.broken_snapshots] == [where["snap"].name]
        assert rep.repaired and rep.snapshot_index == 10
        got = s.entries(11, s.last_index() + 1)
        assert len(got) >= 14 and got == ents[10 : 10 + len(got)]
    assert not where["snap"].exists() and not where["dbtmp"].exists()
    assert Path(rep.quarantined[0]).read_bytes() == damaged_snap


def test_read_only_open(tmp_path: Path) -> None:
    d = tmp_path / "data"
    build(d)
    with raftwal.open(d) as writer:
        expected = state(writer)
        # no lock taken, none needed: it reads beside the writer
        with raftwal.open(d, read_only=True) as s:
            assert state(s) == expected
            assert isinstance(s, raftwal.DurableStorage)
            before = beside_writer(d)
            with pytest.raises(raftwal.Error):
                s.save(HardState(1, 1, 26), [Entry(term=1, index=26)])
            with pytest.raises(raftwal.Error):
                s.save_async(HardState(1, 1, 26), [Entry(term=1, index=26)])
            with pytest.raises(raftwal.Error):
                s.create_snapshot(20, ConfState(voters=[1]), b"x")
            assert state(s) == expected and beside_writer(d) == before
    with raftwal.open(d, read_only=True, bounded_memory=True) as s:
        assert state(s) == expected
    missing = tmp_path / "missing"
    with pytest.raises(raftwal.WALNotFoundError):
        raftwal.open(missing, read_only=True)
    assert not missing.exists()


# --- repair tells the truth ----------------------------------------------------------------


def test_repair_names_damage_it_cannot_repair(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with raftwal.open(d, segment_size=1024) as s:
        for i in range(1, 60):
            s.save(HardState(1, 1, i), [Entry(term=1, index=i, data=b"r" * 40)])
    segs = segments(d / "wal")
    assert len(segs) > 2
    f = [x for x in frames(segs[1]) if x.type == 2][1]
    flip(segs[1], f.end - f.pad - 2, 0x20)
    before = tree(d)
    with pytest.raises(raftwal.CRCMismatchError, match=f"{segs[1].name} at offset {f.offset}"):
        raftwal.repair(d / "wal")
    r = run("repair", str(d))
    assert r.returncode == 1, r.stdout + r.stderr
    assert segs[1].name in r.stderr and f"offset {f.offset}" in r.stderr
    r = run("repair", str(d), "--json")
    assert r.returncode == 1
    # the repair report (the same keys as salvage's) names the damage
    rep = json.loads(r.stdout)
    assert rep["repaired"] is False and rep["healthy"] is False
    assert rep["damaged_file"] == segs[1].name and rep["damaged_offset"] == f.offset
    assert "CRCMismatchError" in rep["detail"]
    assert tree(d) == before


def test_repair_truncates_a_torn_tail_and_the_result_opens(tmp_path: Path) -> None:
    d = tmp_path / "data"
    ents = build(d)
    tail = segments(d / "wal")[-1]
    os.truncate(tail, frames(tail)[-1].end - 3)
    assert raftwal.repair(d / "wal") is True
    assert (tail.parent / (tail.name + ".broken")).exists()
    with raftwal.open(d, recovery="strict") as s:
        assert s.recovery.snapshot_index == 15
        got = s.entries(16, s.last_index() + 1)
        assert len(got) >= 9 and got == ents[15 : 15 + len(got)]
    assert raftwal.repair(d / "wal") is True  # clean now: nothing to cut, still True


def _gap_wal(d: Path) -> tuple[Path, int]:
    """A data directory whose WAL skips from entry 3 to entry 5; returns the
    segment and the offset of entry 5's frame."""
    (d / "snap").mkdir(parents=True)
    with WAL.create(d / "wal") as w:
        w.save(HardState(1, 1, 3), [Entry(term=1, index=i, data=b"g") for i in (1, 2, 3)])
    seg = segments(d / "wal")[-1]
    # a writer refuses a batch that leaves a gap: write it by hand
    gap = [(2, Entry(term=1, index=i, data=b"g").SerializeToString()) for i in (5, 6)]
    offset = append_records(seg, [*gap, (3, HardState(1, 1, 6).SerializeToString())])
    ent_frames = [x for x in frames(seg) if x.type == 2]
    assert ent_frames[3].offset == offset
    return seg, offset


def test_salvage_cuts_an_index_gap(tmp_path: Path) -> None:
    d = tmp_path / "data"
    seg, offset = _gap_wal(d)
    assert run("verify", str(d)).returncode == 1
    r = run("repair", str(d), "--mode", "salvage", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(r.stdout)
    assert rep["kind"] == "corrupt" and "gap" in rep["detail"]
    assert rep["damaged_file"] == str(seg) and rep["damaged_offset"] == offset
    assert rep["healthy"] is True
    assert (seg.parent / (seg.name + ".broken")).exists()
    assert run("verify", str(d)).returncode == 0
    with raftwal.open(d, recovery="strict") as s:
        assert [e.index for e in s.entries(1, s.last_index() + 1)] == [1, 2, 3]


def test_salvage_mode_open_cuts_an_index_gap(tmp_path: Path) -> None:
    d = tmp_path / "data"
    _seg, offset = _gap_wal(d)
    with pytest.raises(raftwal.SliceOutOfRangeError):
        raftwal.open(d, recovery="strict")
    with raftwal.open(d, recovery="salvage") as s:
        assert s.last_index() == 3
        assert s.recovery.salvage is not None and s.recovery.salvage.damaged_offset == offset


def test_salvage_cuts_non_zero_bytes_after_the_end_of_the_log(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    with WAL.create(d, segment_size=8192) as w:
        w.save(HardState(1, 1, 3), [Entry(term=1, index=i, data=b"s") for i in (1, 2, 3)])
    seg = segments(d)[-1]
    end = frames(seg)[-1].end
    raw = bytearray(seg.read_bytes())
    raw[end + 2000] = 0x40  # a stray byte far past the end of the log
    seg.write_bytes(bytes(raw))
    with pytest.raises(raftwal.CorruptionError, match=f"offset {end}"):
        raftwal.verify(d)
    rep = raftwal.salvage(d)
    # in the last segment, what a torn final write could have left
    assert rep.changed and rep.kind == "torn" and rep.damaged_offset == end
    assert rep.moved == [] and rep.last_kept_index == 3
    assert (d / (seg.name + ".broken")).read_bytes() == bytes(raw)
    raftwal.verify(d)
    with WAL.open(d) as w:
        assert [e.index for e in w.read_all()[2]] == [1, 2, 3]


def test_repair_and_verify_accept_a_follower_that_installed_a_snapshot(tmp_path: Path) -> None:
    """Entries 1..10, then the leader's snapshot at 100, then 101..105: a
    reader starting at 0 sees a gap, a restart (from 100) does not. A torn
    tail there is repaired, and the bare WAL directory verifies."""
    d = tmp_path / "data"
    with raftwal.open(d) as s:
        for i in range(1, 11):
            s.save(HardState(1, 1, i), [Entry(term=1, index=i, data=b"a")])
        meta = raftwal.SnapshotMetadata(index=100, term=2, conf_state=ConfState(voters=[1]))
        s.save(HardState(2, 1, 100), [], snapshot=raftwal.Snapshot(data=b"x", metadata=meta))
        for i in range(101, 106):
            s.save(HardState(2, 1, i), [Entry(term=2, index=i, data=b"b")])
    tail = segments(d / "wal")[-1]
    os.truncate(tail, frames(tail)[-1].end - 3)
    r = run("verify", str(d / "wal"))
    assert r.returncode == 1 and "TornTailError" in r.stdout, r.stdout
    with raftwal.open(d) as s:
        assert s.recovery.repaired and s.last_index() == 105
    for target in (d, d / "wal"):
        r = run("verify", str(target))
        assert r.returncode == 0, (target, r.stdout)
    assert raftwal.repair(d / "wal") is True


# --- verify after purge -----------------------------------------------------------------


def test_verify_reads_from_where_recovery_starts_after_a_purge(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with raftwal.open(d, max_wals=1, max_snapshots=2, segment_size=2048) as s:
        for i in range(1, 400):
            s.save(HardState(1, 1, i), [Entry(term=1, index=i, data=b"p" * 30)])
            if i % 40 == 0:
                s.create_snapshot(i, ConfState(voters=[1]), f"at {i}".encode())
    assert not (d / "wal" / "0000000000000000-0000000000000000.wal").exists()
    with raftwal.open(d, recovery="strict") as s:
        assert s.last_index() == 399
    for target in (d, d / "wal"):
        r = run("verify", str(target))
        assert r.returncode == 0, (target, r.stdout, r.stderr)
        assert run("repair", str(target)).returncode == 0
    assert raftwal.repair(d / "wal") is True


# --- FIFOs ------------------------------------------------------------------------------------


def test_a_fifo_named_like_a_segment_is_refused_not_waited_on(tmp_path: Path) -> None:
    d = tmp_path / "data"
    build(d)
    last = segments(d / "wal")[-1]
    seq = int(last.name.split("-")[0], 16)
    fifo = d / "wal" / f"{seq + 1:016x}-{0x100:016x}.wal"
    os.mkfifo(fifo)
    for cmd in ("verify", "inspect", "dump"):
        r = run(cmd, str(d))
        assert r.returncode == 1, (cmd, r.stdout, r.stderr)
        assert "not a regular file" in r.stdout + r.stderr and fifo.name in r.stdout + r.stderr
    r = run_py(
        """
        import sys, raftwal
        from raftwal import WAL
        d = sys.argv[1]
        calls = [
            lambda: raftwal.open(d, recovery="strict"),
            lambda: raftwal.open(d, recovery="tolerate-tail"),
            lambda: raftwal.open(d, recovery="salvage"),
            lambda: raftwal.open(d, read_only=True),
            lambda: WAL.open_for_read(d + "/wal").read_all(),
            lambda: raftwal.verify(d + "/wal"),
            lambda: raftwal.valid_snapshot_entries(d + "/wal"),
            lambda: raftwal.repair(d + "/wal"),
            lambda: raftwal.salvage(d + "/wal"),
        ]
        for i, call in enumerate(calls):
            try:
                call()
            except raftwal.CorruptionError as exc:
                assert "not a regular file" in str(exc), exc
            else:
                raise SystemExit(f"call {i} did not refuse the fifo")
        print("ok")
        """,
        str(d),
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_fifo_named_like_a_snapshot_is_refused_not_waited_on(tmp_path: Path) -> None:
    d = tmp_path / "data"
    build(d)
    fifo = d / "snap" / snap_file_name(1, 20)
    os.mkfifo(fifo)
    r = run("verify", str(d))
    assert r.returncode == 1 and fifo.name in r.stdout and "not a regular file" in r.stdout
    r = run_py(
        """
        import sys, raftwal
        from raftwal import Snapshotter
        d, fifo = sys.argv[1:]
        try:
            Snapshotter.read(fifo)
        except raftwal.CorruptionError as exc:
            assert "not a regular file" in str(exc)
        else:
            raise SystemExit("read a fifo")
        try:
            raftwal.open(d, recovery="strict")
        except raftwal.CorruptionError:
            pass
        else:
            raise SystemExit("strict opened past a fifo")
        with raftwal.open(d) as s:
            assert s.recovery.quarantined == [fifo + ".broken"], s.recovery
            assert s.recovery.snapshot_index == 15
        print("ok")
        """,
        str(d),
        str(fifo),
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


# --- every single-bit flip of a .snap file --------------------------------------------------


def test_every_bit_flip_of_a_snap_file(tmp_path: Path) -> None:
    """Snapshotter.read gives an error or exactly the original; a strict
    open an error or exactly the original state; a tolerate-tail open
    destroys no byte it does not report."""
    src = tmp_path / "src"
    seg = 64 * 1024
    with raftwal.open(src, segment_size=seg) as s:
        for i in range(1, 6):
            s.save(HardState(2, 1, i), [Entry(term=2, index=i, data=f"e{i}".encode())])
        cs = ConfState(voters=[1, 2], learners=[3])
        s.create_snapshot(5, cs, b"state machine bytes")
        s.save(HardState(2, 1, 6), [Entry(term=2, index=6, data=b"after")])
    with raftwal.open(src, recovery="strict", segment_size=seg) as s:
        original_state = state(s)
        assert s.recovery.snapshot_index == 5
    snap_path = src / "snap" / snap_file_name(2, 5)
    original = Snapshotter.read(snap_path)
    assert original.metadata.conf_state.learners == [3] and original.data
    assert original.metadata.conf_state.voters == [1, 2]
    raw = snap_path.read_bytes()
    pristine = tree(src)
    work = tmp_path / "work"
    shutil.copytree(src, work)
    target = work / "snap" / snap_path.name
    counts = {"flips": 0, "read_error": 0, "read_same": 0, "strict_error": 0, "strict_same": 0}
    same_bits = []
    for bit in range(len(raw) * 8):
        counts["flips"] += 1
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        target.write_bytes(bytes(flipped))
        try:
            got = Snapshotter.read(target)
        except raftwal.Error:
            counts["read_error"] += 1
        else:
            assert got.SerializeToString() == original.SerializeToString(), bit
            counts["read_same"] += 1
            same_bits.append(bit)
        before = tree(work)
        try:
            with raftwal.open(work, recovery="strict", segment_size=seg) as s:
                assert state(s) == original_state, bit
            counts["strict_same"] += 1
        except raftwal.Error:
            counts["strict_error"] += 1
        assert tree(work) == before, bit
        with raftwal.open(work, recovery="tolerate-tail", segment_size=seg) as s:
            rep = s.recovery
        after = tree(work)
        for name, entry in before.items():
            if after.get(name) == entry:
                continue
            # changed or gone: only the snapshot, renamed with its bytes intact
            assert name == f"snap/{snap_path.name}", (bit, name)
            assert rep.quarantined == [str(target) + ".broken"], bit
            assert Path(rep.quarantined[0]).read_bytes() == bytes(flipped), bit
        assert set(after) - set(before) <= {f"snap/{snap_path.name}.broken"}, bit
        # back to the pristine directory for the next flip
        for name in rep.quarantined:
            os.unlink(name)
        target.write_bytes(raw)
        if tree(work) != pristine:
            shutil.rmtree(work)
            shutil.copytree(src, work)
    print(f"\n{counts['flips']} single-bit flips of a {len(raw)}-byte .snap: {counts}")
    print(f"flips read back as the original snapshot: bits {same_bits}")
    assert counts["flips"] == len(raw) * 8
    assert counts["read_error"] + counts["read_same"] == counts["flips"]
    assert counts["strict_error"] + counts["strict_same"] == counts["flips"]

"""PySyncObj, a real Raft engine, keeping its log, term and vote in raftwal.

* the journal behaves as PySyncObj's own MemoryJournal for any sequence of
  journal calls, and a reopened journal gives back what was written;
* three node processes on 127.0.0.1: writes committed, the leader killed
  with SIGKILL, its journal read back, the node restarted; no acknowledged
  write is lost and the restarted node catches up.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import tempfile
from concurrent.futures import Future
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("pysyncobj")

from pysyncobj import SyncObjConf
from pysyncobj.journal import FileJournal, MemoryJournal

from raftwal.cli.pysyncobj_cluster import Cluster
from raftwal.integrations.pysyncobj import (
    JournalFailedError,
    RaftwalJournal,
    install,
    journal_commands,
)

NAMES = ["127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4003", None]

# --- the journal contract -------------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 5)),
        st.tuples(st.just("delete_from"), st.integers(0, 12)),
        st.tuples(st.just("delete_to"), st.integers(0, 12)),
        st.tuples(st.just("restart_at"), st.integers(1, 40)),
        st.tuples(st.just("term"), st.integers(0, 3)),
        st.tuples(st.just("commit"), st.integers(1, 30)),  # PySyncObj's is never 0
        st.tuples(st.just("reopen"), st.just(0)),
    ),
    max_size=25,
)


def _cmd(idx: int, term: int) -> bytes:
    return b"\x00" + f"cmd {idx}@{term}".encode()


@given(ops=ops, group=st.booleans())
def test_journal_behaves_like_memory_journal_and_reopens(
    ops: list[tuple[str, int]], group: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "j"
        mem = MemoryJournal()
        j = RaftwalJournal(d, group_commit=group)
        term, vote = 0, None

        def add(idx: int, t: int) -> None:
            mem.add(_cmd(idx, t), idx, t)
            j.add(_cmd(idx, t), idx, t)

        def ensure_started() -> None:
            if len(mem) == 0:
                add(1, term)

        try:
            ensure_started()
            for op, arg in ops:
                if op == "add":
                    for _ in range(arg):
                        add(mem[-1][1] + 1, term)
                elif op == "delete_from" and 0 < arg < len(mem):
                    mem.deleteEntriesFrom(arg)
                    j.deleteEntriesFrom(arg)
                elif op == "delete_to" and 0 < arg < len(mem):
                    j.setRaftCommitIndex(mem[arg][1])  # PySyncObj compacts applied entries
                    mem.deleteEntriesTo(arg)
                    j.deleteEntriesTo(arg)
                elif op == "restart_at":  # a snapshot installed: clear, then two entries
                    mem.clear()
                    j.clear()
                    add(arg, term)
                    add(arg + 1, term)
                elif op == "term":
                    term, vote = term + 1, NAMES[arg]
                    mem.setCurrentTerm(term, vote)
                    j.setCurrentTerm(term, vote)
                elif op == "commit":
                    j.setRaftCommitIndex(arg)
                elif op == "reopen":
                    commit = j.getRaftCommitIndex()
                    j.close()
                    j = RaftwalJournal(d, group_commit=group)
                    assert j.getRaftCommitIndex() == commit
                ensure_started()
                assert list(j[:]) == list(mem[:])
                assert len(j) == len(mem) and j[-1] == mem[-1] and j[0] == mem[0]
                assert (j.getCurrentTerm(), j.getVotedForNodeId()) == (term, vote)
            j.close()
            j = RaftwalJournal(d)
            assert list(j[:]) == list(mem[:])
            assert (j.getCurrentTerm(), j.getVotedForNodeId()) == (term, vote)
        finally:
            j.close()
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["j"]  # no rebase leftovers


def test_term_and_vote_survive_and_ids_must_be_strings(tmp_path: Path) -> None:
    j = RaftwalJournal(tmp_path / "j")
    j.add(b"\x01", 1, 0)
    j.setCurrentTerm(5, "127.0.0.1:1234")
    with pytest.raises(TypeError):
        j.setCurrentTerm(6, 1234)
    j.close()
    j = RaftwalJournal(tmp_path / "j")
    assert (j.getCurrentTerm(), j.getVotedForNodeId()) == (5, "127.0.0.1:1234")
    j.setCurrentTerm(7, None)
    j.close()
    j = RaftwalJournal(tmp_path / "j")
    assert (j.getCurrentTerm(), j.getVotedForNodeId()) == (7, None)
    j.close()


def test_compaction_is_a_snapshot_marker_and_the_log_moves_back_when_asked(
    tmp_path: Path,
) -> None:
    dump = tmp_path / "dump.bin"
    dump.write_bytes(b"pysyncobj state")
    j = RaftwalJournal(tmp_path / "j", dump_file=dump, group_commit=True)
    for i in range(1, 11):
        j.add(_cmd(i, 1), i, 1)
    j.setRaftCommitIndex(9)
    j.deleteEntriesTo(5)  # entries 1..5 now live in the dump
    assert [e[1] for e in j[:]] == [6, 7, 8, 9, 10]
    j.close()
    j = RaftwalJournal(tmp_path / "j")
    assert [e[1] for e in j[:]] == [6, 7, 8, 9, 10]
    assert j.recovery.snapshot_index == 5
    # a dump from before the marker: the log restarts at 3 (the directory is rebuilt)
    j.clear()
    j.add(_cmd(3, 1), 3, 1)
    j.add(_cmd(4, 1), 4, 1)
    j.close()
    j = RaftwalJournal(tmp_path / "j")
    assert [e[1] for e in j[:]] == [3, 4]
    j.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dump.bin", "j"]


def test_a_failed_fsync_stops_the_journal_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = RaftwalJournal(tmp_path / "j", group_commit=True)
    j.add(_cmd(1, 1), 1, 1)
    j.barrier()
    failed: Future[None] = Future()
    failed.set_exception(OSError(errno.EIO, "fdatasync failed"))
    monkeypatch.setattr(j._st, "save_async", lambda hs, entries: failed)
    j.add(_cmd(2, 1), 2, 1)  # appended, not yet known to be durable
    with pytest.raises(OSError):
        j.barrier()  # e.g. in the transport, before a message would leave
    # from now on nothing is accepted, not even a message with no new entry
    with pytest.raises(JournalFailedError):
        j.barrier()
    with pytest.raises(JournalFailedError):
        j.add(_cmd(3, 1), 3, 1)
    with pytest.raises(JournalFailedError):
        j.setRaftCommitIndex(2)
    with pytest.raises(JournalFailedError):
        j.setCurrentTerm(2, None)
    j.close()
    j = RaftwalJournal(tmp_path / "j")
    assert [e[1] for e in j[:]] == [1]
    j.close()


def test_install_only_adds_journal_instances(tmp_path: Path) -> None:
    install()
    install()
    j = RaftwalJournal(tmp_path / "j")
    try:
        import pysyncobj.syncobj as so

        assert so.createJournal(j) is j
        assert isinstance(so.createJournal(None), MemoryJournal)
        fj = so.createJournal(str(tmp_path / "file.journal"))
        assert isinstance(fj, FileJournal)
        fj._destroy()
        assert SyncObjConf(journalFile=j).journalFile is j
    finally:
        j.close()


# --- three real nodes -------------------------------------------------------------------


def test_three_nodes_kill_the_leader_and_lose_nothing(tmp_path: Path) -> None:
    acked: dict[str, str] = {}
    with Cluster(tmp_path, 3) as c:
        leader = c.wait_leader()
        for i in range(40):
            if c.write(leader, f"a{i}", f"v{i}"):
                acked[f"a{i}"] = f"v{i}"
        assert len(acked) == 40, "a healthy leader acknowledged every write"

        leader.kill()  # SIGKILL
        # Everything the leader acknowledged was durable in its raftwal journal.
        on_disk = {cmd[1][0]: cmd[1][1] for _, cmd in journal_commands(leader.data_dir)}
        assert {k: on_disk.get(k) for k in acked} == acked

        survivors = [n for n in c.nodes if n.alive]
        for i in range(30):
            for attempt in range(12):  # through the election: bounded retries
                if c.write(survivors[(i + attempt) % 2], f"b{i}", f"w{i}", timeout=2.0):
                    acked[f"b{i}"] = f"w{i}"
                    break
        assert sum(k.startswith("b") for k in acked) >= 25

        leader.start()  # same data directory: recovers its journal, then catches up
        datas = c.wait_converged(acked, timeout=30)
        assert len(datas) == 3
        for data in datas:
            assert {k: data.get(k) for k in acked} == acked
        status = leader.call("status")
        assert status["applied"] >= len(acked)
        c.stop_all()


def test_compaction_snapshot_install_and_a_full_restart(tmp_path: Path) -> None:
    """PySyncObj compacts its log every 50 entries (raftwal snapshot markers),
    a follower that was down gets the leader's snapshot (the journal is
    cleared and restarted past it), then every node is killed and restarted
    from its dump and raftwal journal."""
    acked: dict[str, str] = {}
    with Cluster(tmp_path, 3, compaction=50) as c:
        leader = c.wait_leader()
        follower = next(n for n in c.nodes if n is not leader)
        for i in range(10):
            if c.write(leader, f"a{i}", f"v{i}"):
                acked[f"a{i}"] = f"v{i}"
        follower.kill()
        load = leader.call("load", seconds=1.0, in_flight=64, size=20, prefix="w", timeout=60)
        assert load["acked"] > 100
        for i in range(10):
            if c.write(leader, f"b{i}", f"v{i}"):
                acked[f"b{i}"] = f"v{i}"
        assert len(acked) == 20
        follower.start()
        before = c.wait_converged(acked, timeout=40)
        assert len(before[0]) >= len(acked) + load["acked"]
        marker_snaps = list((follower.data_dir / "journal" / "snap").glob("*.snap"))
        assert marker_snaps, "the follower caught up through a snapshot marker"

        for n in c.nodes:
            n.kill()
        for n in c.nodes:
            n.start()
        c.wait_leader()
        after = c.wait_converged(acked, timeout=40)
        assert after == before
        c.stop_all()


def test_demo_cluster_reports_no_loss_and_both_journals(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "raftwal",
            "demo",
            "--cluster",
            "3",
            "--compare-seconds",
            "0.5",
            "--json",
            "--data-dir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(r.stdout)
    assert rep["lost"] == [] and rep["killed_leader_journal_missing"] == []
    assert rep["acked_before_kill"] > 0 and rep["acked_after_kill"] > 0
    assert rep["node_sizes"] == [rep["acked"]] * 3 or min(rep["node_sizes"]) >= rep["acked"]
    assert [t["journal"] for t in rep["throughput"]] == ["raftwal", "file"]
    assert all(t["writes_per_second"] > 0 and t["how_it_syncs"] for t in rep["throughput"])

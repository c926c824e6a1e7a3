"""Backend databases sent with snapshots (``%016x.snap.db``): the
snapshotter's ``save_db_from`` / ``db_file_path`` / ``release_snap_dbs``,
checked against etcd 3.4's own snapshotter through tools/etcdref."""

from __future__ import annotations

import io
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

import raftwal
from raftwal.messages import Snapshot
from raftwal.snap import Snapshotter, db_file_name

MiB = 1 << 20


def pattern(size: int, seed: int = 7) -> bytes:
    """``size`` bytes that differ from position to position."""
    block = bytes((i * 131 + seed) & 0xFF for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


def leftovers(d: Path) -> list[str]:
    return sorted(n for n in os.listdir(d) if not n.endswith((".snap", ".snap.db")))


@pytest.fixture
def snapdir(tmp_path: Path) -> Path:
    d = tmp_path / "snap"
    d.mkdir()
    return d


def sources(tmp_path: Path, data: bytes) -> list[tuple[str, object]]:
    f = tmp_path / "source.bin"
    f.write_bytes(data)

    def gen() -> Iterator[bytes]:
        for i in range(0, len(data), 1000):
            yield data[i : i + 1000]

    class ReadOnly:
        """A file object with ``read`` only (no ``readinto``)."""

        def __init__(self) -> None:
            self.b = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self.b.read(min(n, 777))

    return [
        ("bytes", data),
        ("bytearray", bytearray(data)),
        ("memoryview", memoryview(data)),
        ("BytesIO", io.BytesIO(data)),
        ("read-only object", ReadOnly()),
        ("open file", open(f, "rb")),
        ("generator", gen()),
        ("list of chunks", [data[: len(data) // 3], b"", data[len(data) // 3 :]]),
        ("str path", str(f)),
        ("Path", f),
    ]


def test_every_kind_of_source_round_trips(tmp_path: Path, snapdir: Path) -> None:
    data = pattern(3 * MiB + 12345)
    s = Snapshotter(snapdir)
    for index, (kind, source) in enumerate(sources(tmp_path, data), start=1):
        assert s.save_db_from(source, index) == len(data), kind  # type: ignore[arg-type]
        if hasattr(source, "close"):
            source.close()
        path = s.db_file_path(index)
        assert path == str(snapdir / f"{index:016x}.snap.db"), kind
        assert Path(path).read_bytes() == data, kind
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, kind
    assert leftovers(snapdir) == []
    assert s.snap_db_names() == [db_file_name(i) for i in range(1, 11)]


def test_an_empty_database_is_saved_too(snapdir: Path) -> None:
    s = Snapshotter(snapdir)
    assert s.save_db_from(b"", 5) == 0
    assert Path(s.db_file_path(5)).read_bytes() == b""


def test_a_missing_database_is_a_typed_error(snapdir: Path) -> None:
    s = Snapshotter(snapdir)
    s.save_db_from(b"x", 0x10)
    with pytest.raises(raftwal.NoDBSnapshotError, match=r"0000000000000011\.snap\.db"):
        s.db_file_path(0x11)
    with pytest.raises(raftwal.Error) as err:
        s.db_file_path(0x12)
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        Snapshotter(snapdir / "missing").db_file_path(1)


def test_an_existing_database_is_kept_as_etcd_does(snapdir: Path) -> None:
    s = Snapshotter(snapdir)
    s.save_db_from(b"first", 3)
    assert s.save_db_from(b"second copy", 3) == len(b"second copy")
    assert Path(s.db_file_path(3)).read_bytes() == b"first"
    assert leftovers(snapdir) == []


def test_a_failing_source_leaves_nothing(snapdir: Path) -> None:
    s = Snapshotter(snapdir)

    def broken() -> Iterator[bytes]:
        yield pattern(2 * MiB)
        raise ConnectionResetError("leader went away")

    with pytest.raises(ConnectionResetError):
        s.save_db_from(broken(), 9)
    with pytest.raises(raftwal.NoDBSnapshotError):
        s.db_file_path(9)
    assert os.listdir(snapdir) == []


@pytest.mark.parametrize(
    "source, message",
    [
        ([b"ok", "text"], "chunk 1 is str"),
        (12, "not int"),
        (io.StringIO("text"), "chunk 0 is str"),
    ],
)
def test_wrong_sources_are_refused_and_leave_nothing(
    snapdir: Path, source: object, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        Snapshotter(snapdir).save_db_from(source, 1)  # type: ignore[arg-type]
    assert os.listdir(snapdir) == []


@pytest.mark.parametrize("index", [-1, 1 << 64, True, 1.0])
def test_indexes_outside_uint64_are_refused(snapdir: Path, index: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        Snapshotter(snapdir).save_db_from(b"x", index)  # type: ignore[arg-type]
    assert os.listdir(snapdir) == []


def test_memory_does_not_grow_with_the_database(tmp_path: Path, snapdir: Path) -> None:
    big = tmp_path / "big.db"
    with open(big, "wb") as f:
        f.truncate(96 * MiB)  # sparse: costs no disk to make, reads as zeros
    s = Snapshotter(snapdir)

    def gen() -> Iterator[bytes]:
        chunk = pattern(MiB)
        for _ in range(96):
            yield chunk

    for index, source in enumerate([big, gen()], start=1):
        tracemalloc.start()
        try:
            assert s.save_db_from(source, index) == 96 * MiB
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 4 * MiB, (index, peak)


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from raftwal.snap import Snapshotter

    def slow():
        yield b"a" * (1 << 20)
        sys.stdout.write("started\\n")
        sys.stdout.flush()
        while True:
            time.sleep(0.01)
            yield b"b" * 4096

    Snapshotter(sys.argv[1]).save_db_from(slow(), 0x42)
    """
)


def test_a_killed_copy_leaves_no_database_and_a_temporary_the_writer_removes(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    with raftwal.open(data_dir) as st:
        st.save(raftwal.HardState(term=1, vote=0, commit=0), [])
    snapdir = data_dir / "snap"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(snapdir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "started\n"
        time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    s = Snapshotter(snapdir)
    with pytest.raises(raftwal.NoDBSnapshotError):
        s.db_file_path(0x42)
    tmps = leftovers(snapdir)
    assert len(tmps) == 1 and tmps[0].startswith(db_file_name(0x42)), tmps
    # A read-only open leaves it; the next writer removes it.
    with raftwal.open(data_dir, read_only=True):
        pass
    assert leftovers(snapdir) == tmps
    with raftwal.open(data_dir):
        pass
    assert leftovers(snapdir) == []


def test_release_and_purge_of_databases(snapdir: Path) -> None:
    s = Snapshotter(snapdir)
    for index in (100, 200, 300, 400):
        s.save_db_from(b"db%d" % index, index)
    (snapdir / "zz.snap.db").write_bytes(b"")  # not a %016x name: left alone
    snap = Snapshot()
    snap.metadata.index = 300
    assert s.release_snap_dbs(snap) == [db_file_name(100), db_file_name(200)]
    assert s.purge_snap_dbs(1) == [db_file_name(300)]
    assert s.snap_db_names() == [db_file_name(400)]
    assert s.purge_snap_dbs(0) == []
    assert (snapdir / "zz.snap.db").exists()


# --------------------------------------------------------------- against etcd


def test_etcd_finds_what_raftwal_saved_and_raftwal_finds_what_etcd_saved(
    tmp_path: Path,
) -> None:
    from etcdref import require_etcdref

    ref = require_etcdref()
    data = pattern(5 * MiB + 3)
    source = tmp_path / "source.db"
    source.write_bytes(data)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()

    assert Snapshotter(ours).save_db_from(source, 0xABC) == len(data)
    out = ref.snap_db_path(ours, 0xABC)
    assert out["error"] is None
    assert out["path"] == str(ours / "0000000000000abc.snap.db")
    assert ref.snap_db_path(ours, 0xABD)["error"] == "snap: snapshot file doesn't exist"

    assert ref.snap_save_db(theirs, source, 0xABC) == {"bytes": len(data), "error": None}
    path = Snapshotter(theirs).db_file_path(0xABC)
    assert Path(path).read_bytes() == data
    # Same name, same bytes, same permissions on both sides.
    assert sorted(os.listdir(ours)) == sorted(os.listdir(theirs))
    a, b = ours / "0000000000000abc.snap.db", theirs / "0000000000000abc.snap.db"
    assert a.read_bytes() == b.read_bytes()
    assert stat.S_IMODE(a.stat().st_mode) == stat.S_IMODE(b.stat().st_mode)

    # etcd keeps an existing database, as raftwal does.
    other = tmp_path / "other.db"
    other.write_bytes(b"other")
    assert ref.snap_save_db(ours, other, 0xABC)["error"] is None
    assert a.read_bytes() == data
    assert sorted(os.listdir(ours)) == ["0000000000000abc.snap.db"]


# ------------------------------------------------------ with DurableStorage


def committed(st: raftwal.DurableStorage, upto: int) -> None:
    """Entries up to ``upto`` at term 1, all committed."""
    first = st.last_index() + 1
    ents = [raftwal.Entry(term=1, index=i, data=b"e%d" % i) for i in range(first, upto + 1)]
    st.save(raftwal.HardState(term=1, vote=1, commit=upto), ents)


def test_a_snapshot_s_database_is_moved_into_place_on_restart(tmp_path: Path) -> None:
    data_dir, backend = tmp_path / "data", tmp_path / "app.db"
    backend.write_bytes(b"old state")
    state = pattern(2 * MiB + 1, seed=10)
    with raftwal.open(data_dir) as st:
        committed(st, 10)
        assert st.snapshot_db_path() is None
        st.create_snapshot(10, raftwal.ConfState(voters=[1]), b"meta", db=io.BytesIO(state))
        path = st.snapshot_db_path()
        assert path == str(data_dir / "snap" / db_file_name(10))
        assert Path(path).read_bytes() == state
    # A restart without backend= leaves it where it is.
    with raftwal.open(data_dir) as st:
        assert st.recovery.backend_restored is None
        assert st.snapshot_db_path() == path
    with raftwal.open(data_dir, backend=backend) as st:
        assert st.recovery.backend_restored == (path, str(backend))
        assert backend.read_bytes() == state
        assert st.snapshot_db_path() is None
        assert st.snapshot().data == b"meta"
    # Done once: the next restart finds nothing newer.
    with raftwal.open(data_dir, backend=backend) as st:
        assert st.recovery.backend_restored is None
    assert backend.read_bytes() == state


def test_backend_index_says_whether_the_backend_is_behind(tmp_path: Path) -> None:
    data_dir, backend = tmp_path / "data", tmp_path / "app.db"
    with raftwal.open(data_dir) as st:
        committed(st, 20)
        st.create_snapshot(20, None, b"", db=[b"snapshot ", b"state"])
    backend.write_bytes(b"applied up to 25")
    asked: list[str] = []

    def applied(path: str) -> int:
        asked.append(path)
        return 25

    with raftwal.open(data_dir, backend=backend, backend_index=applied) as st:
        assert st.recovery.backend_restored is None
        assert st.snapshot_db_path() is not None
    assert asked == [str(backend)]
    assert backend.read_bytes() == b"applied up to 25"
    with raftwal.open(data_dir, backend=backend, backend_index=lambda p: 19) as st:
        assert st.recovery.backend_restored is not None
    assert backend.read_bytes() == b"snapshot state"


def test_a_newer_snapshot_releases_older_databases(tmp_path: Path) -> None:
    with raftwal.open(tmp_path / "data", catch_up_entries=1) as st:
        committed(st, 10)
        st.create_snapshot(5, None, b"", db=b"five")
        st.create_snapshot(8, None, b"", db=b"eight")
        assert Snapshotter(tmp_path / "data" / "snap").snap_db_names() == [db_file_name(8)]
        st.create_snapshot(10, None, b"")  # without a database: the older one goes too
        assert st.snapshot_db_path() is None
        assert Snapshotter(tmp_path / "data" / "snap").snap_db_names() == []


def test_wrong_arguments_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with raftwal.open(data_dir) as st:
        committed(st, 3)
        with pytest.raises(TypeError, match="db must be"):
            st.create_snapshot(3, None, b"", db=3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="db must be"):
            st.apply_snapshot(st.snapshot(), db=object())  # type: ignore[arg-type]
        older = Snapshot()
        older.metadata.index = 0
        with pytest.raises(raftwal.SnapOutOfDateError):
            st.apply_snapshot(older, db=b"x")
    assert os.listdir(data_dir / "snap") == []
    with pytest.raises(ValueError, match="read_only"):
        raftwal.open(data_dir, read_only=True, backend=tmp_path / "app.db")


def test_a_follower_installs_a_leader_s_snapshot_with_its_database(tmp_path: Path) -> None:
    state = pattern(3 * MiB, seed=3)
    with raftwal.open(tmp_path / "leader") as leader:
        committed(leader, 30)
        snap = leader.create_snapshot(30, raftwal.ConfState(voters=[1, 2]), b"m", db=state)
        db_path = leader.snapshot_db_path()
        assert db_path is not None
    snap.metadata.term = 2  # taken at a newer term than the follower has seen
    with raftwal.open(tmp_path / "follower") as follower:
        committed(follower, 4)
        with open(db_path, "rb") as stream:
            follower.apply_snapshot(snap, db=stream)
        hs, cs = follower.initial_state()
        assert (hs.term, hs.vote, hs.commit) == (2, 0, 30)
        assert list(cs.voters) == [1, 2]
        assert follower.first_index() == 31 and follower.last_index() == 30
        follower_db = follower.snapshot_db_path()
        assert follower_db is not None and Path(follower_db).read_bytes() == state
    backend = tmp_path / "follower.db"
    with raftwal.open(tmp_path / "follower", backend=backend) as follower:
        assert follower.recovery.snapshot_index == 30
        assert follower.recovery.backend_restored is not None
    assert backend.read_bytes() == state


SNAPSHOTTING_CHILD = textwrap.dedent(
    """
    import sys, time
    import raftwal
    from test_backend_snapshots import committed, pattern

    def slow(index):
        data = pattern(256 * 1024, seed=index)
        for i in range(0, len(data), 16 * 1024):
            time.sleep(0.001)
            yield data[i : i + 16 * 1024]

    st = raftwal.open(sys.argv[1], catch_up_entries=1, max_snapshots=2)
    index = st.last_index()
    while True:
        index += 1
        committed(st, index)
        st.create_snapshot(index, None, b"meta%d" % index, db=slow(index))
        print(index, flush=True)
    """
)


def test_a_kill_at_any_moment_never_leaves_a_snapshot_without_its_database(
    tmp_path: Path,
) -> None:
    import random

    rng = random.Random(15)
    data_dir = tmp_path / "data"
    tests_dir = str(Path(__file__).parent)
    acked = 0
    for _ in range(12):
        env = dict(os.environ, PYTHONPATH=tests_dir + os.pathsep + os.environ.get("PYTHONPATH", ""))
        child = subprocess.Popen(
            [sys.executable, "-c", SNAPSHOTTING_CHILD, str(data_dir)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert child.stdout is not None
        try:
            acked = max(acked, int(child.stdout.readline()))  # at least one snapshot
            time.sleep(rng.uniform(0, 0.4))
            child.send_signal(signal.SIGKILL)
            for line in child.stdout:
                acked = max(acked, int(line))
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
        with raftwal.open(data_dir) as st:
            index = st.recovery.snapshot_index
            assert index >= acked, "an acknowledged snapshot was lost"
            assert st.snapshot().data == b"meta%d" % index
            path = st.snapshot_db_path()
            assert path is not None, f"snapshot {index} without its database"
            assert Path(path).read_bytes() == pattern(256 * 1024, seed=index)
            snapdir = data_dir / "snap"
            # every database there is whole; no temporary survives a writer's open
            for name in Snapshotter(snapdir).snap_db_names():
                size = (snapdir / name).stat().st_size
                assert size == 256 * 1024, (name, size)
            assert leftovers(snapdir) == []


def test_etcd_and_raftwal_both_move_a_newer_snapshot_database_into_place(
    tmp_path: Path,
) -> None:
    """A member that crashed after it saved a leader's snapshot (its
    ``.snap.db``, ``.snap`` and WAL record) but before it applied it: its
    ``member/snap/db`` is older than the snapshot. etcd 3.4 renames the
    ``.snap.db`` into place on restart and serves the snapshot's keys;
    ``raftwal.open(..., backend=<member>/snap/db)`` on a copy makes the
    same rename and leaves the same files."""
    import shutil

    from etcd_server import EtcdServer, require_etcd34

    bins = require_etcd34()
    data_dir = tmp_path / "etcd"
    member_snap = data_dir / "member" / "snap"
    log = tmp_path / "etcd.log"
    with EtcdServer(bins, data_dir, log, snapshot_count=100_000) as srv:
        for i in range(5):
            srv.put(f"/k/{i:03d}", b"old-%d" % i)
        srv.stop()
    old_db = tmp_path / "db-before-the-snapshot"
    shutil.copyfile(member_snap / "db", old_db)
    expected = {f"/k/{i:03d}": b"old-%d" % i for i in range(5)}
    with EtcdServer(bins, data_dir, log, snapshot_count=20) as srv:
        for i in range(5, 40):
            srv.put(f"/k/{i:03d}", b"new-%d" % i)
            expected[f"/k/{i:03d}"] = b"new-%d" % i
        srv.stop()
    snaps = sorted(n for n in os.listdir(member_snap) if n.endswith(".snap"))
    assert snaps, "etcd took no snapshot"
    index = int(snaps[-1][17:33], 16)
    newest_db = (member_snap / "db").read_bytes()
    # what a follower crashed mid-install leaves: the snapshot's database
    # beside an older backend
    (member_snap / db_file_name(index)).write_bytes(newest_db)
    shutil.copyfile(old_db, member_snap / "db")
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)

    with EtcdServer(bins, data_dir, tmp_path / "etcd-restart.log") as srv:
        assert srv.get_prefix("/k/") == expected
        srv.stop()
    assert db_file_name(index) not in os.listdir(member_snap)

    backend = copy / "member" / "snap" / "db"
    with raftwal.open(copy / "member", backend=backend) as st:
        assert st.recovery.snapshot_index == index
        src = str(copy / "member" / "snap" / db_file_name(index))
        assert st.recovery.backend_restored == (src, str(backend))
    assert backend.read_bytes() == newest_db
    assert sorted(os.listdir(copy / "member" / "snap")) == sorted(os.listdir(member_snap))

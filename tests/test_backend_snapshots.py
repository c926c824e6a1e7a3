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

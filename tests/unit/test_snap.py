"""Tests of raftwal.snap.Snapshotter: etcd's snapshotter cases, the file format, durability."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftwal._native import crc32c
from raftwal.errors import (
    CorruptionError,
    CRCMismatchError,
    EmptySnapshotError,
    Error,
    NoSnapshotError,
)
from raftwal.messages import (
    ConfState,
    Snapshot,
    SnapshotMetadata,
    WalSnapshot,
    parse_snap_file,
    snap_file_bytes,
)
from raftwal.snap import Snapshotter, snap_file_name

# etcd's testSnap and the file etcd 3.4 writes for it.
TEST_SNAP_NAME = "0000000000000001-0000000000000001.snap"
TEST_SNAP_FILE = bytes.fromhex(
    "08ade0aac90a"  # crc = 0xa92ab02d
    "121f"  # data: 31 bytes of raftpb.Snapshot
    "0a0d736f6d6520736e617073686f74"  # data "some snapshot"
    "120e"  # metadata
    "0a080801080208032800"  # conf_state voters 1,2,3, auto_leave false
    "1001"  # index 1
    "1801"  # term 1
)


def make_snap(index: int = 1, term: int = 1, data: bytes | None = b"some snapshot") -> Snapshot:
    """etcd's testSnap, optionally at another index/term or with other data."""
    return Snapshot(
        data=data,
        metadata=SnapshotMetadata(conf_state=ConfState(voters=[1, 2, 3]), index=index, term=term),
    )


def files(d: Path) -> list[str]:
    """The directory's entries, sorted."""
    return sorted(os.listdir(d))


# --- etcd's snapshotter_test.go cases -------------------------------------------------------


def test_save_then_load_gives_the_same_snapshot(tmp_path: Path) -> None:
    ss = Snapshotter(tmp_path)
    ss.save_snap(make_snap())
    assert ss.load() == make_snap()


def test_a_changed_crc_field_is_a_crc_mismatch(tmp_path: Path) -> None:
    Snapshotter(tmp_path).save_snap(make_snap())
    path = tmp_path / TEST_SNAP_NAME
    raw = bytearray(path.read_bytes())
    raw[1] ^= 0x01  # lowest byte of the crc varint; the varint stays valid
    path.write_bytes(bytes(raw))
    with pytest.raises(CRCMismatchError, match="crc mismatch"):
        Snapshotter.read(path)


def test_a_changed_data_byte_is_a_crc_mismatch(tmp_path: Path) -> None:
    Snapshotter(tmp_path).save_snap(make_snap())
    path = tmp_path / TEST_SNAP_NAME
    raw = bytearray(path.read_bytes())
    raw[12] ^= 0x20  # a letter of "some snapshot"
    path.write_bytes(bytes(raw))
    with pytest.raises(CRCMismatchError) as info:
        Snapshotter.read(path)
    assert str(path) in str(info.value)


def test_load_falls_back_past_an_unreadable_newer_file(tmp_path: Path) -> None:
    bad = f"{0xFFFF:016x}-{0xFFFF:016x}-{0xFFFF:016x}.snap"
    (tmp_path / bad).write_bytes(b"bad data")
    ss = Snapshotter(tmp_path)
    ss.save_snap(make_snap())
    assert ss.snap_names()[0] == bad  # it is tried first
    assert ss.load() == make_snap()
    assert (tmp_path / (bad + ".broken")).read_bytes() == b"bad data"
    assert not (tmp_path / bad).exists()


def test_snap_names_are_newest_first(tmp_path: Path) -> None:
    for i in range(1, 6):
        (tmp_path / f"{i}.snap").write_bytes(b"")
    assert Snapshotter(tmp_path).snap_names() == ["5.snap", "4.snap", "3.snap", "2.snap", "1.snap"]


def test_load_and_load_newest_available_pick_the_newest_match(tmp_path: Path) -> None:
    ss = Snapshotter(tmp_path)
    ss.save_snap(make_snap())
    newer = make_snap(index=5)
    ss.save_snap(newer)
    assert ss.load() == newer
    wal_snaps = [WalSnapshot(index=0, term=0), WalSnapshot(index=1, term=1), WalSnapshot(5, 1)]
    assert ss.load_newest_available(wal_snaps) == newer
    assert ss.load_newest_available(reversed(wal_snaps)) == newer
    assert ss.load_newest_available(wal_snaps[:2]) == make_snap()
    assert files(tmp_path) == [TEST_SNAP_NAME, snap_file_name(1, 5)]  # nothing renamed


def test_an_empty_directory_has_no_snapshot(tmp_path: Path) -> None:
    ss = Snapshotter(tmp_path)
    assert ss.snap_names() == []
    with pytest.raises(NoSnapshotError, match="snap: no available snapshot"):
        ss.load()
    with pytest.raises(NoSnapshotError):
        ss.load_newest_available([WalSnapshot(1, 1)])


def test_an_empty_file_is_an_empty_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "1.snap"
    path.write_bytes(b"")
    with pytest.raises(EmptySnapshotError, match=r"1\.snap"):
        Snapshotter.read(path)


def test_all_snapshots_broken_is_no_snapshot(tmp_path: Path) -> None:
    (tmp_path / "1.snap").write_bytes(b"bad")
    with pytest.raises(NoSnapshotError):
        Snapshotter(tmp_path).load()
    assert files(tmp_path) == ["1.snap.broken"]


def test_release_snap_dbs_deletes_older_databases(tmp_path: Path) -> None:
    for index in (100, 200, 300, 400):
        (tmp_path / f"{index:016x}.snap.db").write_bytes(b"db")
    deleted = Snapshotter(tmp_path).release_snap_dbs(make_snap(index=300))
    assert deleted == [f"{100:016x}.snap.db", f"{200:016x}.snap.db"]
    assert files(tmp_path) == [f"{300:016x}.snap.db", f"{400:016x}.snap.db"]


# --- the file format --------------------------------------------------------------------------


def test_test_snap_file_is_etcds_39_bytes(tmp_path: Path) -> None:
    Snapshotter(tmp_path).save_snap(make_snap())
    assert files(tmp_path) == [TEST_SNAP_NAME]
    raw = (tmp_path / TEST_SNAP_NAME).read_bytes()
    assert len(raw) == 39
    assert raw == TEST_SNAP_FILE
    crc, data = parse_snap_file(raw)
    assert crc == 0xA92AB02D == crc32c(make_snap().SerializeToString())
    assert data == make_snap().SerializeToString()


def test_etcds_file_reads_as_test_snap(tmp_path: Path) -> None:
    (tmp_path / TEST_SNAP_NAME).write_bytes(TEST_SNAP_FILE)
    assert Snapshotter.read(tmp_path / TEST_SNAP_NAME) == make_snap()
    assert Snapshotter.read(str(tmp_path / TEST_SNAP_NAME)) == make_snap()


def test_file_name_is_term_then_index_in_lowercase_hex(tmp_path: Path) -> None:
    Snapshotter(tmp_path).save_snap(make_snap(index=0xABCDEF, term=0x1F))
    assert files(tmp_path) == ["000000000000001f-0000000000abcdef.snap"]
    assert snap_file_name(2**64 - 1, 1) == "ffffffffffffffff-0000000000000001.snap"


def test_newest_is_by_term_then_index(tmp_path: Path) -> None:
    ss = Snapshotter(tmp_path)
    ss.save_snap(make_snap(index=5, term=1))
    ss.save_snap(make_snap(index=1, term=2))
    ss.save_snap(make_snap(index=3, term=1))
    assert ss.snap_names() == [snap_file_name(2, 1), snap_file_name(1, 5), snap_file_name(1, 3)]
    assert ss.load() == make_snap(index=1, term=2)
    assert ss.load_newest_available([WalSnapshot(3, 1), WalSnapshot(5, 1)]) == make_snap(5, 1)


def test_an_empty_snapshot_is_not_written(tmp_path: Path) -> None:
    ss = Snapshotter(tmp_path)
    ss.save_snap(Snapshot())
    ss.save_snap(make_snap(index=0, term=3))
    assert files(tmp_path) == []


def test_snapshot_without_data_round_trips(tmp_path: Path) -> None:
    ss = Snapshotter(tmp_path)
    snap = make_snap(index=7, term=2, data=None)
    ss.save_snap(snap)
    assert ss.load() == snap
    assert ss.load().data == b"" and not ss.load().HasField("data")


def test_saving_again_replaces_the_file(tmp_path: Path) -> None:
    ss = Snapshotter(tmp_path)
    ss.save_snap(make_snap(data=b"first"))
    ss.save_snap(make_snap(data=b"second"))
    assert files(tmp_path) == [TEST_SNAP_NAME]
    assert ss.load() == make_snap(data=b"second")


# --- Snapshotter.read's errors --------------------------------------------------------------


def write(tmp_path: Path, raw: bytes, name: str = TEST_SNAP_NAME) -> Path:
    """Write ``raw`` as a snapshot file and return its path."""
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def test_a_wrapper_that_does_not_decode_is_corruption(tmp_path: Path) -> None:
    path = write(tmp_path, b"\x12\x7f" + b"x" * 10)  # data field longer than the file
    with pytest.raises(CorruptionError) as info:
        Snapshotter.read(path)
    assert not isinstance(info.value, CRCMismatchError)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        snap_file_bytes(0x1234, None),  # no data field
        snap_file_bytes(0x1234, b""),  # empty data
        snap_file_bytes(0, make_snap().SerializeToString()),  # crc 0
    ],
    ids=["no-data", "empty-data", "zero-crc"],
)
def test_no_data_or_zero_crc_is_an_empty_snapshot(tmp_path: Path, raw: bytes) -> None:
    path = write(tmp_path, raw)
    with pytest.raises(EmptySnapshotError, match="snap: empty snapshot") as info:
        Snapshotter.read(path)
    assert str(path) in str(info.value)


def test_a_snapshot_that_does_not_decode_is_corruption(tmp_path: Path) -> None:
    data = b"\x0a\x05ab"  # bytes field longer than the message
    path = write(tmp_path, snap_file_bytes(crc32c(data), data))
    with pytest.raises(CorruptionError) as info:
        Snapshotter.read(path)
    assert not isinstance(info.value, CRCMismatchError)
    assert str(path) in str(info.value)


def test_read_of_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Snapshotter.read(tmp_path / TEST_SNAP_NAME)


# --- loading --------------------------------------------------------------------------------


def test_each_kind_of_bad_file_is_quarantined(tmp_path: Path) -> None:
    good = make_snap(index=1, term=1)
    ss = Snapshotter(tmp_path)
    ss.save_snap(good)
    bad = {
        snap_file_name(1, 2): b"",  # empty
        snap_file_name(1, 3): snap_file_bytes(0, b"x"),  # zero crc
        snap_file_name(1, 4): TEST_SNAP_FILE[:-1],  # torn
        snap_file_name(1, 5): TEST_SNAP_FILE[:10] + b"X" + TEST_SNAP_FILE[11:],  # crc mismatch
    }
    for name, raw in bad.items():
        write(tmp_path, raw, name)
    assert ss.load() == good
    assert files(tmp_path) == sorted([TEST_SNAP_NAME] + [n + ".broken" for n in bad])
    assert ss.snap_names() == [TEST_SNAP_NAME]


def test_load_newest_available_needs_term_and_index(tmp_path: Path) -> None:
    ss = Snapshotter(tmp_path)
    ss.save_snap(make_snap(index=5, term=2))
    with pytest.raises(NoSnapshotError):
        ss.load_newest_available([WalSnapshot(index=5, term=1), WalSnapshot(index=4, term=2)])
    with pytest.raises(NoSnapshotError):
        ss.load_newest_available([])
    assert files(tmp_path) == [snap_file_name(2, 5)]  # a readable mismatch is left alone
    cs = ConfState(voters=[9])  # the WAL record's conf_state plays no part
    found = ss.load_newest_available(iter([WalSnapshot(index=5, term=2, conf_state=cs)]))
    assert found == make_snap(index=5, term=2)


def test_load_newest_available_quarantines_a_broken_match(tmp_path: Path) -> None:
    ss = Snapshotter(tmp_path)
    ss.save_snap(make_snap(index=1, term=1))
    write(tmp_path, b"garbage", snap_file_name(1, 9))
    assert ss.load_newest_available([WalSnapshot(1, 1), WalSnapshot(9, 1)]) == make_snap()
    assert files(tmp_path) == [TEST_SNAP_NAME, snap_file_name(1, 9) + ".broken"]


def test_load_deletes_orphaned_db_tmp_files(tmp_path: Path) -> None:
    ss = Snapshotter(tmp_path)
    ss.save_snap(make_snap())
    for name in ("db.tmp", "db.tmp.123", "db", "keep.db.tmp"):
        write(tmp_path, b"x", name)
    assert ss.load() == make_snap()
    assert files(tmp_path) == [TEST_SNAP_NAME, "db", "keep.db.tmp"]


def test_snap_names_ignore_other_files(tmp_path: Path) -> None:
    for name in ("a.snap.broken", f"{1:016x}.snap.db", "x.tmp", "db", "snap", "b.snapx"):
        write(tmp_path, b"x", name)
    write(tmp_path, TEST_SNAP_FILE)
    assert Snapshotter(tmp_path).snap_names() == [TEST_SNAP_NAME]


def test_a_missing_directory_is_file_not_found(tmp_path: Path) -> None:
    ss = Snapshotter(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        ss.snap_names()
    with pytest.raises(FileNotFoundError):
        ss.load()
    with pytest.raises(FileNotFoundError):
        ss.save_snap(make_snap())
    assert not (tmp_path / "missing").exists()


# --- durability ---------------------------------------------------------------------------


def test_save_leaves_only_the_snap_file_with_mode_0600(tmp_path: Path) -> None:
    ss = Snapshotter(tmp_path)
    for i in range(1, 4):
        ss.save_snap(make_snap(index=i))
    assert files(tmp_path) == [snap_file_name(1, i) for i in range(1, 4)]
    for name in files(tmp_path):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_save_fsyncs_file_then_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[tuple[str, bool]] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        synced.append((os.path.basename(target), (tmp_path / TEST_SNAP_NAME).exists()))
        real_fsync(fd)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    monkeypatch.setattr(os, "fsync", spy)
    Snapshotter(tmp_path).save_snap(make_snap())
    assert len(synced) == 2
    (tmp_name, renamed_before_file_sync), (dir_name, renamed_before_dir_sync) = synced
    assert tmp_name.startswith(TEST_SNAP_NAME) and tmp_name.endswith(".tmp")
    assert not renamed_before_file_sync  # the data is synced under the temporary name
    assert dir_name == tmp_path.name and renamed_before_dir_sync  # then the rename


def test_a_failed_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(5, "injected fsync failure")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="injected"):
        Snapshotter(tmp_path).save_snap(make_snap())
    assert files(tmp_path) == []


def test_a_failed_save_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ss = Snapshotter(tmp_path)
    ss.save_snap(make_snap(data=b"old"))

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "injected rename failure")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="injected"):
        ss.save_snap(make_snap(data=b"new"))
    monkeypatch.undo()
    assert files(tmp_path) == [TEST_SNAP_NAME]
    assert ss.load() == make_snap(data=b"old")


# --- cleaning up -----------------------------------------------------------------------------


def test_release_snap_dbs_skips_unparsable_names(tmp_path: Path) -> None:
    odd = [
        "zz.snap.db",
        "0x1.snap.db",
        "+1.snap.db",
        "1_0.snap.db",
        ".snap.db",
        "1" * 17 + ".snap.db",
    ]
    kept = [*odd, "10.snap.db", "0000000000000001.snap", "00000000000000ff.snap.db"]
    for name in [*kept, "a.snap.db", "0000000000000002.snap.db"]:
        write(tmp_path, b"x", name)
    ss = Snapshotter(tmp_path)
    deleted = ss.release_snap_dbs(make_snap(index=0x10))
    assert deleted == ["0000000000000002.snap.db", "a.snap.db"]
    assert files(tmp_path) == sorted(kept)
    assert ss.release_snap_dbs(make_snap(index=0)) == []


def test_purge_snapshots_keeps_the_newest(tmp_path: Path) -> None:
    ss = Snapshotter(tmp_path)
    for index in range(1, 6):
        ss.save_snap(make_snap(index=index))
    write(tmp_path, b"x", f"{1:016x}.snap.db")
    assert ss.purge_snapshots(0) == []  # 0 keeps everything
    assert ss.purge_snapshots(10) == []
    assert ss.purge_snapshots(5) == []
    assert ss.purge_snapshots(2) == [snap_file_name(1, i) for i in (1, 2, 3)]
    assert ss.snap_names() == [snap_file_name(1, 5), snap_file_name(1, 4)]
    assert ss.purge_snapshots(1) == [snap_file_name(1, 4)]
    assert files(tmp_path) == [snap_file_name(1, 5), f"{1:016x}.snap.db"]
    assert ss.load() == make_snap(index=5)
    with pytest.raises(ValueError):
        ss.purge_snapshots(-1)


# --- properties ------------------------------------------------------------------------------

u64 = st.integers(min_value=0, max_value=2**64 - 1)
conf_states = st.builds(
    ConfState,
    voters=st.lists(u64, max_size=5),
    learners=st.lists(u64, max_size=5),
    voters_outgoing=st.lists(u64, max_size=5),
    learners_next=st.lists(u64, max_size=5),
    auto_leave=st.booleans(),
)
snapshots = st.builds(
    Snapshot,
    data=st.none() | st.binary(max_size=300),
    metadata=st.builds(
        SnapshotMetadata,
        conf_state=conf_states,
        index=st.integers(min_value=1, max_value=2**64 - 1),
        term=u64,
    ),
)


@settings(max_examples=150, deadline=None)
@given(snap=snapshots)
def test_save_then_read_round_trips(snap: Snapshot) -> None:
    with tempfile.TemporaryDirectory() as d:
        ss = Snapshotter(d)
        ss.save_snap(snap)
        name = f"{snap.metadata.term:016x}-{snap.metadata.index:016x}.snap"
        assert os.listdir(d) == [name]
        assert Snapshotter.read(os.path.join(d, name)) == snap
        assert ss.load() == snap
        raw = Path(d, name).read_bytes()
        assert raw == snap_file_bytes(crc32c(snap.SerializeToString()), snap.SerializeToString())


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_any_single_byte_corruption_is_detected(tmp_path: Path, mask: int) -> None:
    path = tmp_path / TEST_SNAP_NAME
    for pos in range(len(TEST_SNAP_FILE)):
        raw = bytearray(TEST_SNAP_FILE)
        raw[pos] ^= mask
        path.write_bytes(bytes(raw))
        try:
            got = Snapshotter.read(path)
        except Error:
            continue
        assert got == make_snap(), f"byte {pos} ^ {mask:#04x} gave {got!r}"


def test_every_truncation_is_detected(tmp_path: Path) -> None:
    path = tmp_path / TEST_SNAP_NAME
    for size in range(len(TEST_SNAP_FILE)):
        path.write_bytes(TEST_SNAP_FILE[:size])
        with pytest.raises(Error):
            Snapshotter.read(path)


@settings(max_examples=300, deadline=None)
@given(snap=snapshots, data=st.data())
def test_a_single_corruption_of_any_snapshot_file_is_detected(
    snap: Snapshot, data: st.DataObject
) -> None:
    inner = snap.SerializeToString()
    raw = bytearray(snap_file_bytes(crc32c(inner), inner))
    pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1), label="pos")
    raw[pos] ^= data.draw(st.integers(min_value=1, max_value=255), label="mask")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, snap_file_name(snap.metadata.term, snap.metadata.index))
        Path(path).write_bytes(bytes(raw))
        try:
            got = Snapshotter.read(path)
        except Error:
            return
        assert got == snap


@settings(max_examples=200)
@given(
    data=st.none() | st.binary(max_size=300),
    index=st.integers(1, 2**64 - 1),
    term=st.integers(0, 2**64 - 1),
    voters=st.lists(st.integers(0, 2**64 - 1), max_size=4),
    learners=st.lists(st.integers(0, 2**64 - 1), max_size=3),
)
def test_the_file_written_in_parts_is_the_marshalled_file(
    data: bytes | None, index: int, term: int, voters: list[int], learners: list[int]
) -> None:
    """save_snap writes the application's data without copying it: the
    parts, joined, are the file marshalled whole, byte for byte."""
    from raftwal.snap import snap_file_parts

    snap = Snapshot(
        data=data,
        metadata=SnapshotMetadata(
            conf_state=ConfState(voters=voters, learners=learners), index=index, term=term
        ),
    )
    whole = snap.SerializeToString()
    parts = snap_file_parts(snap)
    assert b"".join(parts) == snap_file_bytes(crc32c(whole), whole)
    if data:
        assert any(p is snap.data for p in parts)  # not a copy

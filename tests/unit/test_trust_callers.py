"""Careless callers: every call that returns leaves a directory that reopens
strictly to exactly what the calls built; every call that raises changes
nothing, in memory or on disk. Refusals come before the first byte is
written, with an error that says what was wrong with the argument."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import given, settings
from hypothesis import strategies as st

import raftwal
from raftwal import (
    WAL,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
    WalSnapshot,
)
from raftwal.cli.etcd_decode import _repeated, decode_data, decode_entry, message_class

BIG = 10 * 1024 * 1024  # etcd 3.4 reads records below this


def disk_state(d: Path) -> dict[str, bytes]:
    """Every file's bytes under ``d``, but the WAL's spare segment (``*.tmp``,
    made and zero-filled in the background)."""
    return {
        str(p.relative_to(d)): p.read_bytes()
        for p in sorted(d.rglob("*"))
        if p.is_file() and not p.name.endswith(".tmp")
    }


def mem_state(s: raftwal.DurableStorage) -> tuple[Any, ...]:
    first, last = s.first_index(), s.last_index()
    ents = s.entries(first, last + 1) if last >= first else []
    return (s.initial_state(), first, last, ents, s.snapshot(), s.durable_index)


def open_small(d: Path, **kw: Any) -> raftwal.DurableStorage:
    return raftwal.open(d, segment_size=4096, **kw)


def e(index: int, term: int = 1, data: bytes | None = b"x", type: int = 0) -> Entry:
    return Entry(term=term, index=index, type=type, data=data)


def refused(
    s: raftwal.DurableStorage, d: Path, exc: type[BaseException], call: Any, *args: Any
) -> pytest.ExceptionInfo[BaseException]:
    """``call(*args)`` raises ``exc`` and changes nothing, in memory or on disk."""
    s.wal.sync()
    before_mem, before_disk = mem_state(s), disk_state(d)
    with pytest.raises(exc) as info:
        call(*args)
    assert mem_state(s) == before_mem
    s.wal.sync()
    assert disk_state(d) == before_disk
    return info


def reopens_to(d: Path, want: tuple[Any, ...]) -> None:
    """A strict reopen holds what memory held: the HardState, ConfState,
    snapshot, last index and every entry after the snapshot (memory may
    have compacted further than the snapshot, or less far)."""
    hs_cs, _, last, ents, snap, _ = want
    with open_small(d, recovery="strict") as s:
        assert s.initial_state() == hs_cs
        assert s.snapshot() == snap and s.last_index() == last
        lo = max(s.first_index(), ents[0].index if ents else last + 1)
        assert s.entries(lo, last + 1) == [x for x in ents if x.index >= lo] if lo <= last else True
        assert s.first_index() == snap.metadata.index + 1


# --- 9: the whole batch is checked before the first byte -----------------------------


@pytest.mark.parametrize(
    "batch",
    [[2, 4], [2, 3, 5], [3, 2], [2, 2], [2, 1]],
    ids=["gap", "late-gap", "back", "dup", "back-in"],
)
def test_durable_storage_refuses_a_bad_batch_before_writing(
    tmp_path: Path, batch: list[int]
) -> None:
    d = tmp_path / "data"
    with open_small(d) as s:
        s.save(HardState(1, 1, 1), [e(1)])
        refused(s, d, ValueError, s.save, HardState(1, 1, 1), [e(i) for i in batch])
        fut_exc = refused(s, d, ValueError, s.save_async, HardState(1, 1, 1), [e(i) for i in batch])
        assert "consecutive" in str(fut_exc.value) or "missing" in str(fut_exc.value)
        want = mem_state(s)
    reopens_to(d, want)


@pytest.mark.parametrize("batch", [[2, 4], [3, 2], [1, 1]], ids=["gap", "back", "dup"])
def test_wal_save_refuses_a_bad_batch_before_writing(tmp_path: Path, batch: list[int]) -> None:
    d = tmp_path / "wal"
    with WAL.create(d, segment_size=4096) as w:
        w.save(HardState(1, 1, 1), [e(1)])
        before = disk_state(d)
        with pytest.raises(ValueError):
            w.save(HardState(1, 1, 1), [e(i) for i in batch])
        with pytest.raises(ValueError):
            w.save_async(HardState(1, 1, 1), [e(i) for i in batch])
        assert disk_state(d) == before
        w.save(HardState(1, 1, 2), [e(2)])  # still usable
    raftwal.verify(d)
    with WAL.open(d) as w:
        assert [x.index for x in w.read_all()[2]] == [1, 2]


def test_wal_save_refuses_a_gap_after_the_last_index(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    with WAL.create(d, segment_size=4096) as w:
        w.save(HardState(1, 1, 1), [e(1)])
        with pytest.raises(ValueError, match="missing log entry"):
            w.save(HardState(), [e(3)])
    with WAL.open(d) as w:
        w.read_all()  # reopens (it would raise SliceOutOfRangeError after a gap)
        with pytest.raises(ValueError, match="missing log entry"):
            w.save(HardState(), [e(3)])
        w.save(HardState(), [e(2)])


def test_wal_save_refuses_a_commit_past_the_last_index(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    with WAL.create(d, segment_size=4096) as w:
        w.save(HardState(1, 1, 1), [e(1)])
        with pytest.raises(ValueError, match="past the last index"):
            w.save(HardState(1, 1, 3), [e(2)])
        w.save(HardState(1, 1, 2), [e(2)])


def test_an_oversized_entry_is_a_value_error_and_moves_nothing(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with open_small(d) as s:
        s.save(HardState(1, 1, 1), [e(1)])
        big = e(2, data=bytes(BIG))
        info = refused(s, d, raftwal.Error, s.save, HardState(1, 1, 1), [big])
        # the refused save did not move the log's end: a gap after it is still a gap
        refused(s, d, ValueError, s.save, HardState(1, 1, 1), [e(3)])
        refused(s, d, raftwal.Error, s.save_async, HardState(1, 1, 1), [big])
        refused(s, d, ValueError, s.save, HardState(1, 1, 1), [e(3)])
        s.save(HardState(1, 1, 2), [e(2)])
        want = mem_state(s)
    reopens_to(d, want)
    assert isinstance(info.value, raftwal.EntryTooLargeError)
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, raftwal.CorruptionError)


def test_wal_write_side_oversize_is_not_corruption(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", segment_size=4096) as w:
        with pytest.raises(raftwal.EntryTooLargeError) as info:
            w.save(HardState(), [e(1, data=bytes(BIG))])
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, raftwal.RecordTooLargeError | raftwal.CorruptionError)
    assert issubclass(raftwal.RecordTooLargeError, raftwal.CorruptionError)
    assert "EntryTooLargeError" in raftwal.__all__


def snap_at(index: int, term: int = 1) -> Snapshot:
    return Snapshot(
        data=b"snap",
        metadata=SnapshotMetadata(conf_state=ConfState(voters=[1]), index=index, term=term),
    )


def test_a_snapshot_save_must_be_committed(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with open_small(d) as s:
        s.save(HardState(1, 1, 1), [e(1)])
        # commit 1 below the snapshot: a restart would not use the snapshot
        refused(s, d, ValueError, s.save, HardState(1, 1, 1), [], snap_at(5))
        refused(s, d, ValueError, s.save, HardState(), [], snap_at(5))
        s.save(HardState(1, 1, 5), [e(6)], snap_at(5))
        want = mem_state(s)
    reopens_to(d, want)


def test_a_commit_past_the_last_index_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with open_small(d) as s:
        s.save(HardState(1, 1, 0), [e(1), e(2)])
        refused(s, d, ValueError, s.save, HardState(1, 1, 3), [])
        refused(s, d, ValueError, s.save, HardState(1, 1, 5), [e(3), e(4)])
        refused(s, d, ValueError, s.save_async, HardState(1, 1, 5), [e(3)])
        s.save(HardState(1, 1, 2), [])
        # an overwrite below the commit would drop committed entries
        refused(s, d, ValueError, s.save, HardState(), [e(1, term=2)])
        s.save(HardState(2, 1, 2), [e(3, term=2)])
        want = mem_state(s)
    reopens_to(d, want)


def test_create_snapshot_beyond_the_persisted_commit_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with open_small(d, max_wals=1, catch_up_entries=0) as s:
        for i in range(1, 60):
            s.save(HardState(1, 1, min(i, 20)), [e(i, data=b"v" * 200)])
        info = refused(s, d, ValueError, s.create_snapshot, 50, ConfState(voters=[1]), b"s")
        assert "commit" in str(info.value)
        s.create_snapshot(20, ConfState(voters=[1]), b"s")
        want = mem_state(s)
    reopens_to(d, want)
    with open_small(d, recovery="strict") as s:
        assert s.snapshot().metadata.index == 20 and s.last_index() == 59


# --- 10: no phantom entries; durable_index <= last_index ---------------------------------


def test_a_save_async_that_raises_leaves_nothing_in_flight(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with open_small(d) as s:
        s.save(HardState(1, 1, 1), [e(1)])
        big = [e(2), e(3, data=bytes(BIG))]
        with pytest.raises(raftwal.Error):  # EntryTooLargeError
            s.save_async(HardState(1, 1, 1), big)
        assert s.last_index() == 1
        s.save(HardState(2, 1, 1), [])  # a save with no entries lands nothing else
        assert s.last_index() == 1 and s.durable_index == 1
        s.save(HardState(2, 1, 2), [e(2, data=b"real")])
        assert s.last_index() == 2 and s.durable_index == 2
        assert s.entries(2, 3) == [e(2, data=b"real")]
        want = mem_state(s)
    reopens_to(d, want)


@pytest.mark.timeout(120)
def test_durable_index_never_passes_last_index(tmp_path: Path) -> None:
    d = tmp_path / "data"
    bad: list[tuple[int, int]] = []
    stop = threading.Event()
    with open_small(d) as s:

        def poll() -> None:
            while not stop.is_set():
                di = s.durable_index
                li = s.last_index()
                if di > li:
                    bad.append((di, li))

        t = threading.Thread(target=poll)
        t.start()
        try:
            futs = []
            for i in range(1, 3001):
                futs.append(s.save_async(HardState(1, 1, i - 1), [e(i)]))
                di, li = s.durable_index, s.last_index()
                if di > li:
                    bad.append((di, li))
            for f in futs:
                f.result(timeout=60)
        finally:
            stop.set()
            t.join()
        assert s.durable_index == s.last_index() == 3000
        s.create_snapshot(s.durable_index - 1, ConfState(voters=[1]), b"x")
    assert bad == []


# --- 11: a failed create_snapshot changes nothing ------------------------------------------


def test_a_failed_snapshot_file_changes_nothing_and_a_retry_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "data"
    with open_small(d) as s:
        s.save(HardState(1, 1, 5), [e(i) for i in range(1, 6)])

        def fail(self: raftwal.Snapshotter, snap: Snapshot) -> None:
            raise OSError(28, "No space left on device")

        with monkeypatch.context() as m:
            m.setattr(raftwal.Snapshotter, "save_snap", fail)
            refused(s, d, OSError, s.create_snapshot, 4, ConfState(voters=[1]), b"s4")
        assert s.snapshot().metadata.index == 0
        snap = s.create_snapshot(4, ConfState(voters=[1]), b"s4")
        assert s.snapshot() == snap
        want = mem_state(s)
    reopens_to(d, want)


# --- 12: types, arguments, read-only --------------------------------------------------------


def test_entry_types_outside_0_to_2_are_refused_when_made() -> None:
    for t in (3, 7, -1):
        with pytest.raises(ValueError):
            Entry(term=1, index=1, type=t)
    x = Entry(term=1, index=1, type=2)
    with pytest.raises(ValueError):
        x.type = 7
    assert x.type == 2


def test_the_core_refuses_entry_types_outside_0_to_2(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    with WAL.create(d, segment_size=4096) as w:
        before = disk_state(d)
        duck = SimpleNamespace(term=1, index=1, type=7, data=b"x")
        with pytest.raises(ValueError, match="type 7"):
            w.save(HardState(), [duck])  # type: ignore[list-item]
        assert disk_state(d) == before


def test_dump_decodes_unknown_enum_values_as_numbers() -> None:
    rr = message_class("InternalRaftRequest")()
    c = rr.txn.compare.add()
    c.key = b"k"
    c.target = 9  # no such CompareTarget
    c.result = 7  # no such CompareResult
    rr.txn.success.add().request_put.key = b"k"
    kind, summary, req = decode_data(0, rr.SerializeToString())
    assert kind == "txn" and "9" in summary and "7" in summary
    json.dumps(req)


def _field_values(fd: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    t = fd.type
    if t == FieldDescriptor.TYPE_MESSAGE:
        return _messages(fd.message_type, depth + 1)
    if t == FieldDescriptor.TYPE_ENUM:
        return st.integers(-(2**31), 2**31 - 1)
    if t in (FieldDescriptor.TYPE_BYTES,):
        return st.binary(max_size=40)
    if t == FieldDescriptor.TYPE_STRING:
        return st.text(max_size=20)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=False, width=32)
    unsigned = t in (
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_FIXED32,
    )
    bits = 32 if t in (5, 13, 7, 15, 17) else 64  # int32, uint32, fixed32, sfixed32, sint32
    lo = 0 if unsigned else -(2 ** (bits - 1))
    hi = 2**bits - 1 if unsigned else 2 ** (bits - 1) - 1
    return st.integers(lo, hi)


def _messages(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """Messages of type ``desc`` with any field values, enums out of range included."""
    cls = message_factory.GetMessageClass(desc)
    fields = [fd for fd in desc.fields if depth < 4 or fd.type != FieldDescriptor.TYPE_MESSAGE]

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        msg = cls()
        for fd in (
            draw(st.lists(st.sampled_from(fields), max_size=4, unique_by=lambda f: f.number))
            if fields
            else []
        ):
            if _repeated(fd):
                vals = draw(st.lists(_field_values(fd, depth), max_size=3))
                if fd.type == FieldDescriptor.TYPE_MESSAGE:
                    for v in vals:
                        getattr(msg, fd.name).add().CopyFrom(v)
                else:
                    getattr(msg, fd.name).extend(vals)
            elif fd.type == FieldDescriptor.TYPE_MESSAGE:
                getattr(msg, fd.name).CopyFrom(draw(_field_values(fd, depth)))
            else:
                setattr(msg, fd.name, draw(_field_values(fd, depth)))
        return msg

    return build()


_IRR = message_class("InternalRaftRequest")


@settings(max_examples=300, deadline=None)
@given(msg=_messages(_IRR.DESCRIPTOR))
def test_decoding_any_etcd_request_never_raises(msg: Any) -> None:
    data = msg.SerializeToString()
    for t in (0, 1, 2):
        _, summary, req = decode_data(t, data)
        assert isinstance(summary, str)
        json.dumps(req)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), t=st.sampled_from([0, 1, 2]))
def test_decoding_arbitrary_bytes_never_raises(data: bytes, t: int) -> None:
    d = decode_entry(Entry(term=1, index=1, type=t, data=data))
    json.dumps(d.as_json())


def test_metadata_etcd_cannot_read_is_refused_at_create(tmp_path: Path) -> None:
    big = bytes(BIG)
    with pytest.raises(raftwal.EntryTooLargeError):
        WAL.create(tmp_path / "wal", big)
    with pytest.raises(raftwal.EntryTooLargeError):
        raftwal.open(tmp_path / "data", metadata=big)
    assert list(tmp_path.iterdir()) == []
    with WAL.create(tmp_path / "wal", bytes(BIG - 4096)):
        pass


@pytest.mark.parametrize(
    "kw",
    [
        {"max_wals": -1},
        {"max_snapshots": -1},
        {"snapshot_count": -5},
        {"catch_up_entries": -1},
        {"segment_size": -1},
    ],
)
def test_open_checks_its_arguments_before_touching_the_disk(
    tmp_path: Path, kw: dict[str, int]
) -> None:
    with pytest.raises(ValueError):
        raftwal.open(tmp_path / "data", **kw)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError):
        raftwal.open(tmp_path / "data", max_wals="5")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_open_refuses_an_empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError):
        raftwal.open("")
    assert list(tmp_path.iterdir()) == []


def test_wrong_argument_types_say_what_was_wanted(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with open_small(d) as s:
        s.save(HardState(1, 1, 1), [e(1)])
        info = refused(s, d, TypeError, s.save, None, [e(2)])
        assert "HardState" in str(info.value)
        info = refused(s, d, TypeError, s.save, HardState(1, 1, 1), [b"x"])
        assert "Entry" in str(info.value)
        refused(s, d, TypeError, s.save_async, None, [e(2)])
        refused(s, d, TypeError, s.save, HardState(1, 1, 1), b"x")
        refused(s, d, TypeError, s.save, HardState(1, 1, 1), [e(2)], "snap")
        refused(s, d, TypeError, s.create_snapshot, 1, [1], b"x")
        refused(s, d, TypeError, s.create_snapshot, 1, None, "text")
        refused(s, d, TypeError, s.create_snapshot, "1", None, b"x")
        refused(s, d, TypeError, s.compact, 1.0)
    with WAL.create(tmp_path / "wal", segment_size=4096) as w:
        with pytest.raises(TypeError, match="HardState"):
            w.save(None, [e(1)])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="Entry"):
            w.save(HardState(), [b"x"])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="Entry, not bytes"):
            w.save(HardState(), [e(1), b"x"])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="WalSnapshot"):
            w.save_snapshot(b"x")  # type: ignore[arg-type]
    with open_small(tmp_path / "d2") as s:
        with pytest.raises(TypeError, match=r"entries\[1\] must be a raftwal\.Entry, not bytes"):
            s.save(HardState(1, 1, 1), [e(1), b"x"])  # type: ignore[list-item]
        assert s.last_index() == 0
    m = raftwal.MemoryStorage()
    with pytest.raises(TypeError, match=r"entries\[0\] must be a raftwal\.Entry, not bytes"):
        m.append([b"x"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"entries\[1\] must be a raftwal\.Entry, not bytes"):
        m.append([e(1), b"x"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"sequence of raftwal\.Entry, not bytes"):
        m.append(b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="HardState, not tuple"):
        m.set_hard_state((1, 0, 0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Snapshot, not bytes"):
        m.apply_snapshot(b"x")  # type: ignore[arg-type]
    assert m.last_index() == 0


def test_saving_to_a_read_only_wal_says_so(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    with WAL.create(d, segment_size=4096) as w:
        w.save(HardState(1, 1, 1), [e(1)])
    with WAL.open_for_read(d) as r:
        r.read_all()
        for call in (
            lambda: r.save(HardState(1, 1, 1), [e(2)]),
            lambda: r.save_async(HardState(1, 1, 1), [e(2)]),
            lambda: r.save_snapshot(WalSnapshot(index=1, term=1)),
        ):
            with pytest.raises(raftwal.WALReadOnlyError, match="read-only") as info:
                call()
            assert isinstance(info.value, raftwal.Error)
    assert "WALReadOnlyError" in raftwal.__all__


def test_calls_after_close_raise_and_write_nothing(tmp_path: Path) -> None:
    d = tmp_path / "data"
    s = open_small(d)
    s.save(HardState(1, 1, 1), [e(1)])
    s.close()
    before = disk_state(d)
    with pytest.raises(raftwal.WALClosedError):
        s.save(HardState(1, 1, 2), [e(2)], snap_at(2))
    with pytest.raises(raftwal.WALClosedError):
        s.create_snapshot(1, ConfState(voters=[1]), b"x")
    assert disk_state(d) == before
    assert s.last_index() == 1


def test_durable_index_does_not_fall_below_a_snapshot_after_a_reopen(tmp_path: Path) -> None:
    """A log whose last index is a snapshot record's (a leader's snapshot,
    no entry after it yet) stays durable to that index across syncs."""
    d = tmp_path / "data"
    with open_small(d) as s:
        s.save(HardState(2, 1, 5), [], snap_at(5, term=2))
    with open_small(d, recovery="strict") as s:
        assert s.durable_index == s.last_index() == 5
        s.save(HardState(2, 2, 5), [])  # a vote change: synced
        s.wal.sync()
        assert s.wal.durable_index == 5
        assert s.durable_index == s.last_index() == 5


def test_dump_etcd_prints_an_unknown_compare_target(tmp_path: Path) -> None:
    rr = message_class("InternalRaftRequest")()
    c = rr.txn.compare.add()
    c.key, c.target, c.result = b"k", 9, 0
    d = tmp_path / "data"
    with open_small(d) as s:
        s.save(HardState(1, 1, 1), [e(1, data=rr.SerializeToString())])
    r = subprocess.run(
        [sys.executable, "-m", "raftwal", "dump", str(d), "--etcd"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "txn compare=[9(" in r.stdout

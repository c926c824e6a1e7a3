"""The storage shares no object with its callers: what it serves equals
what is on disk whatever a caller does with the objects it passed in or got
back, in memory and bounded modes."""

from __future__ import annotations

from pathlib import Path

import pytest

import raftwal
from raftwal import ConfState, Entry, HardState, Snapshot, SnapshotMetadata


def _served(s: raftwal.DurableStorage) -> tuple[object, ...]:
    first, last = s.first_index(), s.last_index()
    ents = [(e.term, e.index, e.data) for e in s.entries(first, last + 1)]
    return (s.initial_state()[0], first, last, ents, s.snapshot().metadata.index)


@pytest.mark.parametrize("bounded", [False, True])
def test_mutating_objects_changes_nothing_stored(tmp_path: Path, bounded: bool) -> None:
    d = tmp_path / "data"
    with raftwal.open(d, bounded_memory=bounded) as s:
        batch = [Entry(term=1, index=i, data=b"e%d" % i) for i in (1, 2, 3)]
        hs = HardState(term=1, vote=1, commit=3)
        s.save(hs, batch)
        for e in batch:  # a caller reusing its objects
            e.term, e.data = 9, b"changed"
        hs.term = 9
        more = [Entry(term=1, index=4, data=b"e4")]
        hs2 = HardState(term=1, vote=1, commit=4)
        fut = s.save_async(hs2, more)
        more[0].data, hs2.term, hs2.commit = b"changed", 7, 1  # before it lands
        fut.result(timeout=30)
        got = s.entries(1, 5)
        for e in got:  # mutating what was served
            e.term, e.data = 8, b"served"
        assert s.term(4) == 1
        snap = Snapshot(
            data=b"snap",
            metadata=SnapshotMetadata(index=10, term=2, conf_state=ConfState(voters=[1])),
        )
        s.save(HardState(term=2, vote=1, commit=10), [], snapshot=snap)
        snap.metadata.index, snap.data = 99, b"changed"
        s.save(HardState(term=2, vote=1, commit=11), [Entry(term=2, index=11, data=b"e11")])
        before = _served(s)
        assert before[0] == HardState(term=2, vote=1, commit=11)
        assert s.snapshot().data == b"snap" and s.snapshot().metadata.index == 10
    with raftwal.open(d, recovery="strict", bounded_memory=bounded) as again:
        assert _served(again) == before


def test_entries_handed_out_are_not_the_stored_ones(tmp_path: Path) -> None:
    with raftwal.open(tmp_path / "data") as s:
        s.save(HardState(term=1, vote=1, commit=2), [Entry(term=1, index=i) for i in (1, 2)])
        a = s.entries(1, 3)
        a[0].term = 5
        assert [e.term for e in s.entries(1, 3)] == [1, 1]
        assert s.term(1) == 1

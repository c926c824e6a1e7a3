"""The behavioural contract of every raftwal ``Storage`` implementation.

One suite, run against each implementation (openraft's ``Suite`` idea): a
test module subclasses :class:`StorageContract` under a ``Test*`` name and
defines :meth:`StorageContract.make_adapter`.

The suite reads through the :class:`raftwal.Storage` protocol only. It
changes the storage through a :class:`StorageAdapter`, so an
implementation whose mutations go through another API (``DurableStorage``
saves entries, hard states and snapshots through ``save``) only needs its
own adapter. :class:`MemoryAdapter` drives anything with
``MemoryStorage``'s mutation API. An adapter that cannot express an
operation calls ``pytest.skip()`` from that method.

It holds every case of etcd's ``raft/storage_test.go`` (TestStorageTerm,
Entries, LastIndex, FirstIndex, Compact, CreateSnapshot, Append,
ApplySnapshot). etcd builds those storages directly with the entries
``{3,3} {4,4} {5,5}`` (index, term); here the same state comes from the
public API: a snapshot at index 3, term 3, then entries 4 and 5
(:func:`build_345`). Further cases pin down edges etcd's tests leave open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import pytest

from raftwal import (
    CompactedError,
    ConfState,
    Entry,
    EntryConfChange,
    EntryConfChangeV2,
    EntryNormal,
    HardState,
    SnapOutOfDateError,
    Snapshot,
    SnapshotMetadata,
    UnavailableError,
)
from raftwal.storage import Storage

__all__ = [
    "MemoryAdapter",
    "StorageAdapter",
    "StorageContract",
    "build_345",
    "log_of",
]


class StorageAdapter(Protocol):
    """How the suite changes a storage under test.

    Each mutation has ``MemoryStorage``'s meaning and raises what it raises.
    ``storage`` is read again after every :meth:`reopen`, which closes the
    storage and opens it again from what it persisted (a no-op for storages
    that persist nothing). An adapter that cannot express an operation
    calls ``pytest.skip()`` from it.
    """

    @property
    def storage(self) -> Storage:
        """The storage under test (a new object after :meth:`reopen`, maybe)."""
        ...

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the log with ``snap``."""
        ...

    def append(self, entries: Sequence[Entry]) -> None:
        """Append (and truncate a conflicting suffix)."""
        ...

    def compact(self, index: int) -> None:
        """Drop the entries before ``index``."""
        ...

    def create_snapshot(
        self, index: int, conf_state: ConfState | None, data: bytes | None
    ) -> Snapshot:
        """Make and return the snapshot at ``index``."""
        ...

    def set_hard_state(self, hs: HardState) -> None:
        """Store the hard state."""
        ...

    @property
    def hard_state(self) -> HardState:
        """The HardState the storage must report: the last one set, or what
        the adapter had to store with a snapshot (a durable storage stores a
        snapshot with a HardState that commits it, as raft hands it over)."""
        ...

    def reopen(self) -> None:
        """Close and reopen from what was persisted."""
        ...

    def close(self) -> None:
        """Release the storage at the end of a test."""
        ...


class MemoryAdapter:
    """Adapter for a storage with ``MemoryStorage``'s own mutation methods."""

    def __init__(self, storage: Any) -> None:
        self._storage = storage
        self.hard_state = HardState()

    @property
    def storage(self) -> Storage:
        """The wrapped storage."""
        return self._storage  # type: ignore[no-any-return]

    def apply_snapshot(self, snap: Snapshot) -> None:
        """``storage.apply_snapshot``."""
        self._storage.apply_snapshot(snap)

    def append(self, entries: Sequence[Entry]) -> None:
        """``storage.append``."""
        self._storage.append(entries)

    def compact(self, index: int) -> None:
        """``storage.compact``."""
        self._storage.compact(index)

    def create_snapshot(
        self, index: int, conf_state: ConfState | None, data: bytes | None
    ) -> Snapshot:
        """``storage.create_snapshot``."""
        return self._storage.create_snapshot(index, conf_state, data)  # type: ignore[no-any-return]

    def set_hard_state(self, hs: HardState) -> None:
        """``storage.set_hard_state``."""
        self.hard_state = HardState(hs.term, hs.vote, hs.commit)
        self._storage.set_hard_state(hs)

    def reopen(self) -> None:
        """Nothing is persisted, so nothing changes."""

    def close(self) -> None:
        """Nothing to release."""


# --- helpers -----------------------------------------------------------------


def ent(index: int, term: int, **kw: Any) -> Entry:
    """An entry, (index, term) first as in etcd's test tables."""
    return Entry(index=index, term=term, **kw)


def ents(*pairs: tuple[int, int]) -> list[Entry]:
    """Entries from (index, term) pairs."""
    return [ent(i, t) for i, t in pairs]


def snap_at(index: int, term: int, conf_state: ConfState | None = None) -> Snapshot:
    """A snapshot with only metadata."""
    return Snapshot(metadata=SnapshotMetadata(conf_state=conf_state, index=index, term=term))


def build_345(a: StorageAdapter) -> None:
    """etcd's test storage ``[{3,3},{4,4},{5,5}]``, through the public API."""
    a.apply_snapshot(snap_at(3, 3))
    a.append(ents((4, 4), (5, 5)))


def build_3456(a: StorageAdapter) -> None:
    """etcd's TestStorageEntries storage ``[{3,3},{4,4},{5,5},{6,6}]``."""
    build_345(a)
    a.append(ents((6, 6)))


def log_of(s: Storage) -> list[tuple[int, int]]:
    """etcd's ``ms.ents`` as (index, term) pairs: the dummy, then every entry."""
    first, last = s.first_index(), s.last_index()
    out = [(first - 1, s.term(first - 1))]
    if last >= first:
        out += [(e.index, e.term) for e in s.entries(first, last + 1)]
    return out


def state_of(s: Storage) -> tuple[Any, ...]:
    """Everything the Storage protocol shows, for 'unchanged' checks."""
    hs, cs = s.initial_state()
    return (log_of(s), hs, cs, s.snapshot())


def full(s: Storage) -> list[Entry]:
    """All entries the storage holds."""
    return s.entries(s.first_index(), s.last_index() + 1)


def voters_123() -> ConfState:
    """A fresh ``ConfState(voters=[1, 2, 3])`` (fresh, so no test can alias another's)."""
    return ConfState(voters=[1, 2, 3])


def _check_initial_state(s: Storage, want: tuple[HardState, ConfState]) -> None:
    assert s.initial_state() == want


class StorageContract:
    """The contract suite; subclass it as ``Test...`` and define :meth:`make_adapter`."""

    def make_adapter(self, tmp_path: Path) -> StorageAdapter:
        """A fresh, empty storage (its files, if any, under ``tmp_path``)."""
        raise NotImplementedError

    @pytest.fixture
    def adapter(self, tmp_path: Path) -> Iterator[StorageAdapter]:
        a = self.make_adapter(tmp_path)
        try:
            yield a
        finally:
            a.close()

    @staticmethod
    def both(a: StorageAdapter, check: Callable[[Storage], None]) -> None:
        """Run ``check`` now and again after a reopen."""
        check(a.storage)
        a.reopen()
        check(a.storage)

    # --- etcd raft/storage_test.go ------------------------------------------

    @pytest.mark.parametrize(
        ("i", "err", "term"),
        [
            (2, CompactedError, 0),
            (3, None, 3),
            (4, None, 4),
            (5, None, 5),
            (6, UnavailableError, 0),
        ],
    )
    def test_etcd_term(
        self, adapter: StorageAdapter, i: int, err: type[Exception] | None, term: int
    ) -> None:
        build_345(adapter)
        s = adapter.storage
        if err is None:
            assert s.term(i) == term
        else:
            with pytest.raises(err):
                s.term(i)

    def test_etcd_entries_sizes(self, adapter: StorageAdapter) -> None:
        # The max_size column of etcd's table is built from these sizes.
        build_3456(adapter)
        assert [e.ByteSize() for e in full(adapter.storage)] == [6, 6, 6]

    @pytest.mark.parametrize(
        ("lo", "hi", "max_size", "err", "want"),
        [
            (2, 6, None, CompactedError, None),
            (3, 4, None, CompactedError, None),
            (4, 5, None, None, [(4, 4)]),
            (4, 6, None, None, [(4, 4), (5, 5)]),
            (4, 7, None, None, [(4, 4), (5, 5), (6, 6)]),
            (4, 7, 2**64 - 1, None, [(4, 4), (5, 5), (6, 6)]),
            # even if max_size is zero, the first entry is returned
            (4, 7, 0, None, [(4, 4)]),
            # the limit is exactly the first two entries
            (4, 7, 12, None, [(4, 4), (5, 5)]),
            # ... plus half of the third
            (4, 7, 15, None, [(4, 4), (5, 5)]),
            # ... plus all but one byte of the third
            (4, 7, 17, None, [(4, 4), (5, 5)]),
            # ... exactly all three
            (4, 7, 18, None, [(4, 4), (5, 5), (6, 6)]),
        ],
    )
    def test_etcd_entries(
        self,
        adapter: StorageAdapter,
        lo: int,
        hi: int,
        max_size: int | None,
        err: type[Exception] | None,
        want: list[tuple[int, int]] | None,
    ) -> None:
        build_3456(adapter)
        s = adapter.storage
        if err is not None:
            with pytest.raises(err):
                s.entries(lo, hi, max_size)
        else:
            assert want is not None
            assert s.entries(lo, hi, max_size) == ents(*want)

    def test_etcd_last_index(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        assert adapter.storage.last_index() == 5
        adapter.append(ents((6, 5)))
        assert adapter.storage.last_index() == 6

    def test_etcd_first_index(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        assert adapter.storage.first_index() == 4
        adapter.compact(4)
        assert adapter.storage.first_index() == 5

    @pytest.mark.parametrize(
        ("i", "err", "dummy_index", "dummy_term", "length"),
        [
            (2, CompactedError, 3, 3, 3),
            (3, CompactedError, 3, 3, 3),
            (4, None, 4, 4, 2),
            (5, None, 5, 5, 1),
        ],
    )
    def test_etcd_compact(
        self,
        adapter: StorageAdapter,
        i: int,
        err: type[Exception] | None,
        dummy_index: int,
        dummy_term: int,
        length: int,
    ) -> None:
        build_345(adapter)
        if err is not None:
            with pytest.raises(err):
                adapter.compact(i)
        else:
            adapter.compact(i)
        log = log_of(adapter.storage)
        assert log[0] == (dummy_index, dummy_term)
        assert len(log) == length

    @pytest.mark.parametrize(("i", "term"), [(4, 4), (5, 5)])
    def test_etcd_create_snapshot(self, adapter: StorageAdapter, i: int, term: int) -> None:
        build_345(adapter)
        want = Snapshot(
            data=b"data", metadata=SnapshotMetadata(conf_state=voters_123(), index=i, term=term)
        )
        assert adapter.create_snapshot(i, voters_123(), b"data") == want
        assert adapter.storage.snapshot() == want

    @pytest.mark.parametrize(
        ("new", "want"),
        [
            ([(1, 1), (2, 2)], [(3, 3), (4, 4), (5, 5)]),
            ([(3, 3), (4, 4), (5, 5)], [(3, 3), (4, 4), (5, 5)]),
            ([(3, 3), (4, 6), (5, 6)], [(3, 3), (4, 6), (5, 6)]),
            ([(3, 3), (4, 4), (5, 5), (6, 5)], [(3, 3), (4, 4), (5, 5), (6, 5)]),
            # truncate the incoming entries, then truncate the existing ones and append
            ([(2, 3), (3, 3), (4, 5)], [(3, 3), (4, 5)]),
            # truncate the existing entries and append
            ([(4, 5)], [(3, 3), (4, 5)]),
            # direct append
            ([(6, 5)], [(3, 3), (4, 4), (5, 5), (6, 5)]),
        ],
        ids=["compacted", "same", "conflict", "extend", "both-truncated", "truncate", "direct"],
    )
    def test_etcd_append(
        self, adapter: StorageAdapter, new: list[tuple[int, int]], want: list[tuple[int, int]]
    ) -> None:
        build_345(adapter)
        adapter.append(ents(*new))

        def check(s: Storage) -> None:
            assert log_of(s) == want

        self.both(adapter, check)

    def test_etcd_apply_snapshot(self, adapter: StorageAdapter) -> None:
        adapter.apply_snapshot(snap_at(4, 4, voters_123()))
        with pytest.raises(SnapOutOfDateError):
            adapter.apply_snapshot(snap_at(3, 3, voters_123()))

    # --- a fresh storage -------------------------------------------------------

    def test_fresh(self, adapter: StorageAdapter) -> None:
        def check(s: Storage) -> None:
            assert isinstance(s, Storage)
            assert s.first_index() == 1
            assert s.last_index() == 0
            assert s.term(0) == 0
            with pytest.raises(UnavailableError):
                s.term(1)
            with pytest.raises(UnavailableError):
                s.entries(1, 1)
            with pytest.raises(CompactedError):
                s.entries(0, 1)
            assert s.initial_state() == (HardState(), ConfState())
            assert s.snapshot() == Snapshot()
            assert s.snapshot().is_empty()

        self.both(adapter, check)

    def test_fresh_refuses_index_zero_snapshot(self, adapter: StorageAdapter) -> None:
        with pytest.raises(SnapOutOfDateError):
            adapter.apply_snapshot(Snapshot(metadata=SnapshotMetadata(conf_state=voters_123())))
        assert adapter.storage.initial_state() == (HardState(), ConfState())

    def test_first_entries_on_fresh_storage(self, adapter: StorageAdapter) -> None:
        adapter.append(ents((1, 1), (2, 1), (3, 2)))

        def check(s: Storage) -> None:
            assert (s.first_index(), s.last_index()) == (1, 3)
            assert s.term(0) == 0
            assert log_of(s) == [(0, 0), (1, 1), (2, 1), (3, 2)]

        self.both(adapter, check)

    # --- only the dummy --------------------------------------------------------

    def test_entries_only_dummy_unavailable(self, adapter: StorageAdapter) -> None:
        adapter.apply_snapshot(snap_at(10, 2))

        def check(s: Storage) -> None:
            assert (s.first_index(), s.last_index()) == (11, 10)
            assert s.term(10) == 2
            with pytest.raises(CompactedError):
                s.term(9)
            with pytest.raises(UnavailableError):
                s.term(11)
            with pytest.raises(UnavailableError):
                s.entries(11, 11)
            with pytest.raises(CompactedError):
                s.entries(10, 11)

        self.both(adapter, check)

    def test_compact_to_last_leaves_only_dummy(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        adapter.compact(5)
        s = adapter.storage
        assert (s.first_index(), s.last_index()) == (6, 5)
        assert s.term(5) == 5
        with pytest.raises(UnavailableError):
            s.entries(6, 6)
        adapter.append(ents((6, 6)))
        assert s.entries(6, 7) == ents((6, 6))

    # --- out-of-range arguments -------------------------------------------------

    @pytest.mark.parametrize("hi", [7, 8, 100])
    def test_entries_hi_out_of_range(self, adapter: StorageAdapter, hi: int) -> None:
        build_345(adapter)
        with pytest.raises(ValueError):
            adapter.storage.entries(4, hi)
        with pytest.raises(ValueError):
            adapter.storage.entries(4, hi, 0)

    def test_entries_lo_after_hi(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        with pytest.raises(ValueError):
            adapter.storage.entries(5, 4)
        with pytest.raises(ValueError):
            adapter.storage.entries(7, 6)

    @pytest.mark.parametrize("lo", [4, 5, 6])
    def test_entries_empty_range(self, adapter: StorageAdapter, lo: int) -> None:
        build_345(adapter)
        assert adapter.storage.entries(lo, lo) == []
        assert adapter.storage.entries(lo, lo, 0) == []

    def test_term_far_out_of_range(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        with pytest.raises(CompactedError):
            adapter.storage.term(0)
        with pytest.raises(UnavailableError):
            adapter.storage.term(10**12)

    # --- append -----------------------------------------------------------------

    @pytest.mark.parametrize("start", [7, 8, 100])
    def test_append_gap(self, adapter: StorageAdapter, start: int) -> None:
        build_345(adapter)
        before = state_of(adapter.storage)
        with pytest.raises(ValueError):
            adapter.append(ents((start, 6), (start + 1, 6)))
        assert state_of(adapter.storage) == before

    def test_append_gap_after_fresh(self, adapter: StorageAdapter) -> None:
        with pytest.raises(ValueError):
            adapter.append(ents((2, 1)))
        assert log_of(adapter.storage) == [(0, 0)]

    def test_append_gap_after_compacted(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        adapter.compact(5)
        with pytest.raises(ValueError):
            adapter.append(ents((7, 7)))
        assert log_of(adapter.storage) == [(5, 5)]

    def test_append_empty(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        before = state_of(adapter.storage)
        adapter.append([])
        assert state_of(adapter.storage) == before

    def test_append_truncates_conflicting_suffix(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        adapter.append(ents((6, 5), (7, 5), (8, 5), (9, 5)))
        # A new leader overwrites from index 6: everything after is gone,
        # even the indexes the new batch does not reach.
        adapter.append(ents((6, 7), (7, 7)))

        def check(s: Storage) -> None:
            assert s.last_index() == 7
            assert log_of(s) == [(3, 3), (4, 4), (5, 5), (6, 7), (7, 7)]
            with pytest.raises(UnavailableError):
                s.term(8)
            with pytest.raises(ValueError):
                s.entries(4, 9)

        self.both(adapter, check)

    def test_append_truncates_without_comparing_terms(self, adapter: StorageAdapter) -> None:
        # etcd truncates at the first new index even when the terms agree.
        build_345(adapter)
        adapter.append(ents((6, 5), (7, 5)))
        adapter.append(ents((5, 5)))
        assert log_of(adapter.storage) == [(3, 3), (4, 4), (5, 5)]

    def test_append_replaces_entry_contents(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        adapter.append([ent(5, 5, data=b"new"), ent(6, 5, data=b"six")])

        def check(s: Storage) -> None:
            assert s.entries(4, 7) == [ent(4, 4), ent(5, 5, data=b"new"), ent(6, 5, data=b"six")]

        self.both(adapter, check)

    def test_append_ignores_compacted_prefix(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        adapter.append(ents((6, 6), (7, 6)))
        adapter.compact(6)
        # 5 and 6 are compacted: only 7 (a conflict) and 8 count
        adapter.append(ents((5, 9), (6, 9), (7, 8), (8, 8)))
        s = adapter.storage
        assert log_of(s) == [(6, 6), (7, 8), (8, 8)]
        # entirely compacted: nothing happens
        adapter.append(ents((4, 9), (5, 9), (6, 9)))
        assert log_of(s) == [(6, 6), (7, 8), (8, 8)]

    def test_append_ignores_prefix_up_to_snapshot(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        adapter.append(ents((1, 1), (2, 1), (3, 3), (4, 4), (5, 5), (6, 6)))

        def check(s: Storage) -> None:
            assert log_of(s) == [(3, 3), (4, 4), (5, 5), (6, 6)]

        self.both(adapter, check)

    def test_append_keeps_type_and_data(self, adapter: StorageAdapter) -> None:
        new = [
            ent(1, 1, type=EntryNormal),
            ent(2, 1, type=EntryNormal, data=b""),
            ent(3, 1, type=EntryConfChange, data=b"\x08\x01"),
            ent(4, 2, type=EntryConfChangeV2, data=b"cc2"),
            ent(5, 2, data=bytes(range(256)) * 8),
        ]
        adapter.append(new)

        def check(s: Storage) -> None:
            got = s.entries(1, 6)
            assert got == new
            assert got[0].data == b"" and not got[0].HasField("data")
            assert got[1].data == b"" and got[1].HasField("data")
            assert [int(e.type) for e in got] == [0, 0, 1, 2, 0]

        self.both(adapter, check)

    def test_append_in_batches(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        for start in range(6, 106, 10):
            adapter.append([ent(i, 5 + i // 50) for i in range(start, start + 10)])

        def check(s: Storage) -> None:
            assert (s.first_index(), s.last_index()) == (4, 105)
            got = s.entries(4, 106)
            assert [e.index for e in got] == list(range(4, 106))
            assert s.term(49) == 5
            assert s.term(50) == 6
            assert s.term(105) == 7

        self.both(adapter, check)

    # --- compact ----------------------------------------------------------------

    @pytest.mark.parametrize("i", [6, 7, 1000])
    def test_compact_past_last(self, adapter: StorageAdapter, i: int) -> None:
        build_345(adapter)
        before = state_of(adapter.storage)
        with pytest.raises(ValueError):
            adapter.compact(i)
        assert state_of(adapter.storage) == before

    def test_compact_on_fresh_storage(self, adapter: StorageAdapter) -> None:
        with pytest.raises(CompactedError):
            adapter.compact(0)
        with pytest.raises(ValueError):
            adapter.compact(1)

    def test_compact_keeps_dummy_term_only(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        adapter.append([ent(6, 6, data=b"x"), ent(7, 6, data=b"y")])
        adapter.compact(6)
        s = adapter.storage
        assert s.term(6) == 6
        with pytest.raises(CompactedError):
            s.entries(6, 7)
        assert s.entries(7, 8) == [ent(7, 6, data=b"y")]
        # The snapshot is independent of compaction.
        assert s.snapshot().metadata.index == 3

    def test_compact_then_compact_again(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        adapter.append(ents((6, 6), (7, 6)))
        adapter.compact(5)
        with pytest.raises(CompactedError):
            adapter.compact(5)
        with pytest.raises(CompactedError):
            adapter.compact(4)
        adapter.compact(7)
        assert log_of(adapter.storage) == [(7, 6)]

    # --- snapshots --------------------------------------------------------------

    def test_snapshot_returns_applied(self, adapter: StorageAdapter) -> None:
        snap = Snapshot(
            data=b"state machine",
            metadata=SnapshotMetadata(conf_state=voters_123(), index=7, term=2),
        )
        adapter.apply_snapshot(snap)

        def check(s: Storage) -> None:
            assert s.snapshot() == snap
            assert s.snapshot().data == b"state machine"
            assert s.initial_state()[1] == voters_123()
            assert log_of(s) == [(7, 2)]

        self.both(adapter, check)

    def test_apply_snapshot_resets_log_keeps_hard_state(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        adapter.append(ents((6, 5), (7, 5)))
        hs = HardState(term=5, vote=2, commit=7)
        adapter.set_hard_state(hs)
        adapter.apply_snapshot(snap_at(6, 5, ConfState(voters=[1], learners=[4])))

        def check(s: Storage) -> None:
            assert log_of(s) == [(6, 5)]
            assert s.initial_state() == (hs, ConfState(voters=[1], learners=[4]))

        self.both(adapter, check)

    def test_apply_snapshot_beyond_log(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        adapter.apply_snapshot(snap_at(100, 9))

        def check(s: Storage) -> None:
            assert (s.first_index(), s.last_index()) == (101, 100)
            with pytest.raises(CompactedError):
                s.term(5)

        self.both(adapter, check)

    @pytest.mark.parametrize("index", [0, 2, 3])
    def test_apply_snapshot_out_of_date(self, adapter: StorageAdapter, index: int) -> None:
        build_345(adapter)
        before = state_of(adapter.storage)
        with pytest.raises(SnapOutOfDateError):
            adapter.apply_snapshot(snap_at(index, 3, voters_123()))
        assert state_of(adapter.storage) == before

    def test_create_snapshot_returns_and_keeps(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        snap = adapter.create_snapshot(5, ConfState(voters=[1, 2], learners=[3]), b"app")
        want = Snapshot(
            data=b"app",
            metadata=SnapshotMetadata(
                conf_state=ConfState(voters=[1, 2], learners=[3]), index=5, term=5
            ),
        )
        assert snap == want
        s = adapter.storage
        assert s.snapshot() == want
        assert s.initial_state()[1] == ConfState(voters=[1, 2], learners=[3])

    def test_create_snapshot_does_not_compact(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        adapter.append(ents((6, 6)))
        adapter.create_snapshot(5, voters_123(), b"d")
        assert log_of(adapter.storage) == [(3, 3), (4, 4), (5, 5), (6, 6)]

    def test_create_snapshot_without_conf_state_keeps_previous(
        self, adapter: StorageAdapter
    ) -> None:
        adapter.apply_snapshot(snap_at(3, 3, voters_123()))
        adapter.append(ents((4, 4), (5, 5)))
        snap = adapter.create_snapshot(4, None, b"a")
        assert snap.metadata.conf_state == voters_123()
        assert adapter.storage.initial_state()[1] == voters_123()
        other = ConfState(voters=[1, 2], voters_outgoing=[1, 2, 3], auto_leave=True)
        snap = adapter.create_snapshot(5, other, None)
        assert snap.metadata.conf_state == other
        assert snap.data == b"" and not snap.HasField("data")
        assert adapter.storage.snapshot() == snap

    def test_create_snapshot_at_dummy_after_compact(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        adapter.compact(5)
        snap = adapter.create_snapshot(5, None, b"x")
        assert (snap.metadata.index, snap.metadata.term) == (5, 5)

    @pytest.mark.parametrize("i", [0, 2, 3])
    def test_create_snapshot_out_of_date(self, adapter: StorageAdapter, i: int) -> None:
        build_345(adapter)
        before = state_of(adapter.storage)
        with pytest.raises(SnapOutOfDateError):
            adapter.create_snapshot(i, voters_123(), b"data")
        assert state_of(adapter.storage) == before

    def test_create_snapshot_twice_same_index(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        adapter.create_snapshot(4, voters_123(), b"a")
        with pytest.raises(SnapOutOfDateError):
            adapter.create_snapshot(4, voters_123(), b"b")
        assert adapter.storage.snapshot().data == b"a"

    @pytest.mark.parametrize("i", [6, 7, 1000])
    def test_create_snapshot_past_last(self, adapter: StorageAdapter, i: int) -> None:
        build_345(adapter)
        before = state_of(adapter.storage)
        with pytest.raises(ValueError):
            adapter.create_snapshot(i, voters_123(), b"data")
        assert state_of(adapter.storage) == before

    def test_create_snapshot_below_compacted(self, adapter: StorageAdapter) -> None:
        build_345(adapter)
        adapter.append(ents((6, 6), (7, 6)))
        adapter.compact(6)
        before = state_of(adapter.storage)
        with pytest.raises(ValueError):
            adapter.create_snapshot(5, voters_123(), b"data")
        assert state_of(adapter.storage) == before

    # --- hard state -------------------------------------------------------------

    def test_initial_state(self, adapter: StorageAdapter) -> None:
        cs = ConfState(voters=[1, 2, 3], learners=[4], learners_next=[5])
        adapter.apply_snapshot(snap_at(3, 3, cs))
        adapter.append(ents((4, 4), (5, 5)))
        for hs in (HardState(term=5, vote=1, commit=4), HardState(term=6, vote=0, commit=5)):
            adapter.set_hard_state(hs)
            want = (HardState(term=hs.term, vote=hs.vote, commit=hs.commit), cs)
            self.both(adapter, partial(_check_initial_state, want=want))

    # --- max_size ---------------------------------------------------------------

    @pytest.fixture
    def sized(self, adapter: StorageAdapter) -> list[Entry]:
        """Entries 1..6 of distinct sizes."""
        new = [ent(i, 1, data=b"x" * (i * 7)) for i in range(1, 7)]
        adapter.append(new)
        return new

    @pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
    def test_max_size_exact_boundaries(
        self, adapter: StorageAdapter, sized: list[Entry], k: int
    ) -> None:
        s = adapter.storage
        sizes = [e.ByteSize() for e in sized]
        assert len(set(sizes)) == len(sizes)
        limit = sum(sizes[:k])
        assert s.entries(1, 7, limit) == sized[:k]
        assert s.entries(1, 7, limit - 1) == sized[: max(k - 1, 1)]
        assert s.entries(1, 7, limit + 1) == sized[:k]
        # the range bound wins over the size bound
        assert s.entries(1, 1 + k, limit + 10**6) == sized[:k]

    @pytest.mark.parametrize("lo", [1, 3, 6])
    def test_max_size_keeps_one_oversized_entry(
        self, adapter: StorageAdapter, sized: list[Entry], lo: int
    ) -> None:
        s = adapter.storage
        assert s.entries(lo, 7, 0) == [sized[lo - 1]]
        assert s.entries(lo, 7, 1) == [sized[lo - 1]]
        assert s.entries(lo, 7, sized[lo - 1].ByteSize() - 1) == [sized[lo - 1]]

    def test_max_size_from_middle(self, adapter: StorageAdapter, sized: list[Entry]) -> None:
        s = adapter.storage
        limit = sized[2].ByteSize() + sized[3].ByteSize()
        assert s.entries(3, 7, limit) == sized[2:4]
        assert s.entries(3, 7, None) == sized[2:]

    # --- results are the caller's ------------------------------------------------

    def test_results_are_copies(self, adapter: StorageAdapter) -> None:
        adapter.apply_snapshot(snap_at(3, 3, voters_123()))
        adapter.append(ents((4, 4), (5, 5)))
        s = adapter.storage
        got = s.entries(4, 6)
        got.clear()
        got2 = s.entries(4, 6)
        got2.append(ent(6, 6))
        assert s.entries(4, 6) == ents((4, 4), (5, 5))
        assert s.last_index() == 5

        snap = s.snapshot()
        snap.metadata.index = 99
        snap.metadata.conf_state.voters.append(9)
        assert s.snapshot() == snap_at(3, 3, voters_123())

        hs, cs = s.initial_state()
        cs.voters.append(9)
        hs.commit = 99
        assert s.initial_state() == (adapter.hard_state, voters_123())

    def test_inputs_are_not_aliased(self, adapter: StorageAdapter) -> None:
        cs = ConfState(voters=[1, 2, 3])
        snap = snap_at(3, 3, cs)
        adapter.apply_snapshot(snap)
        hs = HardState(term=3, vote=1, commit=3)
        adapter.set_hard_state(hs)
        adapter.append(ents((4, 4), (5, 5)))
        cs.voters.append(4)
        snap.metadata.index = 50
        hs.commit = 50
        s = adapter.storage
        assert s.snapshot() == snap_at(3, 3, voters_123())
        assert s.initial_state() == (HardState(term=3, vote=1, commit=3), voters_123())
        # create_snapshot does not change a snapshot object handed out before
        before = s.snapshot()
        adapter.create_snapshot(5, None, b"x")
        assert before == snap_at(3, 3, voters_123())

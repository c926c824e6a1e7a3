"""MemoryStorage: the Storage contract, etcd's exact behaviour, a model check, threads."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, overload

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from raftwal import (
    CompactedError,
    ConfState,
    Entry,
    HardState,
    SnapOutOfDateError,
    Snapshot,
    SnapshotMetadata,
    UnavailableError,
)
from raftwal._native import MemLog
from raftwal.storage import MemoryStorage, Storage

from storage_contract import MemoryAdapter, StorageAdapter, StorageContract, build_345, log_of


class TestMemoryStorageContract(StorageContract):
    """The shared contract suite, run against MemoryStorage."""

    def make_adapter(self, tmp_path: Path) -> StorageAdapter:
        return MemoryAdapter(MemoryStorage())


class TestPackedMemoryStorageContract(StorageContract):
    """The same suite over the packed entry list a recovery fills."""

    def make_adapter(self, tmp_path: Path) -> StorageAdapter:
        return MemoryAdapter(MemoryStorage(MemLog(Entry)))


# --- MemoryStorage specifics ---------------------------------------------------


@pytest.fixture
def ms() -> MemoryStorage:
    """etcd's test storage [{3,3},{4,4},{5,5}]."""
    s = MemoryStorage()
    build_345(MemoryAdapter(s))
    return s


def test_is_a_storage() -> None:
    assert isinstance(MemoryStorage(), Storage)
    assert not isinstance(object(), Storage)


def test_error_messages_are_etcds(ms: MemoryStorage) -> None:
    with pytest.raises(CompactedError, match=r"^requested index is unavailable due to compaction$"):
        ms.term(2)
    with pytest.raises(CompactedError, match=r"^requested index is unavailable due to compaction$"):
        ms.entries(3, 4)
    with pytest.raises(CompactedError, match=r"^requested index is unavailable due to compaction$"):
        ms.compact(3)
    with pytest.raises(UnavailableError, match=r"^requested entry at index is unavailable$"):
        ms.term(6)
    with pytest.raises(
        SnapOutOfDateError, match=r"^requested index is older than the existing snapshot$"
    ):
        ms.create_snapshot(3, None, None)
    with pytest.raises(
        SnapOutOfDateError, match=r"^requested index is older than the existing snapshot$"
    ):
        ms.apply_snapshot(Snapshot(metadata=SnapshotMetadata(index=3, term=3)))


def test_panic_messages_are_etcds(ms: MemoryStorage) -> None:
    with pytest.raises(ValueError, match=r"^entries' hi\(7\) is out of bound lastindex\(5\)$"):
        ms.entries(4, 7)
    with pytest.raises(ValueError, match=r"^compact 6 is out of bound lastindex\(5\)$"):
        ms.compact(6)
    with pytest.raises(ValueError, match=r"^snapshot 6 is out of bound lastindex\(5\)$"):
        ms.create_snapshot(6, None, None)
    with pytest.raises(ValueError, match=r"^missing log entry \[last: 5, append at: 7\]$"):
        ms.append([Entry(index=7, term=5)])


class _Seq(Sequence[Entry]):
    """A Sequence that is neither a list nor a tuple."""

    def __init__(self, items: list[Entry]) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, i: int) -> Entry: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Entry]: ...
    def __getitem__(self, i: int | slice) -> Entry | Sequence[Entry]:
        if isinstance(i, slice):
            raise AssertionError("append must not need slicing of a general Sequence")
        return self._items[i]


@pytest.mark.parametrize("kind", [list, tuple, _Seq])
def test_append_accepts_any_sequence(ms: MemoryStorage, kind: Callable[[Any], Any]) -> None:
    ms.compact(4)
    new = [Entry(index=i, term=6) for i in range(3, 9)]  # 3, 4 compacted; 5 conflicts
    ms.append(kind(new))
    assert log_of(ms) == [(4, 4), (5, 6), (6, 6), (7, 6), (8, 6)]
    ms.append(kind([]))
    assert ms.last_index() == 8


def test_entries_are_kept_by_reference(ms: MemoryStorage) -> None:
    e = Entry(index=6, term=6, data=b"payload")
    ms.append([e])
    assert ms.entries(6, 7)[0] is e


def test_append_does_not_keep_callers_list(ms: MemoryStorage) -> None:
    batch = [Entry(index=6, term=6)]
    ms.append(batch)
    batch.append(Entry(index=7, term=6))
    assert ms.last_index() == 6


def test_snapshot_data_is_shared_not_copied() -> None:
    data = b"x" * 1_000_000
    s = MemoryStorage()
    s.apply_snapshot(Snapshot(data=data, metadata=SnapshotMetadata(index=5, term=1)))
    assert s.snapshot().data is data
    s.append([Entry(index=6, term=1)])
    data2 = b"y" * 1_000_000
    assert s.create_snapshot(6, None, data2).data is data2
    assert s.snapshot().data is data2


def test_repr(ms: MemoryStorage) -> None:
    assert repr(ms) == "MemoryStorage(first_index=4, last_index=5, snapshot_index=3)"


def test_many_entries() -> None:
    # Large logs: batches, a compaction far in, a size-limited read.
    s = MemoryStorage()
    n = 200_000
    batch = 10_000
    for start in range(1, n + 1, batch):
        s.append([Entry(index=i, term=1, data=b"abcd") for i in range(start, start + batch)])
    assert s.last_index() == n
    s.compact(n // 2)
    assert s.first_index() == n // 2 + 1
    limit = sum(e.ByteSize() for e in s.entries(n // 2 + 1, n // 2 + 11))
    got = s.entries(n // 2 + 1, n + 1, limit)
    assert [e.index for e in got] == list(range(n // 2 + 1, n // 2 + 11))
    assert len(s.entries(n // 2 + 1, n + 1)) == n // 2


# --- a model check ---------------------------------------------------------------


class _Model:
    """An obviously-correct MemoryStorage: a dict of entries and a few fields."""

    def __init__(self) -> None:
        self.dummy_index = 0
        self.dummy_term = 0
        self.log: dict[int, Entry] = {}
        self.snap = Snapshot()
        self.hard_state = HardState()

    @property
    def first(self) -> int:
        return self.dummy_index + 1

    @property
    def last(self) -> int:
        return self.dummy_index + len(self.log)

    def term(self, i: int) -> int:
        if i < self.dummy_index:
            raise CompactedError
        if i == self.dummy_index:
            return self.dummy_term
        if i in self.log:
            return self.log[i].term
        raise UnavailableError

    def entries(self, lo: int, hi: int, max_size: int | None) -> list[Entry]:
        if lo <= self.dummy_index:
            raise CompactedError
        if hi > self.last + 1:
            raise ValueError
        if not self.log:
            raise UnavailableError
        if lo > hi:
            raise ValueError
        out: list[Entry] = []
        total = 0
        for i in range(lo, hi):
            total += self.log[i].ByteSize()
            if out and max_size is not None and total > max_size:
                break
            out.append(self.log[i])
        return out

    def append(self, es: list[Entry]) -> None:
        es = [e for e in es if e.index >= self.first]
        if not es:
            return
        if es[0].index > self.last + 1:
            raise ValueError
        for i in range(es[0].index, self.last + 1):
            del self.log[i]
        for e in es:
            self.log[e.index] = e

    def compact(self, i: int) -> None:
        if i <= self.dummy_index:
            raise CompactedError
        if i > self.last:
            raise ValueError
        self.dummy_term = self.log[i].term
        for j in range(self.dummy_index + 1, i + 1):
            del self.log[j]
        self.dummy_index = i

    def create_snapshot(self, i: int, cs: ConfState | None, data: bytes | None) -> Snapshot:
        if i <= self.snap.metadata.index:
            raise SnapOutOfDateError
        if i > self.last or i < self.dummy_index:
            raise ValueError
        if cs is None:
            cs = self.snap.metadata.conf_state
        self.snap = Snapshot(
            data=data, metadata=SnapshotMetadata(conf_state=cs, index=i, term=self.term(i))
        )
        return self.snap

    def apply_snapshot(self, snap: Snapshot) -> None:
        if self.snap.metadata.index >= snap.metadata.index:
            raise SnapOutOfDateError
        self.snap = snap
        self.dummy_index = snap.metadata.index
        self.dummy_term = snap.metadata.term
        self.log = {}


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except (CompactedError, UnavailableError, SnapOutOfDateError, ValueError) as exc:
        return ("raised", type(exc))


_conf_states = st.one_of(
    st.none(),
    st.builds(
        ConfState,
        voters=st.lists(st.integers(1, 5), max_size=3),
        learners=st.lists(st.integers(6, 9), max_size=2),
    ),
)
_data = st.one_of(st.none(), st.binary(max_size=40))


def _pick(data: st.DataObject, usual: tuple[int, int], edges: tuple[int, int], label: str) -> int:
    """Mostly a value in ``usual`` (when not empty), sometimes one in ``edges``."""
    lo, hi = usual
    if lo <= hi and data.draw(st.integers(0, 3), label=f"{label}: usual?") != 0:
        return data.draw(st.integers(lo, hi), label=label)
    elo, ehi = edges
    return data.draw(st.integers(max(0, elo), max(0, elo, ehi)), label=label)


class MemoryStorageMachine(RuleBasedStateMachine):
    """Drive MemoryStorage and the model with the same calls; they must agree.

    Arguments are drawn mostly where the call succeeds and sometimes around
    the edges, so the log grows and every error path is still taken.
    """

    def __init__(self) -> None:
        super().__init__()
        self.real = MemoryStorage()
        self.model = _Model()

    def _same(self, real: Callable[[], Any], model: Callable[[], Any]) -> None:
        assert _outcome(real) == _outcome(model)

    def _append(self, data: st.DataObject) -> None:
        m = self.model
        # usual: from a few entries back (a conflicting overwrite) to last + 1
        start = _pick(
            data, (max(m.first, m.last - 4), m.last + 1), (m.dummy_index - 3, m.last + 3), "start"
        )
        terms = data.draw(st.lists(st.integers(0, 6), min_size=1, max_size=10), label="terms")
        n = len(terms)
        payloads = data.draw(st.lists(_data, min_size=n, max_size=n), label="payloads")
        types = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n), label="types")
        if data.draw(st.integers(0, 9), label="empty batch?") == 0:
            terms = []
        es = [
            Entry(index=start + k, term=t, type=ty, data=d)
            for k, (t, ty, d) in enumerate(zip(terms, types, payloads, strict=False))
        ]
        self._same(lambda: self.real.append(es), lambda: m.append(es))

    @rule(data=st.data())
    def append(self, data: st.DataObject) -> None:
        self._append(data)

    @rule(data=st.data())
    def append_more(self, data: st.DataObject) -> None:
        # A second append rule: appends are what a log mostly sees.
        self._append(data)

    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        m = self.model
        i = _pick(data, (m.first, m.last), (m.dummy_index - 2, m.last + 2), "compact")
        self._same(lambda: self.real.compact(i), lambda: m.compact(i))

    @rule(data=st.data(), cs=_conf_states, payload=_data)
    def create_snapshot(
        self, data: st.DataObject, cs: ConfState | None, payload: bytes | None
    ) -> None:
        m = self.model
        snap = m.snap.metadata.index
        i = _pick(
            data,
            (max(snap + 1, m.dummy_index), m.last),
            (min(snap, m.dummy_index) - 2, m.last + 2),
            "snapshot",
        )
        self._same(
            lambda: self.real.create_snapshot(i, cs, payload),
            lambda: m.create_snapshot(i, cs, payload),
        )

    @rule(data=st.data(), cs=_conf_states, payload=_data, term=st.integers(0, 8))
    def apply_snapshot(
        self, data: st.DataObject, cs: ConfState | None, payload: bytes | None, term: int
    ) -> None:
        m = self.model
        # The log may end below the snapshot (an append can truncate past it).
        snap = m.snap.metadata.index
        if data.draw(st.integers(0, 3), label="newer?") == 0:
            # it empties the log, so not too often
            index = data.draw(st.integers(snap + 1, max(snap, m.last) + 4), label="snapshot index")
        else:
            index = data.draw(st.integers(max(0, snap - 2), snap), label="snapshot index")
        snap_ = Snapshot(
            data=payload, metadata=SnapshotMetadata(conf_state=cs, index=index, term=term)
        )
        self._same(lambda: self.real.apply_snapshot(snap_), lambda: m.apply_snapshot(snap_))

    @rule(term=st.integers(0, 9), vote=st.integers(0, 5), commit=st.integers(0, 50))
    def set_hard_state(self, term: int, vote: int, commit: int) -> None:
        hs = HardState(term=term, vote=vote, commit=commit)
        self.real.set_hard_state(hs)
        self.model.hard_state = HardState(term=term, vote=vote, commit=commit)

    @rule(data=st.data())
    def read_entries(self, data: st.DataObject) -> None:
        m = self.model
        edges = (m.dummy_index - 2, m.last + 3)
        lo = _pick(data, (m.first, m.last + 1), edges, "lo")
        hi = _pick(data, (lo, m.last + 1), edges, "hi")
        max_size = data.draw(st.one_of(st.none(), st.integers(0, 80)), label="max_size")
        if m.first <= lo < hi <= m.last + 1 and data.draw(st.booleans(), label="boundary?"):
            # a limit exactly at (or one byte around) the size of a prefix
            sizes = [m.log[i].ByteSize() for i in range(lo, hi)]
            k = data.draw(st.integers(1, len(sizes)), label="prefix")
            max_size = sum(sizes[:k]) + data.draw(st.sampled_from([-1, 0, 1]), label="delta")
        self._same(
            lambda: self.real.entries(lo, hi, max_size),
            lambda: m.entries(lo, hi, max_size),
        )

    @invariant()
    def indexes_agree(self) -> None:
        assert self.real.first_index() == self.model.first
        assert self.real.last_index() == self.model.last

    @invariant()
    def terms_agree(self) -> None:
        m = self.model
        for i in range(max(0, m.dummy_index - 2), m.last + 3):
            self._same(lambda: self.real.term(i), lambda: m.term(i))  # noqa: B023

    @invariant()
    def whole_log_agrees(self) -> None:
        m = self.model
        self._same(
            lambda: self.real.entries(m.first, m.last + 1),
            lambda: m.entries(m.first, m.last + 1, None),
        )

    @invariant()
    def state_agrees(self) -> None:
        assert self.real.snapshot() == self.model.snap
        assert self.real.initial_state() == (
            self.model.hard_state,
            self.model.snap.metadata.conf_state,
        )


MemoryStorageMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMemoryStorageModel = MemoryStorageMachine.TestCase


class PackedMemoryStorageMachine(MemoryStorageMachine):
    """The model check over a MemoryStorage whose log is a packed MemLog."""

    def __init__(self) -> None:
        super().__init__()
        self.real = MemoryStorage(MemLog(Entry))

    @invariant()
    def stays_packed(self) -> None:
        # apply_snapshot and compact must keep the container, not swap in a list
        assert self.real._serves_copies()


PackedMemoryStorageMachine.TestCase.settings = MemoryStorageMachine.TestCase.settings
TestPackedMemoryStorageModel = PackedMemoryStorageMachine.TestCase


# --- threads ---------------------------------------------------------------------


def _term_of(i: int) -> int:
    return 1 + i // 100


def test_threads_smoke() -> None:
    """Appends, reads, compactions and snapshots from several threads at once.

    Appends are ordered among themselves (raft's appender is sequential);
    everything else races freely. Overwrites rewrite a suffix with the same
    contents, so readers can check every entry they get.
    """
    s = MemoryStorage()
    target = 20_000
    stop = threading.Event()
    append_lock = threading.Lock()
    errors: list[BaseException] = []

    def guarded(fn: Callable[[random.Random], None], seed: int) -> Callable[[], None]:
        def run() -> None:
            rng = random.Random(seed)
            try:
                start.wait(timeout=30)
                fn(rng)
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        return run

    def appender(rng: random.Random) -> None:
        while not stop.is_set():
            with append_lock:
                last = s.last_index()
                if last >= target:
                    return
                # Sometimes rewrite (identically) part of the tail first.
                start = max(1, last + 1 - rng.choice([0, 0, 0, 3, 20]))
                end = min(target, last + rng.randint(1, 50))
                s.append([Entry(index=i, term=_term_of(i)) for i in range(start, end + 1)])

    def reader(rng: random.Random) -> None:
        while not stop.is_set() and s.last_index() < target:
            last = s.last_index()
            lo = s.first_index()
            if last < lo:
                continue
            max_size = rng.choice([None, 0, 50, 500])
            try:
                got = s.entries(lo, last + 1, max_size)
            except CompactedError:
                continue
            assert got
            assert [e.index for e in got] == list(range(lo, lo + len(got)))
            assert all(e.term == _term_of(e.index) for e in got)
            try:
                assert s.term(last) == _term_of(last)
            except CompactedError:
                pass

    def compactor(rng: random.Random) -> None:
        # As etcd does: compact only what a snapshot covers, keeping a tail.
        while not stop.is_set() and s.last_index() < target:
            i = min(s.snapshot().metadata.index, s.last_index() - rng.randint(0, 300))
            if i >= s.first_index():
                try:
                    s.compact(i)
                except CompactedError:
                    pass

    def snapshotter(rng: random.Random) -> None:
        while not stop.is_set() and s.last_index() < target:
            s.set_hard_state(HardState(term=1, commit=s.last_index()))
            try:
                snap = s.create_snapshot(s.last_index(), ConfState(voters=[1, 2, 3]), b"d")
            except SnapOutOfDateError:
                continue
            assert snap.metadata.term == _term_of(snap.metadata.index)

    workers = [appender, appender, appender, reader, reader, compactor, snapshotter]
    start = threading.Barrier(len(workers))
    threads = [threading.Thread(target=guarded(fn, n)) for n, fn in enumerate(workers)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, to interleave more
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert not any(t.is_alive() for t in threads)
    if errors:
        raise errors[0]

    assert s.last_index() == target
    first = s.first_index()
    got = s.entries(first, target + 1)
    assert [e.index for e in got] == list(range(first, target + 1))
    assert all(e.term == _term_of(e.index) for e in got)
    assert s.term(first - 1) == (_term_of(first - 1) if first > 1 else 0)
    snap = s.snapshot()
    assert snap.metadata.term == _term_of(snap.metadata.index)
    assert snap.metadata.conf_state == ConfState(voters=[1, 2, 3])

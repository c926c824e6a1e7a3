"""A stateful model of DurableStorage (hypothesis RuleBasedStateMachine).

Valid calls (sync saves, save_async streams, overwrites by a new leader of
a higher term, commits, snapshots from the leader, create_snapshot,
compact) and invalid ones (gaps, backwards batches, oversized entries,
entry types raft does not define, commits past the end or below the
snapshot, snapshots past the commit or not newer, wrong types, calls after
close) are run against a plain model of what the storage must hold. Every
call either returns and the storage equals the model, or raises and
changes nothing: every Storage getter is compared with the model after
each step, and a close + reopen, in every recovery mode, must give
exactly the model back (with a strict reopen never needing a repair).

`run_machine` is also what tests/support/trust_model_child.py runs in a child
process with the failpoints build: there an injected EIO or ENOSPC on a
write or an fsync must poison the storage, and a reopen must hold the
model's acknowledged state (or, for the one call that failed, its effect
in full: a failed fsync may still leave the bytes on disk).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import raftwal
from raftwal import ConfState, Entry, HardState, Snapshot, SnapshotMetadata

BIG = 10 * 1024 * 1024
MODES = ("strict", "tolerate-tail", "salvage")
OPTS: dict[str, Any] = dict(
    segment_size=1024, catch_up_entries=3, max_snapshots=1, max_wals=1, snapshot_count=5
)


@dataclass
class Model:
    """What the storage must show: entries ``first..last`` (memory may be
    compacted past the snapshot), the snapshot, the last HardState."""

    log: dict[int, Entry] = field(default_factory=dict)
    first: int = 1  # memory's first index; a reopen resets it to snap_index + 1
    snap_index: int = 0
    snap_term: int = 0
    snap_data: bytes | None = None
    snap_cs: ConfState = field(default_factory=ConfState)
    hs: HardState = field(default_factory=HardState)
    term: int = 1

    @property
    def last(self) -> int:
        return max((i for i in self.log if i > self.snap_index), default=self.snap_index)

    # terms of snapshot points a leader's snapshot left without an entry
    anchors: dict[int, int] = field(default_factory=dict)

    def term_at(self, i: int) -> int:
        if i == self.snap_index:
            return self.snap_term
        return self.log[i].term if i in self.log else self.anchors[i]

    def append(self, ents: list[Entry]) -> None:
        for i in [i for i in self.log if i >= ents[0].index]:
            del self.log[i]
        for e in ents:
            self.log[e.index] = e

    def snapshot(self) -> Snapshot:
        if self.snap_index == 0:
            return Snapshot()
        return Snapshot(
            data=self.snap_data,
            metadata=SnapshotMetadata(
                conf_state=self.snap_cs, index=self.snap_index, term=self.snap_term
            ),
        )


def payload(i: int, term: int) -> bytes:
    return b"%d@%d;" % (i, term) * (1 + i % 5)


def check_storage(s: raftwal.DurableStorage, m: Model, on_disk_closed: bool = False) -> None:
    """Every Storage getter against the model. ``on_disk_closed``: a
    bounded-memory storage was closed, so the entries it kept on disk can no
    longer be read (``WALClosedError``); everything else still answers."""
    assert s.initial_state() == (m.hs, m.snap_cs)
    assert s.snapshot() == m.snapshot()
    assert s.first_index() == m.first
    assert s.last_index() == m.last
    assert s.durable_index == m.last
    assert s.term(m.first - 1) == m.term_at(m.first - 1)
    if m.last >= m.first:
        want = [m.log[i] for i in range(m.first, m.last + 1)]
        try:
            assert s.entries(m.first, m.last + 1) == want
        except raftwal.WALClosedError:
            assert on_disk_closed, "entries refused although the storage can read them"
        assert [s.term(i) for i in range(m.first, m.last + 1)] == [e.term for e in want]
    with pytest.raises(raftwal.UnavailableError):
        s.term(m.last + 1)


def snapshot_of(s: raftwal.DurableStorage) -> tuple[Any, ...]:
    first, last = s.first_index(), s.last_index()
    try:
        entries: Any = s.entries(first, last + 1) if last >= first else []
    except raftwal.WALClosedError:
        entries = "released"  # a closed bounded-memory storage's on-disk log
    return (
        s.initial_state(),
        s.snapshot(),
        first,
        last,
        s.durable_index,
        [s.term(i) for i in range(first, last + 1)],
        entries,
    )


class DurableStorageMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="raftwal-model-"))
        self.dir = self.tmp / "data"
        self.m = Model()
        self.s: raftwal.DurableStorage | None = None
        self.closed = False
        self.bounded = False

    @initialize(bounded=st.booleans())
    def start(self, bounded: bool) -> None:
        self.s = raftwal.open(self.dir, bounded_memory=bounded, **OPTS)
        self.bounded = bounded

    def teardown(self) -> None:
        try:
            if self.s is not None:
                self.s.close()
                # whatever the run did, the directory reopens strictly to the model
                with raftwal.open(self.dir, recovery="strict", **OPTS) as s:
                    self.m.first = self.m.snap_index + 1
                    check_storage(s, self.m)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def sto(self) -> raftwal.DurableStorage:
        assert self.s is not None
        return self.s

    def refuses(
        self, exc: type[BaseException] | tuple[type[BaseException], ...], call: Any
    ) -> None:
        """``call()`` raises ``exc`` and leaves every getter as it was."""
        before = snapshot_of(self.sto)
        with pytest.raises(exc):
            call()
        assert snapshot_of(self.sto) == before

    # --- valid calls ---------------------------------------------------------------------

    def _batch(self, n: int, back: int) -> list[Entry]:
        m = self.m
        # a new leader overwrites only uncommitted, uncompacted entries
        start = max(m.last + 1 - back, m.hs.commit + 1, m.first, m.snap_index + 1)
        if start <= m.last:
            m.term += 1
        return [
            Entry(term=m.term, index=i, data=payload(i, m.term), type=(i % 7 == 0) * 1)
            for i in range(start, start + n)
        ]

    @precondition(lambda self: not self.closed)
    @rule(n=st.integers(1, 5), back=st.integers(0, 3), commit=st.integers(0, 6))
    def save(self, n: int, back: int, commit: int) -> None:
        ents = self._batch(n, back)
        m = self.m
        m.append(ents)
        m.hs = HardState(m.term, 1, min(m.hs.commit + commit, m.last))
        self.sto.save(m.hs, ents)

    @precondition(lambda self: not self.closed)
    @rule(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=6), back=st.integers(0, 2))
    def save_async_stream(self, sizes: list[int], back: int) -> None:
        futs = []
        s, m = self.sto, self.m
        for k, n in enumerate(sizes):
            ents = self._batch(n, back if k == 0 else 0)
            m.append(ents)
            m.hs = HardState(m.term, 1, max(m.hs.commit, ents[0].index - 1))
            futs.append(s.save_async(m.hs, ents))
            assert s.durable_index <= s.last_index()
        for f in futs:
            f.result(timeout=60)
            assert s.durable_index <= s.last_index()

    @precondition(lambda self: not self.closed)
    @rule(k=st.integers(1, 5))
    def commit(self, k: int) -> None:
        m = self.m
        m.hs = HardState(m.hs.term, m.hs.vote, min(m.hs.commit + k, m.last))
        self.sto.save(m.hs, [])

    @precondition(lambda self: not self.closed)
    @rule(ahead=st.integers(1, 4), n=st.integers(0, 3))
    def snapshot_from_leader(self, ahead: int, n: int) -> None:
        """A lagging follower gets a snapshot past its log, then entries."""
        m = self.m
        si = m.last + ahead
        m.term += 1
        snap = Snapshot(
            data=b"leader@%d" % si,
            metadata=SnapshotMetadata(conf_state=ConfState(voters=[1, 2]), index=si, term=m.term),
        )
        ents = [
            Entry(term=m.term, index=i, data=payload(i, m.term)) for i in range(si + 1, si + 1 + n)
        ]
        m.log = {e.index: e for e in ents}
        m.snap_index, m.snap_term, m.snap_data = si, m.term, snap.data
        m.anchors[si] = m.term
        m.snap_cs = ConfState(voters=[1, 2])
        m.first = si + 1
        m.hs = HardState(m.term, 1, si)
        self.sto.save(m.hs, ents, snap)

    @precondition(lambda self: not self.closed and self.m.hs.commit > self.m.snap_index)
    @rule(data=st.data())
    def create_snapshot(self, data: st.DataObject) -> None:
        m = self.m
        lo = max(m.snap_index + 1, m.first - 1)
        if lo > m.hs.commit:
            return
        i = data.draw(st.integers(lo, m.hs.commit))
        cs = data.draw(st.sampled_from([None, ConfState(voters=[1]), ConfState(voters=[1, 3])]))
        got = self.sto.create_snapshot(i, cs, b"state@%d" % i)
        m.snap_term = m.term_at(i)
        m.snap_index, m.snap_data = i, b"state@%d" % i
        if cs is not None:
            m.snap_cs = cs
        compact = i - OPTS["catch_up_entries"] if i > OPTS["catch_up_entries"] else 1
        if compact >= m.first:
            m.first = compact + 1
        assert got == m.snapshot()

    @precondition(lambda self: not self.closed and self.m.last >= self.m.first)
    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        m = self.m
        i = data.draw(st.integers(m.first, m.last))
        self.sto.compact(i)
        m.first = i + 1

    @rule(mode=st.sampled_from(MODES), bounded=st.booleans())
    def reopen(self, mode: str, bounded: bool) -> None:
        if not self.closed:
            self.sto.close()
        self.s = raftwal.open(self.dir, recovery=mode, bounded_memory=bounded, **OPTS)
        self.bounded = bounded
        self.closed = False
        assert not self.sto.recovery.repaired
        self.m.first = self.m.snap_index + 1

    @precondition(lambda self: not self.closed)
    @rule()
    def close(self) -> None:
        self.sto.close()
        self.closed = True

    # --- invalid calls: each raises and changes nothing ---------------------------------

    @precondition(lambda self: not self.closed)
    @rule(kind=st.sampled_from(["gap", "gap-inside", "backwards", "duplicate"]))
    def bad_batch(self, kind: str) -> None:
        m, s = self.m, self.sto
        last, t = m.last, m.term
        idx = {
            "gap": [last + 2],
            "gap-inside": [last + 1, last + 3],
            "backwards": [last + 1, last],
            "duplicate": [last + 1, last + 1],
        }[kind]
        ents = [Entry(term=t, index=i, data=b"bad") for i in idx]
        self.refuses(ValueError, lambda: s.save(m.hs, ents))
        self.refuses(ValueError, lambda: s.save_async(m.hs, ents))

    @precondition(lambda self: not self.closed)
    @rule(at=st.integers(0, 2))
    def oversized_entry(self, at: int) -> None:
        m, s = self.m, self.sto
        ents = [Entry(term=m.term, index=m.last + 1 + k, data=b"ok") for k in range(3)]
        ents[at].data = bytes(BIG)
        self.refuses(raftwal.EntryTooLargeError, lambda: s.save(m.hs, ents))
        self.refuses(raftwal.EntryTooLargeError, lambda: s.save_async(m.hs, ents))

    @precondition(lambda self: not self.closed)
    @rule(t=st.sampled_from([3, 4, 7, 255, -1]))
    def entry_type_out_of_range(self, t: int) -> None:
        m, s = self.m, self.sto
        with pytest.raises(ValueError):
            Entry(term=m.term, index=m.last + 1, type=t)
        duck = SimpleNamespace(term=m.term, index=m.last + 1, type=t, data=b"x")
        self.refuses(TypeError, lambda: s.save(m.hs, [duck]))

    @precondition(lambda self: not self.closed)
    @rule(past=st.integers(1, 3), n=st.integers(0, 2))
    def commit_past_the_end(self, past: int, n: int) -> None:
        m, s = self.m, self.sto
        ents = [Entry(term=m.term, index=m.last + 1 + k) for k in range(n)]
        hs = HardState(m.term, 1, m.last + n + past)
        self.refuses(ValueError, lambda: s.save(hs, ents))
        self.refuses(ValueError, lambda: s.save_async(hs, ents))

    @precondition(lambda self: not self.closed and self.m.hs.commit < self.m.last)
    @rule(data=st.data())
    def snapshot_beyond_commit(self, data: st.DataObject) -> None:
        m = self.m
        i = data.draw(st.integers(m.hs.commit + 1, m.last))
        self.refuses(ValueError, lambda: self.sto.create_snapshot(i, None, b"early"))

    @precondition(lambda self: not self.closed and self.m.snap_index > 0)
    @rule(data=st.data())
    def snapshot_not_newer(self, data: st.DataObject) -> None:
        m, s = self.m, self.sto
        i = data.draw(st.integers(0, m.snap_index))
        self.refuses(raftwal.SnapOutOfDateError, lambda: s.create_snapshot(i, None, b"old"))
        old = Snapshot(data=b"old", metadata=SnapshotMetadata(index=i, term=m.term))
        hs = HardState(m.term, 1, max(m.hs.commit, i))
        self.refuses(raftwal.SnapOutOfDateError, lambda: s.save(hs, [], old))

    @precondition(lambda self: not self.closed)
    @rule()
    def uncommitted_snapshot(self) -> None:
        m, s = self.m, self.sto
        si = m.last + 2
        snap = Snapshot(data=b"x", metadata=SnapshotMetadata(index=si, term=m.term))
        self.refuses(ValueError, lambda: s.save(HardState(m.term, 1, si - 1), [], snap))

    @precondition(lambda self: not self.closed)
    @rule(what=st.sampled_from(["none", "bytes", "str"]))
    def wrong_types(self, what: str) -> None:
        m, s = self.m, self.sto
        e = Entry(term=m.term, index=m.last + 1)
        if what == "none":
            self.refuses(TypeError, lambda: s.save(None, [e]))  # type: ignore[arg-type]
        elif what == "bytes":
            self.refuses(TypeError, lambda: s.save(m.hs, [b"x"]))  # type: ignore[list-item]
        else:
            self.refuses(TypeError, lambda: s.save(m.hs, "x"))  # type: ignore[arg-type]

    @precondition(lambda self: self.closed)
    @rule()
    def calls_after_close(self) -> None:
        m, s = self.m, self.sto
        e = Entry(term=m.term, index=m.last + 1, data=b"late")
        snap = Snapshot(data=b"late", metadata=SnapshotMetadata(index=m.last + 5, term=m.term))
        for call in (
            lambda: s.save(HardState(m.term, 1, m.last + 1), [e]),
            lambda: s.save_async(HardState(m.term, 1, m.last + 1), [e]),
            lambda: s.save(HardState(m.term, 1, m.last + 5), [], snap),
            lambda: s.create_snapshot(m.hs.commit, None, b"late"),
            lambda: s.compact(m.last),
        ):
            self.refuses(raftwal.WALClosedError, call)

    @invariant()
    def matches_the_model(self) -> None:
        if self.s is not None:
            check_storage(self.s, self.m, on_disk_closed=self.closed and self.bounded)


# bounded: about a minute under the "ci" profile, a few seconds under "dev"
CI = os.environ.get("RAFTWAL_HYPOTHESIS_PROFILE") == "ci"
DurableStorageMachine.TestCase.settings = settings(
    max_examples=300 if CI else 30,
    stateful_step_count=60 if CI else 30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.timeout(600)
class TestDurableStorageModel(DurableStorageMachine.TestCase):  # type: ignore[misc,valid-type]
    pass

"""MemLog: the packed entry list a recovery fills, against a plain list."""

from __future__ import annotations

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import raftwal
from raftwal import Entry, HardState
from raftwal._native import MemLog

_entry = st.builds(
    lambda t, ty, d: (t, ty, d),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2),
    st.one_of(st.none(), st.binary(max_size=30)),
)


def _same(a: Entry, b: Entry) -> None:
    assert (a.term, a.index, a.type, a.data, a.HasField("data")) == (
        b.term,
        b.index,
        b.type,
        b.data,
        b.HasField("data"),
    )


def _check(log: MemLog, ref: list[Entry]) -> None:
    assert len(log) == len(ref)
    got = log[:]
    assert len(got) == len(ref)
    for a, b in zip(got, ref, strict=True):
        _same(a, b)
    for k in range(len(ref)):
        assert log.term_at(k) == ref[k].term
        _same(log[k], ref[k])
        _same(log[k - len(ref)], ref[k])


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_behaves_as_the_list_memory_storage_uses(data: st.DataObject) -> None:
    """Every list operation MemoryStorage makes, on a MemLog and on a list
    holding the same entries; the dummy (position 0) holds no data."""
    log = MemLog(Entry, 7, 3)
    ref: list[Entry] = [Entry(term=3, index=7)]
    nxt = 8
    for _ in range(data.draw(st.integers(1, 25), label="steps")):
        op = data.draw(st.sampled_from(["extend", "truncate", "compact", "reset", "slice"]))
        if op == "extend":
            batch = [
                Entry(term=t, index=nxt + k, type=ty, data=d)
                for k, (t, ty, d) in enumerate(data.draw(st.lists(_entry, max_size=6)))
            ]
            log.extend(batch)
            ref.extend(batch)
            nxt += len(batch)
        elif op == "truncate":
            k = data.draw(st.integers(1, len(ref)), label="keep")
            del log[k:]
            del ref[k:]
            nxt = ref[-1].index + 1
        elif op == "compact":
            k = data.draw(st.integers(0, len(ref) - 1), label="drop")
            keep = ref[k]
            del log[:k]
            del ref[:k]
            log[0] = Entry(term=keep.term, index=keep.index)
            ref[0] = Entry(term=keep.term, index=keep.index)
        elif op == "reset":
            i, t = data.draw(st.integers(0, 100)), data.draw(st.integers(0, 9))
            log.reset(i, t)
            ref = [Entry(term=t, index=i)]
            nxt = i + 1
        else:
            lo = data.draw(st.integers(-len(ref) - 2, len(ref) + 2), label="lo")
            hi = data.draw(st.integers(-len(ref) - 2, len(ref) + 2), label="hi")
            got, want = log[lo:hi], ref[lo:hi]
            assert len(got) == len(want)
            for a, b in zip(got, want, strict=True):
                _same(a, b)
        _check(log, ref)


@settings(max_examples=100, deadline=None)
@given(st.lists(_entry, min_size=1, max_size=12), st.data())
def test_size_limit_is_the_byte_size_rule(
    ents: list[tuple[int, int, bytes | None]], data: st.DataObject
) -> None:
    """size_limit cuts where summing Entry.ByteSize() would: the longest
    prefix within max_size, at least one entry."""
    log = MemLog(Entry, 0, 0)
    batch = [Entry(term=t, index=1 + k, type=ty, data=d) for k, (t, ty, d) in enumerate(ents)]
    log.extend(batch)
    lo = data.draw(st.integers(1, len(batch)), label="lo")
    hi = data.draw(st.integers(lo, len(batch) + 1), label="hi")
    cap = data.draw(st.integers(0, 200), label="max_size")
    want, total = lo, 0
    for k in range(lo, hi):
        total += batch[k - 1].ByteSize()
        if k > lo and total > cap:
            break
        want = k + 1
    assert log.size_limit(lo, hi, cap) == (want if lo < hi else hi)


def test_a_wrong_item_appends_nothing() -> None:
    log = MemLog(Entry, 0, 0)
    log.extend([Entry(term=1, index=1, data=b"a")])
    with pytest.raises(TypeError, match=r"entries\[1\] must be a raftwal.Entry, not bytes"):
        log.extend([Entry(term=1, index=2, data=b"b"), b"not an entry"])
    assert len(log) == 2
    assert log[1].data == b"a"


def test_misuse_is_refused() -> None:
    log = MemLog(Entry, 0, 0)
    log.extend([Entry(term=1, index=i) for i in range(1, 4)])
    with pytest.raises(IndexError):
        log[4]
    with pytest.raises(IndexError):
        log[1] = Entry(term=9, index=9)
    with pytest.raises(ValueError, match="no step"):
        log[::2]
    with pytest.raises(TypeError):
        del log[1:2]
    assert len(log) == 4


def test_entries_are_copies_both_ways() -> None:
    """What is appended is copied in and what is read is a new object, so
    neither the caller's entries nor the ones served can change the log."""
    log = MemLog(Entry, 0, 0)
    e = Entry(term=1, index=1, data=b"abc")
    log.extend([e])
    e.data = b"changed"
    e.term = 5
    got = log[1]
    assert (got.term, got.data) == (1, b"abc")
    got.data = b"also changed"
    assert log[1].data == b"abc"
    assert log[1] is not log[1]
    assert not gc.is_tracked(log[1])


def test_memory_per_entry_and_compaction_gives_it_back() -> None:
    """32 bytes of slot per entry plus its data; dropping most of the log
    gives the space back."""
    log = MemLog(Entry, 0, 0)
    n = 100_000
    log.extend(Entry(term=1, index=i, data=bytes(100)) for i in range(1, n + 1))
    per_entry = log.footprint / n
    assert per_entry <= 2 * (32 + 100), per_entry  # capacity doubles at most
    full = log.footprint
    del log[: n - 10]
    log[0] = Entry(term=1, index=n - 10)
    assert len(log) == 11
    assert log.footprint < full / 100


def test_a_recovered_storage_is_packed(tmp_path: object) -> None:
    """raftwal.open recovers into a MemLog (bounded_memory keeps entries on
    disk instead); reads and appends after the restart behave the same."""
    path = str(tmp_path)
    with raftwal.open(path) as s:
        assert s._mem._serves_copies()  # a new storage packs its log too
        s.save(HardState(1, 1, 3), [Entry(term=1, index=i, data=b"%d" % i) for i in range(1, 4)])
    with raftwal.open(path) as s:
        assert s._mem._serves_copies()
        assert [e.data for e in s.entries(1, 4)] == [b"1", b"2", b"3"]
        s.save(HardState(2, 1, 4), [Entry(term=2, index=3, data=b"x"), Entry(term=2, index=4)])
        assert [(e.term, e.data) for e in s.entries(1, 5)] == [
            (1, b"1"),
            (1, b"2"),
            (2, b"x"),
            (2, b""),
        ]
    with raftwal.open(path, read_only=True) as s:
        assert s._mem._serves_copies()
        assert [e.index for e in s.entries(1, 5)] == [1, 2, 3, 4]
    with raftwal.open(path, bounded_memory=True) as s:
        assert not s._mem._serves_copies()
        assert [e.index for e in s.entries(1, 5)] == [1, 2, 3, 4]

"""save_entries: entries given as their data alone, written as save writes them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import raftwal
from raftwal import WAL, Entry, EntryTooLargeError, HardState


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.suffix == ".wal"}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 2**64 - 1),
            st.lists(st.one_of(st.none(), st.binary(max_size=300)), max_size=20),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_the_same_bytes_as_save(batches: list[tuple[int, list[bytes | None]]]) -> None:
    """A WAL written with save_entries is byte for byte the one save
    writes for the same entries (so etcd reads it as it reads save's)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp, "a"), Path(tmp, "b")
        with WAL.create(a, b"md", segment_size=64 << 10) as wa:
            with WAL.create(b, b"md", segment_size=64 << 10) as wb:
                nxt = 1
                for term, datas in batches:
                    hs = HardState(term, 1, nxt - 1 + len(datas))
                    wa.save_entries(hs, term, nxt, datas)
                    wb.save(hs, [Entry(term, nxt + k, 0, d) for k, d in enumerate(datas)])
                    nxt += len(datas)
        assert _files(a) == _files(b)


def test_wal_save_entries_async(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "w", None) as w:
        futs = [
            w.save_entries_async(HardState(1, 1, 3 * k + 3), 1, 3 * k + 1, [b"a", None, b"c"])
            for k in range(20)
        ]
        for f in futs:
            assert f.result(timeout=30) is None
    with WAL.open_for_read(tmp_path / "w") as r:
        _, hs, ents = r.read_all()
    assert hs.commit == 60
    assert [e.index for e in ents] == list(range(1, 61))
    assert [e.HasField("data") for e in ents[:3]] == [True, False, True]


def test_durable_save_entries(tmp_path: Path) -> None:
    with raftwal.open(tmp_path) as s:
        s.save_entries(HardState(2, 1, 3), 2, 1, [b"x", bytearray(b"y"), None])
        got = s.entries(1, 4)
        assert [(e.term, e.index, e.data, e.HasField("data")) for e in got] == [
            (2, 1, b"x", True),
            (2, 2, b"y", True),
            (2, 3, b"", False),
        ]
        fut = s.save_entries_async(HardState(3, 1, 4), 3, 3, [b"z", b"w"])
        fut.result(timeout=30)
        assert [(e.term, e.data) for e in s.entries(1, 5)] == [
            (2, b"x"),
            (2, b"y"),
            (3, b"z"),
            (3, b"w"),
        ]
    with raftwal.open(tmp_path) as s:
        assert [(e.term, e.data) for e in s.entries(1, 5)] == [
            (2, b"x"),
            (2, b"y"),
            (3, b"z"),
            (3, b"w"),
        ]


@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        ((1, 1, b"abc"), TypeError, "datas must be a sequence of bytes"),
        ((1, 1, "abc"), TypeError, "datas must be a sequence of bytes"),
        ((1, 1, [b"a", "b"]), TypeError, r"datas\[1\] must be bytes, not str"),
        ((1, 1, [b"a", 7]), TypeError, r"datas\[1\] must be bytes, not int"),
        ((1, 1, 7), TypeError, "datas must be a sequence of bytes.*not int"),
        ((-1, 1, [b"a"]), ValueError, "term"),
        ((1, "1", [b"a"]), TypeError, "first_index"),
        ((1, 3, [b"a"]), ValueError, "missing log entry"),
        ((1, 2**64 - 1, [b"a", b"b"]), ValueError, "2\\*\\*64"),
    ],
)
def test_refused_before_anything_is_written(
    tmp_path: Path, args: tuple[object, object, object], exc: type[Exception], match: str
) -> None:
    with raftwal.open(tmp_path) as s:
        s.save_entries(HardState(1, 1, 1), 1, 1, [b"first"])
        before = _files(tmp_path / "wal")
        with pytest.raises(exc, match=match):
            s.save_entries(HardState(1, 1, 1), *args)  # type: ignore[arg-type]
        assert _files(tmp_path / "wal") == before
        assert s.last_index() == 1
        s.save_entries(HardState(1, 1, 2), 1, 2, [b"still usable"])
        assert s.entries(2, 3)[0].data == b"still usable"


def test_too_large_is_typed_and_writes_nothing(tmp_path: Path) -> None:
    with raftwal.open(tmp_path) as s:
        with pytest.raises(EntryTooLargeError, match="entry 2 encodes"):
            s.save_entries(HardState(1, 1, 0), 1, 1, [b"ok", bytes(10 * 1024 * 1024)])
        assert s.last_index() == 0
        s.save_entries(HardState(1, 1, 1), 1, 1, [b"ok"])
        assert s.last_index() == 1


def test_the_callers_data_is_not_aliased(tmp_path: Path) -> None:
    """A bytearray changed after the call changes nothing stored."""
    buf = bytearray(b"before")
    with raftwal.open(tmp_path) as s:
        s.save_entries(HardState(1, 1, 1), 1, 1, [buf])
        buf[:] = b"after!"
        assert s.entries(1, 2)[0].data == b"before"
    with raftwal.open(tmp_path) as s:
        assert s.entries(1, 2)[0].data == b"before"


class _Boom(Exception):
    pass


def _failing_datas() -> object:
    yield b"one"
    yield b"two"
    raise _Boom("the caller's iterable failed")


def test_an_iterable_failing_midway_writes_nothing(tmp_path: Path) -> None:
    """A ``datas`` generator that raises after some items: the error comes
    through, and neither the WAL nor the storage holds any of its entries."""
    with raftwal.open(tmp_path / "node") as s:
        s.save_entries(HardState(1, 1, 1), 1, 1, [b"first"])
        before = _files(tmp_path / "node" / "wal")
        with pytest.raises(_Boom):
            s.save_entries(HardState(1, 1, 1), 1, 2, _failing_datas())  # type: ignore[arg-type]
        with pytest.raises(_Boom):
            s.save_entries_async(HardState(1, 1, 1), 1, 2, _failing_datas())  # type: ignore[arg-type]
        assert _files(tmp_path / "node" / "wal") == before
        assert s.last_index() == 1
    with WAL.create(tmp_path / "w", None) as w:
        w.save_entries(HardState(1, 1, 1), 1, 1, [b"first"])
        before = _files(tmp_path / "w")
        with pytest.raises(_Boom):
            w.save_entries(HardState(1, 1, 1), 1, 2, _failing_datas())  # type: ignore[arg-type]
        with pytest.raises(_Boom):
            w.save_entries_async(HardState(1, 1, 1), 1, 2, _failing_datas())  # type: ignore[arg-type]
        assert _files(tmp_path / "w") == before
        w.save_entries(HardState(1, 1, 2), 1, 2, [b"second"])
    with WAL.open_for_read(tmp_path / "w") as r:
        assert [e.data for e in r.read_all()[2]] == [b"first", b"second"]
    with raftwal.open(tmp_path / "node") as s:
        assert [e.data for e in s.entries(1, 2)] == [b"first"] and s.last_index() == 1

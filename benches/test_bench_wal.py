"""pytest-benchmark suites. In the test run they execute once, with
benchmarking disabled; `make bench` measures them."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import raftwal
from raftwal import WAL, Entry, HardState


@pytest.fixture
def wal(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = WAL.create(tmp_path / "wal", b"bench")
    yield w
    w.close()


def test_save_1x100b(benchmark, wal: WAL) -> None:  # type: ignore[no-untyped-def]
    """One durable save of one 100-byte entry: fsync-bound."""
    idx = itertools.count(1)
    data = b"x" * 100

    def one() -> None:
        i = next(idx)
        wal.save(HardState(1, 1, i - 1), [Entry(term=1, index=i, data=data)])

    benchmark(one)


def test_save_100x100b(benchmark, wal: WAL) -> None:  # type: ignore[no-untyped-def]
    """One durable save of 100 entries of 100 bytes."""
    idx = itertools.count(1)
    data = b"x" * 100

    def batch() -> None:
        start = next(idx) * 100
        ents = [Entry(term=1, index=start + k, data=data) for k in range(100)]
        wal.save(HardState(1, 1, start), ents)

    # indexes must be consecutive: begin at 100 with an empty prefix filled
    wal.save(HardState(1, 1, 0), [Entry(term=1, index=i, data=data) for i in range(1, 100)])
    benchmark(batch)


def test_read_all_10k(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "wal"
    with WAL.create(d, b"bench") as w:
        w.save(
            HardState(1, 1, 0), [Entry(term=1, index=i, data=b"y" * 100) for i in range(1, 10_001)]
        )

    def read() -> int:
        with WAL.open_for_read(d) as r:
            return len(r.read_all()[2])

    assert benchmark(read) == 10_000


def test_crc32c_1mib(benchmark) -> None:  # type: ignore[no-untyped-def]
    buf = bytes(range(256)) * 4096
    assert benchmark(raftwal.crc32c, buf) == raftwal.crc32c(buf)

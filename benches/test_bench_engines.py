"""raftwal next to the storage engines people already use, with
pytest-benchmark: durable saves of 1, 10, 100 and 1000 entries of 100 bytes
(one group per batch size), and recovery of 100,000 entries (one group).

    pytest benches --benchmark-enable --benchmark-group-by=group
    pytest benches --benchmark-enable --benchmark-autosave
    pytest benches --benchmark-enable --benchmark-compare

Every save is durable before the next starts: raftwal's ``WAL.save`` and
``DurableStorage.save`` with a HardState (so they sync, as etcd must),
sqlite3 in WAL mode with ``synchronous=FULL`` (one transaction a batch),
py-lmdb with its default sync (one write transaction a batch), and a pure
Python encoder of the same WAL format (one ``os.write`` + ``fdatasync`` a
batch). Entries are built inside the timed call, as a caller builds them.
In the test run (``--benchmark-disable``) each runs once, as a test.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

import raftwal
from raftwal import WAL, Entry, HardState
from raftwal.cli.bench_systems import PyWal

ENTRY = bytes(range(100))
BATCHES = [1, 10, 100, 1000]
RECOVERY_ENTRIES = 100_000


class Engine(Protocol):
    def save(self, first: int, count: int) -> None: ...
    def close(self) -> None: ...


class RaftwalWal:
    def __init__(self, path: Path) -> None:
        self.w = WAL.create(path / "wal", b"bench")

    def save(self, first: int, count: int) -> None:
        ents = [Entry(term=1, index=i, data=ENTRY) for i in range(first, first + count)]
        self.w.save(HardState(1, 1, first + count - 1), ents)

    def close(self) -> None:
        self.w.close()


class RaftwalDurable:
    def __init__(self, path: Path) -> None:
        self.s = raftwal.open(path / "data")

    def save(self, first: int, count: int) -> None:
        ents = [Entry(term=1, index=i, data=ENTRY) for i in range(first, first + count)]
        self.s.save(HardState(1, 1, first + count - 1), ents)

    def close(self) -> None:
        self.s.close()


class Sqlite:
    def __init__(self, path: Path) -> None:
        self.con = sqlite3.connect(path / "log.db", isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=FULL")
        self.con.execute("CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, t, d BLOB)")
        self.con.execute("CREATE TABLE IF NOT EXISTS hs (id INTEGER PRIMARY KEY, t, v, c)")

    def save(self, first: int, count: int) -> None:
        ents = [Entry(term=1, index=i, data=ENTRY) for i in range(first, first + count)]
        self.con.execute("BEGIN")
        self.con.executemany(
            "INSERT INTO log VALUES (?, ?, ?)", [(e.index, e.term, e.data) for e in ents]
        )
        self.con.execute("INSERT OR REPLACE INTO hs VALUES (0, 1, 1, ?)", (first + count - 1,))
        self.con.execute("COMMIT")

    def read_all(self) -> int:
        return len(self.con.execute("SELECT idx, t, d FROM log ORDER BY idx").fetchall())

    def close(self) -> None:
        self.con.close()


class Lmdb:
    def __init__(self, path: Path) -> None:
        lmdb = pytest.importorskip("lmdb", reason="py-lmdb is in the bench extra")
        self.env = lmdb.open(str(path / "lmdb"), map_size=1 << 30, max_dbs=2)
        self.log = self.env.open_db(b"log")
        self.state = self.env.open_db(b"state")

    def save(self, first: int, count: int) -> None:
        ents = [Entry(term=1, index=i, data=ENTRY) for i in range(first, first + count)]
        with self.env.begin(write=True) as txn:
            txn.cursor(self.log).putmulti(
                [(e.index.to_bytes(8, "big"), b"%d:%s" % (e.term, e.data)) for e in ents],
                append=True,
            )
            txn.put(b"hs", b"1:1:%d" % (first + count - 1), db=self.state)

    def read_all(self) -> int:
        with self.env.begin() as txn:
            return sum(1 for _ in txn.cursor(self.log))

    def close(self) -> None:
        self.env.close()


class PurePython:
    def __init__(self, path: Path) -> None:
        self.w = PyWal(path / "pywal", b"bench")

    def save(self, first: int, count: int) -> None:
        ents = [Entry(term=1, index=i, data=ENTRY) for i in range(first, first + count)]
        self.w.save(HardState(1, 1, first + count - 1), ents)

    def close(self) -> None:
        self.w.close()


ENGINES: dict[str, Callable[[Path], Engine]] = {
    "raftwal WAL": RaftwalWal,
    "raftwal DurableStorage": RaftwalDurable,
    "sqlite3 WAL FULL": Sqlite,
    "lmdb": Lmdb,
    "pure-Python encoder": PurePython,
}


@pytest.fixture(params=list(ENGINES))
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    e = ENGINES[request.param](tmp_path)
    yield request.param, e
    e.close()


@pytest.mark.parametrize("batch", BATCHES)
def test_durable_save(benchmark: Any, engine: tuple[str, Engine], batch: int) -> None:
    """One durable save of ``batch`` entries of 100 bytes."""
    name, e = engine
    benchmark.group = f"durable save, {batch} x 100 B"
    benchmark.name = f"{name} [{batch}]"
    starts = itertools.count(1, batch)

    def one() -> None:
        e.save(next(starts), batch)

    benchmark(one)


def _fill(e: Engine, n: int) -> None:
    for first in range(1, n + 1, 1000):
        e.save(first, min(1000, n + 1 - first))


def test_recovery_raftwal(benchmark: Any, tmp_path: Path) -> None:
    """``raftwal.open`` of 100,000 entries until ``entries()`` serves them."""
    e = RaftwalDurable(tmp_path)
    _fill(e, RECOVERY_ENTRIES)
    e.close()
    benchmark.group = f"recovery, {RECOVERY_ENTRIES:,} x 100 B"

    def reopen() -> None:
        with raftwal.open(tmp_path / "data") as s:
            assert s.last_index() == RECOVERY_ENTRIES
            assert len(s.entries(1, RECOVERY_ENTRIES + 1)) == RECOVERY_ENTRIES

    benchmark(reopen)


@pytest.mark.parametrize("kind", ["sqlite3 WAL FULL", "lmdb"])
def test_recovery_other_engines(benchmark: Any, tmp_path: Path, kind: str) -> None:
    """Reading every entry back from a reopened engine, in index order."""
    e: Sqlite | Lmdb = Sqlite(tmp_path) if kind.startswith("sqlite") else Lmdb(tmp_path)
    _fill(e, RECOVERY_ENTRIES)
    e.close()
    benchmark.group = f"recovery, {RECOVERY_ENTRIES:,} x 100 B"

    def reopen() -> None:
        again: Sqlite | Lmdb = Sqlite(tmp_path) if kind.startswith("sqlite") else Lmdb(tmp_path)
        try:
            assert again.read_all() == RECOVERY_ENTRIES
        finally:
            again.close()

    benchmark(reopen)

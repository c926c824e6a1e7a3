"""A key-value state machine whose state lives in SQLite, snapshotted as a
backend database beside raftwal's snapshots (etcd's ``.snap.db``).

    python examples/sqlite_backend.py [DATA_DIR]

The raft log lives in ``DATA_DIR`` (``wal/``, ``snap/``); the application's
state in ``DATA_DIR/app.sqlite``, which also records the last applied
index. Every ``SNAPSHOT_EVERY`` entries the state is copied with SQLite's
online backup and handed to ``create_snapshot(..., db=path)``: raftwal
streams it to ``snap/%016x.snap.db`` before the snapshot itself is written.
On restart, ``raftwal.open(..., backend=..., backend_index=...)`` puts the
snapshot's database in place when the application's copy is behind it (or
gone), and the entries after it are applied again from the log.

The run below writes keys, loses the application's database (as a disk
replaced under it would), restarts and checks that every key is back.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
from pathlib import Path

import raftwal

SNAPSHOT_EVERY = 50


def applied_index(path: str) -> int:
    """The index the backend at ``path`` has applied (raftwal asks on open)."""
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT applied FROM meta").fetchone()
    return int(row[0]) if row else 0


class KV:
    """The state machine: ``put key=value`` commands applied to SQLite."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (applied INTEGER)")
        if self.db.execute("SELECT count(*) FROM meta").fetchone()[0] == 0:
            self.db.execute("INSERT INTO meta VALUES (0)")
        self.db.commit()

    @property
    def applied(self) -> int:
        return int(self.db.execute("SELECT applied FROM meta").fetchone()[0])

    def apply(self, entries: list[raftwal.Entry]) -> None:
        with self.db:
            for e in entries:
                if e.data:
                    k, _, v = e.data.decode().partition("=")
                    self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (k, v))
            self.db.execute("UPDATE meta SET applied = ?", (entries[-1].index,))

    def items(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT k, v FROM kv"))

    def snapshot(self, storage: raftwal.DurableStorage) -> None:
        """Copy the state (consistent, while it is in use) and snapshot it."""
        fd, tmp = tempfile.mkstemp(suffix=".sqlite", dir=self.path.parent)
        os.close(fd)
        try:
            with sqlite3.connect(tmp) as copy:
                self.db.backup(copy)
            storage.create_snapshot(self.applied, raftwal.ConfState(voters=[1]), b"", db=tmp)
        finally:
            os.unlink(tmp)

    def close(self) -> None:
        self.db.close()


def start(data_dir: Path) -> tuple[raftwal.DurableStorage, KV]:
    """Restart: raftwal recovers the log and, if needed, the backend; the
    state machine then applies what it has not applied yet."""
    backend = data_dir / "app.sqlite"
    storage = raftwal.open(
        data_dir, snapshot_count=SNAPSHOT_EVERY, backend=backend, backend_index=applied_index
    )
    if storage.recovery.backend_restored:
        print("backend restored from", storage.recovery.backend_restored[0])
    kv = KV(backend)
    hs, _ = storage.initial_state()
    if hs.commit > kv.applied:
        kv.apply(storage.entries(kv.applied + 1, hs.commit + 1))
    return storage, kv


def write(storage: raftwal.DurableStorage, kv: KV, items: dict[str, str]) -> None:
    """Propose, commit and apply one entry per key (a one-member cluster)."""
    for k, v in items.items():
        index = storage.last_index() + 1
        entry = raftwal.Entry(term=1, index=index, data=f"{k}={v}".encode())
        storage.save(raftwal.HardState(term=1, vote=1, commit=index), [entry])
        kv.apply([entry])
        if storage.needs_snapshot(kv.applied):
            kv.snapshot(storage)


def main(argv: list[str]) -> int:
    data_dir = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="kv-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    expected = {f"key{i:03d}": f"value{i}" for i in range(120)}

    storage, kv = start(data_dir)
    write(storage, kv, expected)
    print("applied", kv.applied, "snapshot at", storage.snapshot().metadata.index)
    kv.close()
    storage.close()

    (data_dir / "app.sqlite").unlink()  # the application's state is lost
    storage, kv = start(data_dir)
    try:
        assert kv.items() == expected, "state not restored"
        print("restored", len(kv.items()), "keys; applied", kv.applied)
    finally:
        kv.close()
        storage.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The Storage contract suite (tests/support/storage_contract.py) against
DurableStorage: every mutation goes to disk first, and the suite's
`reopen` really closes the storage and recovers it from its files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

import raftwal
from raftwal import ConfState, Entry, HardState, Snapshot
from raftwal.storage import Storage

from storage_contract import StorageContract


class DurableAdapter:
    """Drives a DurableStorage through its own API (save, create_snapshot)."""

    def __init__(self, path: Path, bounded_memory: bool = False) -> None:
        self._path = path
        # a large catch-up keeps memory uncompacted, as MemoryStorage's
        # create_snapshot leaves it; small segments make the log span files
        self._opts = dict(
            catch_up_entries=10**9,
            segment_size=512,
            max_wals=0,
            max_snapshots=0,
            bounded_memory=bounded_memory,
        )
        self._s = raftwal.open(path, **self._opts)  # type: ignore[arg-type]
        self.hard_state = HardState()

    @property
    def storage(self) -> Storage:
        return self._s

    def apply_snapshot(self, snap: Snapshot) -> None:
        # raft hands a snapshot over with a HardState that commits it; recovery
        # (like etcd's) only trusts snapshot records at or below the commit
        md = snap.metadata
        if self._s.last_index() > md.index and md.index > self._s.snapshot().metadata.index:
            # memory drops the entries after the snapshot, but they are in the
            # WAL already and a restart replays them (as etcd's does)
            pytest.skip("persisted entries after a snapshot come back on restart")
        hs, _ = self._s.initial_state()
        if hs.commit < md.index:
            hs = HardState(term=max(hs.term, md.term), vote=hs.vote, commit=md.index)
            self.hard_state = hs
        self._s.save(hs, [], snapshot=snap)

    def append(self, entries: Sequence[Entry]) -> None:
        self._s.save(HardState(), entries)

    def compact(self, index: int) -> None:
        self._s.compact(index)

    def create_snapshot(
        self, index: int, conf_state: ConfState | None, data: bytes | None
    ) -> Snapshot:
        # a snapshot must be committed to be used on restart: raft's state
        # machine only snapshots applied (so committed) entries
        hs, _ = self._s.initial_state()
        s = self._s
        if hs.commit < index <= s.last_index() and index >= max(
            s.first_index() - 1, s.snapshot().metadata.index + 1
        ):
            self.hard_state = HardState(term=hs.term, vote=hs.vote, commit=index)
            self._s.save(self.hard_state, [])
        return self._s.create_snapshot(index, conf_state, data)

    def set_hard_state(self, hs: HardState) -> None:
        self.hard_state = HardState(hs.term, hs.vote, hs.commit)
        self._s.save(hs, [])
        self._s.wal.sync()  # commit-only states are buffered until the next sync

    def reopen(self) -> None:
        self._s.close()
        self._s = raftwal.open(self._path, **self._opts)  # type: ignore[arg-type]

    def close(self) -> None:
        self._s.close()


class TestDurableStorageContract(StorageContract):
    def make_adapter(self, tmp_path: Path) -> DurableAdapter:  # type: ignore[override]
        return DurableAdapter(tmp_path / "data")


class TestBoundedMemoryDurableStorageContract(StorageContract):
    """The same suite with the recovered log kept on disk (bounded_memory):
    every reopen serves entries from the segment files."""

    def make_adapter(self, tmp_path: Path) -> DurableAdapter:  # type: ignore[override]
        return DurableAdapter(tmp_path / "data", bounded_memory=True)

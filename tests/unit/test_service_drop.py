"""A WAL or storage dropped without close() is collected: its locks,
threads and descriptors are released, with a ResourceWarning, also after
save_async (whose group-commit thread used to keep it alive)."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import pytest

import raftwal
from raftwal import Entry, HardState


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _raftwal_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("raftwal")]


def _settle(before_threads: list[str]) -> None:
    """Threads stop shortly after the collection signals them."""
    for _ in range(200):
        if len(_raftwal_threads()) <= len(before_threads):
            return
        time.sleep(0.01)


@pytest.mark.parametrize("use_async", [False, True])
def test_a_dropped_wal_is_collected_and_unlocked(tmp_path: Path, use_async: bool) -> None:
    threads_before = _raftwal_threads()
    fds_before = _fds()
    w = raftwal.WAL.create(tmp_path / "wal", b"m")
    hs = HardState(term=1, vote=1, commit=1)
    if use_async:
        w.save_async(hs, [Entry(term=1, index=1, data=b"x")]).result(timeout=30)
    else:
        w.save(hs, [Entry(term=1, index=1, data=b"x")])
    with pytest.warns(ResourceWarning, match="unclosed"):
        del w
        gc.collect()
    _settle(threads_before)
    assert _raftwal_threads() == threads_before
    assert _fds() <= fds_before
    with raftwal.WAL.open(tmp_path / "wal") as again:  # not WALLockedError
        _, got_hs, ents = again.read_all()
    assert [e.data for e in ents] == [b"x"] and got_hs == hs


def test_a_dropped_storage_is_collected_and_unlocked(tmp_path: Path) -> None:
    s = raftwal.open(tmp_path / "data")
    futs = [
        s.save_async(HardState(term=1, vote=1, commit=i), [Entry(term=1, index=i, data=b"y")])
        for i in range(1, 20)
    ]
    for f in futs:
        f.result(timeout=30)
    with pytest.warns(ResourceWarning, match="unclosed"):
        del s, futs
        gc.collect()
    with raftwal.open(tmp_path / "data", recovery="strict") as again:
        assert again.last_index() == 19

"""Snapshot writes cut short (a signal inside the write, a kill) leave no
temporary behind for long: a writer removes its own leftovers once it holds
the WAL (at open, and at every snapshot); read-only paths never do."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import raftwal
from raftwal import ConfState, Entry, HardState


def _fill(s: raftwal.DurableStorage, upto: int) -> None:
    last = s.last_index()
    ents = [Entry(term=1, index=i, data=b"e%d" % i) for i in range(last + 1, upto + 1)]
    s.save(HardState(term=1, vote=1, commit=upto), ents)


def _tmps(d: Path) -> list[str]:
    return sorted(p.name for p in (d / "snap").iterdir() if p.name.endswith(".tmp"))


def test_a_writer_removes_leftover_snapshot_temporaries_at_open(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with raftwal.open(d) as s:
        _fill(s, 5)
        s.create_snapshot(5, ConfState(voters=[1]), b"x")
    left = d / "snap" / "0000000000000001-0000000000000009.snap.k2j4h5.tmp"
    left.write_bytes(os.urandom(20 * 1024))
    db_tmp = d / "snap" / "db.tmp.123"
    db_tmp.write_bytes(b"transfer")
    with raftwal.open(d, read_only=True):
        pass
    assert r_verify(d) == 0
    assert left.exists() and db_tmp.exists()  # read-only: untouched
    with raftwal.open(d) as s:
        assert _tmps(d) == []
        assert str(left) in s.recovery.removed and str(db_tmp) in s.recovery.removed


def r_verify(d: Path) -> int:
    return subprocess.run(
        [sys.executable, "-m", "raftwal", "verify", str(d)], capture_output=True, timeout=60
    ).returncode


def test_a_snapshot_interrupted_inside_mkstemp_leaves_nothing_after_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGINT can arrive after mkstemp created the file and before the
    writer knows its name: the next snapshot removes it."""
    d = tmp_path / "data"
    real = tempfile.mkstemp

    def interrupted(*args: object, **kw: object) -> tuple[int, str]:
        fd, _name = real(*args, **kw)  # type: ignore[call-overload]
        os.write(fd, b"partial" * 1000)
        os.close(fd)
        raise KeyboardInterrupt

    with raftwal.open(d, max_snapshots=1) as s:
        _fill(s, 10)
        monkeypatch.setattr(tempfile, "mkstemp", interrupted)
        with pytest.raises(KeyboardInterrupt):
            s.create_snapshot(5, ConfState(voters=[1]), b"a")
        monkeypatch.setattr(tempfile, "mkstemp", real)
        assert len(_tmps(d)) == 1
        assert s.snapshot().metadata.index == 0  # the interrupted call changed nothing
        for i in (6, 7, 8):
            s.create_snapshot(i, ConfState(voters=[1]), b"b")
            assert _tmps(d) == []
    with raftwal.open(d, recovery="strict") as s:
        assert s.snapshot().metadata.index == 8 and s.last_index() == 10

"""bounded_memory=True lets go of a replayed segment once compaction has
dropped every entry in it: purged segments do not stay allocated behind
open descriptors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import raftwal
from raftwal import ConfState, Entry, HardState


def _deleted_segments_held() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith(".wal (deleted)"):
            out.append(target)
    return out


def test_purged_segments_are_released_after_compaction(tmp_path: Path) -> None:
    d = tmp_path / "data"
    opts = {"segment_size": 64 * 1024, "max_wals": 1, "catch_up_entries": 10}
    with raftwal.open(d, **opts) as s:  # type: ignore[arg-type]
        for lo in range(1, 3001, 100):
            ents = [Entry(term=1, index=i, data=b"x" * 200) for i in range(lo, lo + 100)]
            s.save(HardState(term=1, vote=1, commit=lo + 99), ents)
    segments = len(list((d / "wal").glob("*.wal")))
    assert segments > 5
    with raftwal.open(d, bounded_memory=True, **opts) as s:  # type: ignore[arg-type]
        assert s.entries(2990, 2991)[0].data == b"x" * 200
        s.create_snapshot(3000, ConfState(voters=[1]), b"state")
        assert len(list((d / "wal").glob("*.wal"))) < segments  # purged
        held = _deleted_segments_held()
        assert held == [], held
        # entries kept for catch-up still read back
        assert [e.index for e in s.entries(2995, 3001)] == list(range(2995, 3001))


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _many_segments(d: Path, segments: int) -> int:
    """A WAL of at least ``segments`` segments (one a save); its last index."""
    w = raftwal.WAL.create(d / "wal", b"m", segment_size=16 * 1024)
    i = 0
    while len(list((d / "wal").glob("*.wal"))) < segments:
        ents = [Entry(term=1, index=i + k, data=b"e" * 1000) for k in range(1, 21)]
        i += 20
        w.save(HardState(term=1, vote=1, commit=i), ents)
    w.close()
    return i


def test_a_bounded_open_opens_each_segment_once(tmp_path: Path) -> None:
    """The on-disk log reads through the replay's own descriptors (a
    writer's locked ones): bounded_memory costs no descriptor a plain open
    does not hold."""
    d = tmp_path / "data"
    last = _many_segments(d, 60)
    base = _fds()
    with raftwal.open(d) as s:
        plain = _fds() - base
    assert plain >= 60  # a writer holds every segment it may still need locked
    for read_only in (False, True):
        with raftwal.open(d, bounded_memory=True, read_only=read_only) as s:
            held = _fds() - base
            assert s.entries(last, last + 1)[0].index == last
        assert held <= plain + 1, (read_only, held, plain)


def test_close_releases_every_segment_of_the_on_disk_log(tmp_path: Path) -> None:
    d = tmp_path / "data"
    last = _many_segments(d, 30)
    base = _fds()
    for read_only in (False, True):
        s = raftwal.open(d, bounded_memory=True, read_only=read_only)
        assert _fds() - base >= 30
        assert s.entries(1, 2)[0].data == b"e" * 1000
        s.close()
        # the storage is still referenced: close itself let go of the files
        assert _fds() == base, (read_only, _fds() - base)
        assert s.term(last) == 1
        with pytest.raises(raftwal.WALClosedError):
            s.entries(1, 2)
        del s


def test_a_closed_reader_pins_no_segment_a_writer_purges(tmp_path: Path) -> None:
    """A bounded read-only storage of a live directory, closed but still
    referenced, keeps no purged segment allocated."""
    d = tmp_path / "data"
    opts = {"segment_size": 16 * 1024, "max_wals": 1, "catch_up_entries": 10}
    w = raftwal.open(d, **opts)  # type: ignore[arg-type]
    for lo in range(1, 1001, 20):
        ents = [Entry(term=1, index=i, data=b"x" * 1000) for i in range(lo, lo + 20)]
        w.save(HardState(term=1, vote=1, commit=lo + 19), ents)
    r = raftwal.open(d, bounded_memory=True, read_only=True)
    assert r.entries(1, 2)[0].data == b"x" * 1000
    r.close()
    before = len(list((d / "wal").glob("*.wal")))
    w.create_snapshot(1000, ConfState(voters=[1]), b"state")
    assert len(list((d / "wal").glob("*.wal"))) < before  # purged
    held = _deleted_segments_held()
    w.close()
    assert held == [], held
    assert r.last_index() == 1000
    del r


CHILD = textwrap.dedent(
    """
    import resource, sys
    import raftwal
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    with raftwal.open(sys.argv[1], bounded_memory=True) as s:
        print(s.entries(1, 2)[0].index, s.last_index())
    """
)


def test_a_bounded_open_fits_where_a_plain_open_does(tmp_path: Path) -> None:
    """150 segments under ``ulimit -n 256``: a plain writable open holds
    each segment once (its lock); a bounded one must fit the same budget."""
    d = tmp_path / "data"
    last = _many_segments(d, 150)
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(d)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["1", str(last)]

"""bounded_memory=True lets go of a replayed segment once compaction has
dropped every entry in it: purged segments do not stay allocated behind
open descriptors."""

from __future__ import annotations

import os
from pathlib import Path

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

"""raftwal.open reads each WAL byte once: the bytes the process reads
(``/proc/self/io`` ``rchar``) while opening a multi-segment WAL, in every
recovery mode and while repairing a torn tail, stay within one read of its
segments plus the ``.snap`` file it starts from."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from walfile import frames, segments

import raftwal
from raftwal import ConfState, Entry, HardState

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/io"), reason="needs /proc/self/io (Linux)"
)

SEGMENT = 16 * 1024


def rchar() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twenty-odd segments, a snapshot among the first ones (so the open
    starts there), entries in the last segment."""
    d = tmp_path_factory.mktemp("once") / "d"
    with raftwal.open(
        d, segment_size=SEGMENT, snapshot_count=1 << 40, max_wals=0, max_snapshots=0
    ) as s:
        i = 0
        while len(segments(d / "wal")) < 24 or not [
            f for f in frames(segments(d / "wal")[-1]) if f.type == 2
        ]:
            batch = [Entry(term=1, index=i + k, data=b"%06d" % (i + k) * 40) for k in range(1, 11)]
            i += 10
            s.save(HardState(1, 1, i), batch)
            if i == 100:
                s.create_snapshot(100, ConfState(voters=[1]), b"state" * 100)
    return d


def tear_tail(d: Path) -> None:
    tail = segments(d / "wal")[-1]
    f = [x for x in frames(tail) if x.type == 2][-1]
    os.truncate(tail, f.end - 3)


def wal_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in segments(d / "wal"))


def snap_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in (d / "snap").glob("*.snap"))


CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("strict", {"recovery": "strict"}, False),
    ("tolerate-tail", {"recovery": "tolerate-tail"}, False),
    ("salvage", {"recovery": "salvage"}, False),
    ("tolerate-tail, torn tail repaired", {"recovery": "tolerate-tail"}, True),
    ("salvage, torn tail cut", {"recovery": "salvage"}, True),
    ("bounded memory", {"bounded_memory": True}, False),
    ("read-only", {"read_only": True}, False),
]


@pytest.mark.parametrize(("kwargs", "torn"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_open_reads_the_wal_once(
    built: Path, tmp_path: Path, kwargs: dict[str, Any], torn: bool
) -> None:
    d = tmp_path / "d"
    shutil.copytree(built, d)
    if torn:
        tear_tail(d)
    limit = 1.1 * wal_bytes(d) + snap_bytes(d)
    before = rchar()
    s = raftwal.open(d, segment_size=SEGMENT, **kwargs)
    read = rchar() - before
    try:
        assert s.recovery.repaired == torn
        assert s.recovery.snapshot_index == 100
        assert s.last_index() >= 200
    finally:
        s.close()
    assert read <= limit, f"read {read} bytes; the WAL is {wal_bytes(d)}, the .snap {snap_bytes(d)}"

"""Read an etcd member directory (a backup, or a live member) with raftwal.

    python examples/read_etcd_backup.py [WORK_DIR] [MEMBER_TARBALL]

Unpacks a real etcd 3.4 member directory (by default the one the tests
use), opens it with ``read_only=True`` (no lock taken, nothing written),
and prints what a restart of that member would recover: the snapshot, the
HardState, the log's range and its last few entries.
"""

from __future__ import annotations

import sys
import tarfile
import tempfile
from pathlib import Path

import raftwal

DEFAULT = Path(__file__).resolve().parents[1] / "tests/support/fixtures/etcd-3.4.23/single.tar.gz"


def main(work: Path, tarball: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(work, filter="data")
    member = next(p.parent for p in work.rglob("wal") if p.parent.name == "member")
    before = sorted((p.relative_to(member), p.stat().st_size) for p in member.rglob("*"))
    with raftwal.open(member, read_only=True) as storage:
        hs, cs = storage.initial_state()
        snap = storage.snapshot().metadata
        print(f"member {member}")
        print(f"snapshot at index {snap.index} term {snap.term}; voters {list(cs.voters)}")
        print(f"hard state term {hs.term} vote {hs.vote:#x} commit {hs.commit}")
        first, last = storage.first_index(), storage.last_index()
        print(f"log {first}..{last}")
        for e in storage.entries(max(first, last - 2), last + 1):
            print(f"  {e.index} term {e.term} type {e.type} {len(e.data)} bytes")
    after = sorted((p.relative_to(member), p.stat().st_size) for p in member.rglob("*"))
    assert before == after, "a read-only open changed the directory"
    print("the directory is unchanged")


if __name__ == "__main__":
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    main(work, Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT)

"""Real etcd member directories (tests/support/fixtures, written by etcd's own
servers) and what etcd's own code reads from them (*.expect.json)."""

from __future__ import annotations

import hashlib
import json
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class Fixture:
    name: str
    archive: str
    member: str  # path of the member directory inside the archive
    expect: str

    def unpack(self, dest: Path) -> Path:
        with tarfile.open(FIXTURES / self.archive) as tar:
            tar.extractall(dest, filter="data")
        return dest / self.member

    def expected(self) -> dict[str, Any]:
        return json.loads((FIXTURES / self.expect).read_text())  # type: ignore[no-any-return]


ALL = [
    Fixture("single", "etcd-3.4.23/single.tar.gz", "member", "etcd-3.4.23/single.expect.json"),
    Fixture(
        "cluster3-a",
        "etcd-3.4.23/cluster3.tar.gz",
        "a/member",
        "etcd-3.4.23/cluster3-a.expect.json",
    ),
    Fixture(
        "cluster3-c",
        "etcd-3.4.23/cluster3.tar.gz",
        "c/member",
        "etcd-3.4.23/cluster3-c.expect.json",
    ),
    Fixture(
        "live-copy", "etcd-3.4.23/live-copy.tar.gz", "member", "etcd-3.4.23/live-copy.expect.json"
    ),
    Fixture("learner-3.5", "etcd-3.5.1/learner.tar.gz", "member", "etcd-3.5.1/learner.expect.json"),
]

ENTRY_TYPE_NAMES = {0: "EntryNormal", 1: "EntryConfChange", 2: "EntryConfChangeV2"}


def entries_sha256(entries: Any) -> str:
    """The fixtures' digest over entries: u64 LE term, index, type, data length, then data."""
    h = hashlib.sha256()
    for e in entries:
        data = e.data
        h.update(struct.pack("<QQQQ", e.term, e.index, int(e.type), len(data)))
        h.update(data)
    return h.hexdigest()

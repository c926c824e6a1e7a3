"""Every real etcd member directory in tests/support/fixtures reads exactly as
etcd's own wal/snap code reads it (the *.expect.json files)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

import raftwal
from raftwal import WAL, WalSnapshot

from etcd_fixtures import ALL, ENTRY_TYPE_NAMES, Fixture, entries_sha256


@pytest.fixture(params=ALL, ids=[f.name for f in ALL])
def fixture(request: pytest.FixtureRequest) -> Fixture:
    return request.param  # type: ignore[no-any-return]


def test_read_from_index_1(fixture: Fixture, tmp_path: Path) -> None:
    member = fixture.unpack(tmp_path)
    exp = fixture.expected()
    with WAL.open_for_read(member / "wal") as w:
        metadata, hs, entries = w.read_all()
    assert metadata.hex() == exp["metadata_hex"]
    assert [hs.term, hs.vote, hs.commit] == exp["hard_state_term_vote_commit"]
    want = exp["entries_from_index_1"]
    assert len(entries) == len(want)
    for e, x in zip(entries, want, strict=True):
        data = e.data
        assert (e.index, e.term, ENTRY_TYPE_NAMES[e.type]) == (x["index"], x["term"], x["type"])
        assert len(data) == x["data_len"]
        assert hashlib.sha256(data).hexdigest() == x["data_sha256"]


def test_snapshot_records(fixture: Fixture, tmp_path: Path) -> None:
    member = fixture.unpack(tmp_path)
    exp = fixture.expected()
    # every record, committed or not, through a full read of the log
    commit = exp["hard_state_term_vote_commit"][2]
    valid = raftwal.valid_snapshot_entries(member / "wal")
    want = [r for r in exp["wal_snapshot_records_index_term"] if r[0] <= commit]
    assert [[s.index, s.term] for s in valid] == want
    if fixture.name == "learner-3.5":
        # etcd 3.5 records carry the ConfState
        assert all(s.conf_state is not None for s in valid if s.index > 0)
    else:
        assert all(s.conf_state is None for s in valid)


def test_read_at_newest_snapshot(fixture: Fixture, tmp_path: Path) -> None:
    member = fixture.unpack(tmp_path)
    exp = fixture.expected()["read_at_newest_snapshot"]
    snap = WalSnapshot(index=exp["snap_index"], term=exp["snap_term"])
    with WAL.open_for_read(member / "wal", snap) as w:
        metadata, hs, entries = w.read_all()
    assert metadata.hex() == exp["metadata_hex"]
    assert (hs.term, hs.vote, hs.commit) == (exp["hs_term"], exp["hs_vote"], exp["hs_commit"])
    assert len(entries) == exp["entries"]
    assert entries[0].index == exp["first_index"]
    assert entries[-1].index == exp["last_index"]
    assert entries_sha256(entries) == exp["entries_sha256"]


def test_writable_open_and_verify(fixture: Fixture, tmp_path: Path) -> None:
    """A cleanly stopped member opens for writing, verifies, and takes appends."""
    member = fixture.unpack(tmp_path)
    exp = fixture.expected()
    wal_dir = member / "wal"
    hs = raftwal.verify(wal_dir)
    assert [hs.term, hs.vote, hs.commit] == exp["hard_state_term_vote_commit"]
    before = {p.name for p in wal_dir.iterdir()}
    with WAL.open(wal_dir) as w:
        _, hs, entries = w.read_all()
        last = entries[-1]
        w.save(hs, [raftwal.Entry(term=last.term, index=last.index + 1, data=b"appended")])
    with WAL.open_for_read(wal_dir) as w:
        _, _, again = w.read_all()
    assert again[:-1] == entries
    assert again[-1].data == b"appended"
    # the live copy's 0.tmp is reused or left, never read as a segment
    assert {p.name for p in wal_dir.iterdir() if p.suffix == ".wal"} == {
        n for n in before if n.endswith(".wal")
    }


def test_snap_dir_untouched_by_wal_reads(fixture: Fixture, tmp_path: Path) -> None:
    member = fixture.unpack(tmp_path)
    snap_before = sorted(p.name for p in (member / "snap").iterdir())
    copy = tmp_path / "copy"
    shutil.copytree(member, copy)
    with WAL.open_for_read(copy / "wal") as w:
        w.read_all()
    assert sorted(p.name for p in (copy / "snap").iterdir()) == snap_before

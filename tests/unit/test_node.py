"""raftwal.open: recovery as etcd restarts a member, snapshots, purging and
restarts over hypothesis-chosen operations."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from walfile import frames, segments

import raftwal
from raftwal import ConfState, Entry, HardState, MemberMetadata

from etcd_fixtures import ALL, Fixture, entries_sha256


@pytest.mark.parametrize("fixture", ALL, ids=[f.name for f in ALL])
def test_open_fixture_member(fixture: Fixture, tmp_path: Path) -> None:
    """raftwal.open on a real member directory loads what etcd's restart loads."""
    member = fixture.unpack(tmp_path)
    exp = fixture.expected()["read_at_newest_snapshot"]
    with raftwal.open(member) as s:
        hs, cs = s.initial_state()
        assert (hs.term, hs.vote, hs.commit) == (exp["hs_term"], exp["hs_vote"], exp["hs_commit"])
        assert s.metadata.hex() == exp["metadata_hex"]
        assert MemberMetadata.FromString(s.metadata).node_id != 0
        snap = s.snapshot()
        assert (snap.metadata.index, snap.metadata.term) == (exp["snap_index"], exp["snap_term"])
        assert cs == snap.metadata.conf_state and cs.voters
        assert s.first_index() == exp["snap_index"] + 1 == exp["first_index"]
        assert s.last_index() == exp["last_index"]
        assert s.term(exp["snap_index"]) == exp["snap_term"]
        ents = s.entries(s.first_index(), s.last_index() + 1)
        assert len(ents) == exp["entries"]
        assert entries_sha256(ents) == exp["entries_sha256"]
        for e in ents[:: max(1, len(ents) // 7)]:
            assert s.term(e.index) == e.term
        assert s.durable_index == exp["last_index"]
        assert not s.recovery.repaired


def test_create_layout_and_modes(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with raftwal.open(d, metadata=b"md") as s:
        assert s.recovery.created
        assert s.metadata == b"md"
        assert (s.first_index(), s.last_index()) == (1, 0)
        s.save(HardState(1, 1, 0), [Entry(term=1, index=1, data=b"a")])
    for sub in ("", "wal", "snap"):
        assert (d / sub).stat().st_mode & 0o777 == 0o700
    for p in (d / "wal").iterdir():
        assert p.stat().st_mode & 0o777 == 0o600
    with raftwal.open(d, metadata=b"ignored") as s:
        assert s.metadata == b"md"
        assert s.entries(1, 2) == [Entry(term=1, index=1, data=b"a")]
    with raftwal.open(tmp_path / "nometa") as s:
        assert s.metadata == b""


def test_snapshot_compaction_and_purge(tmp_path: Path) -> None:
    d = tmp_path / "data"
    opts = dict(
        snapshot_count=50, catch_up_entries=20, max_snapshots=2, max_wals=3, segment_size=4096
    )
    cs = ConfState(voters=[1])
    with raftwal.open(d, **opts) as s:  # type: ignore[arg-type]
        for i in range(1, 401):
            s.save(HardState(1, 1, i), [Entry(term=1, index=i, data=os.urandom(60))])
            if s.needs_snapshot(i):
                s.create_snapshot(i, cs, f"state@{i}".encode())
        snap_index = s.snapshot().metadata.index
        assert snap_index == 357  # 51, 102, ... every 51 applied entries
        assert s.first_index() == snap_index - 20 + 1  # compacted through index - catch_up
        assert len(s.snapshotter.snap_names()) == 2
        wals = [p.name for p in segments(d / "wal")]
        assert 1 <= len(wals) <= 3 + 2  # locked segments are never purged
        tail = s.entries(s.first_index(), s.last_index() + 1)
    with raftwal.open(d, **opts) as s:  # type: ignore[arg-type]
        assert s.snapshot().metadata.index == snap_index
        assert s.snapshot().data == f"state@{snap_index}".encode()
        assert s.first_index() == snap_index + 1
        assert s.entries(snap_index + 1, 401) == tail[20:]
        assert s.initial_state() == (HardState(1, 1, 400), cs)


def test_recovery_repairs_a_torn_tail(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with raftwal.open(d) as s:
        for i in range(1, 21):
            s.save(HardState(1, 1, i - 1), [Entry(term=1, index=i, data=b"v" * 100)])
    tail = segments(d / "wal")[-1]
    last_entry = [f for f in frames(tail) if f.type == 2][-1]
    os.truncate(tail, last_entry.end - 5)
    with raftwal.open(d) as s:
        assert s.recovery.repaired
        assert s.last_index() == 19
        s.save(HardState(1, 1, 19), [Entry(term=1, index=20, data=b"again")])
    with raftwal.open(d) as s:
        assert not s.recovery.repaired
        assert s.entries(20, 21)[0].data == b"again"
    assert any(p.name.endswith(".broken") for p in (d / "wal").iterdir())


def test_recovery_refuses_real_corruption(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with raftwal.open(d) as s:
        for i in range(1, 21):
            s.save(HardState(1, 1, i - 1), [Entry(term=1, index=i, data=b"v" * 100)])
    tail = segments(d / "wal")[-1]
    f = [x for x in frames(tail) if x.type == 2][10]
    raw = bytearray(tail.read_bytes())
    raw[f.offset + 40] ^= 0x10
    tail.write_bytes(bytes(raw))
    with pytest.raises(raftwal.CRCMismatchError):
        raftwal.open(d)


def test_orphan_snap_file_is_ignored(tmp_path: Path) -> None:
    """A .snap written before a crash that lost its WAL record is not used."""
    d = tmp_path / "data"
    with raftwal.open(d) as s:
        for i in range(1, 11):
            s.save(HardState(1, 1, i), [Entry(term=1, index=i)])
        s.snapshotter.save_snap(
            raftwal.Snapshot(
                data=b"orphan", metadata=raftwal.SnapshotMetadata(ConfState([1]), 10, 1)
            )
        )
    with raftwal.open(d) as s:
        assert s.snapshot().is_empty()
        assert s.last_index() == 10


def test_save_async_visibility(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with raftwal.open(d) as s:
        futs = [
            s.save_async(HardState(1, 1, i - 1), [Entry(term=1, index=i)]) for i in range(1, 501)
        ]
        futs[-1].result(timeout=60)
        assert s.last_index() == 500
        assert s.durable_index >= 500
        with pytest.raises(ValueError, match="missing log entry"):
            s.save(HardState(1, 1, 1), [Entry(term=1, index=502)])
    with raftwal.open(d) as s:
        assert s.last_index() == 500


def test_etcd_member_dir_accepts_appends(tmp_path: Path) -> None:
    member = ALL[0].unpack(tmp_path)
    with raftwal.open(member) as s:
        last = s.last_index()
        hs, _ = s.initial_state()
        s.save(HardState(hs.term, hs.vote, last), [Entry(term=hs.term, index=last + 1, data=b"x")])
    with raftwal.open(member) as s:
        assert s.last_index() == last + 1


# --- restarts over hypothesis-chosen operations, against a model -----------------------


class Model:
    """What the storage must hold: the log, the HardState and the snapshot."""

    def __init__(self) -> None:
        self.log: dict[int, Entry] = {}
        self.hs = HardState()
        self.snap_index = 0
        self.snap_term = 0
        self.snap_data: bytes = b""

    @property
    def last(self) -> int:
        return max(self.log, default=self.snap_index)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 6), st.integers(0, 3), st.booleans()),
        st.tuples(st.just("snapshot"), st.integers(0, 10), st.just(0), st.just(False)),
        st.tuples(st.just("reopen"), st.just(0), st.just(0), st.just(False)),
        st.tuples(st.just("commit"), st.just(0), st.just(0), st.just(False)),
    ),
    min_size=1,
    max_size=25,
)


# An overwrite at an index a later snapshot covers: the entries it removed
# must not come back after the restart (etcd's ReadAll brings them back).
OVERWRITE_BELOW_SNAPSHOT = [
    ("append", 2, 0, False),
    ("append", 1, 2, False),
    ("commit", 0, 0, False),
    ("snapshot", 1, 0, False),
    ("reopen", 0, 0, False),
]


@settings(max_examples=60, deadline=None)
@given(ops=ops, bounded=st.booleans())
@example(ops=OVERWRITE_BELOW_SNAPSHOT, bounded=False)
@example(ops=OVERWRITE_BELOW_SNAPSHOT, bounded=True)
def test_restarts_match_model(
    tmp_path_factory: pytest.TempPathFactory,
    ops: list[tuple[str, int, int, bool]],
    bounded: bool,
) -> None:
    """Restarts with and without bounded_memory (the log kept on disk)."""
    d = tmp_path_factory.mktemp("restart") / "data"
    opts = dict(
        catch_up_entries=2, max_snapshots=2, max_wals=2, segment_size=512, bounded_memory=bounded
    )
    m = Model()
    term = 1
    s = raftwal.open(d, **opts)  # type: ignore[arg-type]
    try:
        for kind, n, back, async_ in ops:
            if kind == "append":
                start = max(m.snap_index + 1, m.last + 1 - back)
                term += 1 if back else 0
                ents = [Entry(term=term, index=start + k, data=os.urandom(20)) for k in range(n)]
                for i in list(m.log):
                    if i >= start:
                        del m.log[i]
                for e in ents:
                    m.log[e.index] = e
                m.hs = HardState(term, 1, min(m.hs.commit, start - 1))
                if async_:
                    s.save_async(m.hs, ents).result(timeout=60)
                else:
                    s.save(m.hs, ents)
            elif kind == "commit":
                m.hs = HardState(m.hs.term, m.hs.vote, m.last)
                s.save(m.hs, [])
            elif kind == "snapshot":
                i = min(m.hs.commit, m.snap_index + n)
                if i <= m.snap_index:
                    continue
                s.create_snapshot(i, ConfState(voters=[1]), f"s{i}".encode())
                m.snap_index, m.snap_term, m.snap_data = i, m.log[i].term, f"s{i}".encode()
            else:
                s.close()
                s = raftwal.open(d, **opts)  # type: ignore[arg-type]
                # after a restart memory holds exactly what follows the snapshot
                assert s.snapshot().metadata.index == m.snap_index
                assert s.snapshot().data == m.snap_data
                assert s.first_index() == m.snap_index + 1
            assert s.initial_state()[0] == m.hs
            assert s.last_index() == m.last
            lo = s.first_index()
            if m.last >= lo:
                assert s.entries(lo, m.last + 1) == [m.log[i] for i in range(lo, m.last + 1)]
            assert s.term(m.snap_index) == m.snap_term
    finally:
        s.close()
    shutil.rmtree(d)


def test_bounded_memory_recovery_keeps_the_log_on_disk(tmp_path: Path) -> None:
    """A log recovered with bounded_memory costs its index, not its data."""
    import subprocess
    import sys

    d = tmp_path / "data"
    data_mib = 128
    with raftwal.open(d) as s:
        n = data_mib * 1024  # 1 KiB entries
        for start in range(1, n + 1, 1024):
            ents = [
                Entry(term=1, index=i, data=i.to_bytes(8, "little") * 128)
                for i in range(start, start + 1024)
            ]
            s.save(HardState(1, 1, start + 1023), ents)
    code = (
        "import sys, raftwal\n"
        "base = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"
        "s = raftwal.open(sys.argv[1], bounded_memory=True)\n"
        "last = s.last_index()\n"
        "mid = s.entries(last // 2, last // 2 + 100)\n"
        "assert [e.index for e in mid] == list(range(last // 2, last // 2 + 100))\n"
        "assert all(e.data == e.index.to_bytes(8, 'little') * 128 for e in mid)\n"
        "assert s.term(last) == 1 and s.entries(last, last + 1)[0].index == last\n"
        "peak = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"
        "print(last, (peak - base) // 1024)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(d)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    last, grew_mib = map(int, r.stdout.split())
    assert last == data_mib * 1024
    assert grew_mib < data_mib / 4, grew_mib  # the index: 12 bytes an entry


def test_bounded_memory_reads_detect_later_damage(tmp_path: Path) -> None:
    """Entries read back on demand are checked against their CRC again."""
    d = tmp_path / "data"
    with raftwal.open(d) as s:
        s.save(
            HardState(1, 1, 10),
            [Entry(term=1, index=i, data=b"%03d" % i * 20) for i in range(1, 11)],
        )
    s = raftwal.open(d, bounded_memory=True)
    try:
        seg = segments(d / "wal")[0]
        f = [x for x in frames(seg) if x.type == 2][4]
        raw = bytearray(seg.read_bytes())
        raw[f.end - f.pad - 3] ^= 0x08
        with open(seg, "r+b") as fh:
            fh.seek(f.end - f.pad - 3)
            fh.write(bytes([raw[f.end - f.pad - 3]]))
        assert s.entries(1, 5)[-1].index == 4
        with pytest.raises(raftwal.CRCMismatchError):
            s.entries(5, 6)
    finally:
        s.close()

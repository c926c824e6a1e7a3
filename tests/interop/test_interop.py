"""raftwal against etcd 3.4's real WAL code (tools/etcdref, built from
Debian's golang-etcd-server-dev):

* byte identity: the same create/save/save_snapshot/close/reopen calls with
  the same segment size give the same files, names and bytes (hypothesis);
* etcd reads what raftwal writes, and raftwal reads what etcd writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import raftwal
from raftwal import WAL, Entry, HardState, WalSnapshot

from etcdref import EtcdRef, fixture_entries, require_etcdref

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def ref() -> EtcdRef:
    return require_etcdref()


# --- a small op language run by both implementations ----------------------------


@dataclass
class Script:
    metadata: bytes | None
    segment_size: int
    ops: list[dict[str, Any]] = field(default_factory=list)

    def for_etcd(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"op": "create", "metadata": self.metadata, "segment_size": self.segment_size}
        ]
        for op in self.ops:
            if op["op"] == "reopen":
                out += [
                    {"op": "close"},
                    {"op": "open", "index": 0, "term": 0, "segment_size": self.segment_size},
                ]
            else:
                out.append(op)
        out.append({"op": "close"})
        return out

    def run_raftwal(self, d: Path) -> None:
        w = WAL.create(d, self.metadata, segment_size=self.segment_size)
        try:
            for op in self.ops:
                kind = op["op"]
                if kind == "save":
                    ents = [Entry(t, i, ty, data) for (t, i, ty, data) in op["entries"]]
                    w.save(HardState(*op["hard_state"]), ents)
                elif kind == "save_snapshot":
                    w.save_snapshot(WalSnapshot(index=op["index"], term=op["term"]))
                elif kind == "sync":
                    w.sync()
                elif kind == "release_lock_to":
                    w.release_lock_to(op["index"])
                elif kind == "reopen":
                    w.close()
                    w = WAL.open(d, segment_size=self.segment_size)
                    w.read_all()
                else:  # pragma: no cover - the strategy makes no other op
                    raise AssertionError(kind)
        finally:
            w.close()


def dir_contents(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if not p.name.endswith(".tmp")}


def assert_same_files(ours: Path, theirs: Path) -> None:
    a, b = dir_contents(ours), dir_contents(theirs)
    assert sorted(a) == sorted(b)
    for name in a:
        if a[name] != b[name]:
            first = (
                next(i for i, (x, y) in enumerate(zip(a[name], b[name], strict=False)) if x != y)
                if len(a[name]) == len(b[name])
                else min(len(a[name]), len(b[name]))
            )
            raise AssertionError(
                f"{name} differs at byte {first} (sizes {len(a[name])} and {len(b[name])})"
            )


data_st = st.one_of(
    st.none(),
    st.just(b""),
    st.binary(min_size=1, max_size=40),
    st.binary(min_size=200, max_size=700),
    st.integers(min_value=3000, max_value=9000).map(lambda n: bytes([n % 251]) * n),
)


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    metadata = draw(st.one_of(st.none(), st.just(b""), st.binary(max_size=24)))
    segment_size = draw(st.sampled_from([0, 256, 700, 1024, 4096, 20000]))
    s = Script(metadata, segment_size)
    last = 0
    term = 1
    snap_index = 0
    for _ in range(draw(st.integers(min_value=1, max_value=18))):
        kind = draw(
            st.sampled_from(
                ["save", "save", "save", "save", "state", "snapshot", "sync", "reopen", "release"]
            )
        )
        if kind in ("save", "state"):
            n = 0 if kind == "state" else draw(st.integers(min_value=1, max_value=5))
            start = draw(st.integers(min_value=max(1, last - 2), max_value=last + 1))
            term += draw(st.sampled_from([0, 0, 1]))
            ents = [
                (term, start + k, draw(st.sampled_from([0, 0, 1, 2])), draw(data_st))
                for k in range(n)
            ]
            if ents:
                last = start + n - 1
            hs = draw(
                st.one_of(
                    st.just((0, 0, 0)),
                    st.tuples(st.just(term), st.integers(0, 3), st.integers(0, max(last, 0))),
                )
            )
            s.ops.append({"op": "save", "hard_state": hs, "entries": ents})
        elif kind == "snapshot" and last > 0:
            # index 0 is the initial {0, 0} record: another term there would
            # make every reopen at 0 fail with a snapshot mismatch (in etcd too)
            snap_index = draw(
                st.integers(min_value=max(1, snap_index), max_value=max(last, snap_index, 1))
            )
            s.ops.append({"op": "save_snapshot", "index": snap_index, "term": term})
        elif kind == "sync":
            s.ops.append({"op": "sync"})
        elif kind == "reopen":
            s.ops.append({"op": "reopen"})
        else:
            s.ops.append({"op": "release_lock_to", "index": draw(st.integers(0, last + 1))})
    return s


@settings(max_examples=int(os.environ.get("RAFTWAL_IDENTITY_EXAMPLES", "60")))
@given(script=scripts())
def test_byte_identity(
    ref: EtcdRef, tmp_path_factory: pytest.TempPathFactory, script: Script
) -> None:
    base = tmp_path_factory.mktemp("identity")
    ours, theirs = base / "ours", base / "theirs"
    script.run_raftwal(ours)
    out = ref.script(theirs, script.for_etcd())
    assert out["ok"], out
    assert_same_files(ours, theirs)


def test_byte_identity_save_with_cut(ref: EtcdRef, tmp_path: Path) -> None:
    """etcd's TestSaveWithCut: the cut lands one save late (the page writer)."""
    s = Script(b"metadata", 2048)
    s.ops.append({"op": "save", "hard_state": (1, 0, 0), "entries": []})
    data = b"Hello World!!" + bytes(487)
    for i in range(5):
        s.ops.append({"op": "save", "hard_state": (1, 0, 0), "entries": [(1, i, 0, data)]})
    s.run_raftwal(tmp_path / "ours")
    assert ref.script(tmp_path / "theirs", s.for_etcd())["ok"]
    assert_same_files(tmp_path / "ours", tmp_path / "theirs")
    assert "0000000000000001-0000000000000005.wal" in os.listdir(tmp_path / "ours")


def test_byte_identity_large_writes(ref: EtcdRef, tmp_path: Path) -> None:
    """Records far past the page writer's 128 KiB watermark, and buffered
    commit-only states in between, over several cuts."""
    s = Script(b"md", 300_000)
    idx = 0
    for size in [100, 200_000, 5, 131_000, 1 << 20, 4096, 4089, 0]:
        idx += 1
        s.ops.append(
            {"op": "save", "hard_state": (2, 1, idx - 1), "entries": [(2, idx, 0, b"\x07" * size)]}
        )
        s.ops.append({"op": "save", "hard_state": (2, 1, idx), "entries": []})
    s.ops.append({"op": "save_snapshot", "index": 3, "term": 2})
    s.ops.append({"op": "reopen"})
    s.ops.append({"op": "save", "hard_state": (3, 1, idx), "entries": [(3, idx + 1, 1, b"cc")]})
    s.run_raftwal(tmp_path / "ours")
    assert ref.script(tmp_path / "theirs", s.for_etcd())["ok"]
    assert_same_files(tmp_path / "ours", tmp_path / "theirs")


# --- etcd reads what raftwal writes ----------------------------------------------


def ref_entries(entries: list[Entry]) -> list[tuple[int, int, int, bytes | None]]:
    return [(e.term, e.index, int(e.type), e.data if e.HasField("data") else None) for e in entries]


def test_etcd_reads_raftwal(ref: EtcdRef, tmp_path: Path) -> None:
    d = tmp_path / "wal"
    cc = raftwal.ConfChange(id=1, type=raftwal.ConfChangeType.ConfChangeAddNode, node_id=2)
    written: list[Entry] = []
    with WAL.create(d, raftwal.MemberMetadata(7, 9).SerializeToString(), segment_size=8192) as w:
        w.save(HardState(1, 1, 0), [])  # HardState-only save
        for i in range(1, 200):
            if i == 5:
                e = Entry(
                    term=1, index=i, type=raftwal.EntryConfChange, data=cc.SerializeToString()
                )
            elif i % 50 == 0:
                e = Entry(term=1, index=i, data=os.urandom(300_000))  # large
            elif i % 7 == 0:
                e = Entry(term=1, index=i, data=b"")  # zero-length data
            elif i % 11 == 0:
                e = Entry(term=1, index=i)  # no data field
            else:
                e = Entry(term=1, index=i, data=f"value-{i}".encode())
            written.append(e)
            w.save(HardState(1, 1, i - 1), [e])
            if i % 40 == 0:
                w.save_snapshot(WalSnapshot(index=i - 1, term=1))
    assert len([p for p in d.iterdir() if p.suffix == ".wal"]) > 3
    got = ref.readall(d)
    assert got["error"] is None
    assert got["metadata"] == raftwal.MemberMetadata(7, 9).SerializeToString()
    assert tuple(got["hard_state"]) == (1, 1, 198)
    assert got["entries"] == ref_entries(written)
    # at a snapshot in the middle, and in write mode
    mid = ref.readall(d, index=119, term=1, write=True)
    assert mid["error"] is None
    assert mid["entries"] == ref_entries(written[119:])
    assert ref.verify(d)["error"] is None
    snaps = ref.valid_snapshots(d)
    assert snaps["error"] is None
    assert [list(s) for s in snaps["snapshots"]] == [[0, 0], [39, 1], [79, 1], [119, 1], [159, 1]]


def test_etcd_appends_to_raftwal(ref: EtcdRef, tmp_path: Path) -> None:
    """etcd opens a raftwal log for writing, appends, and raftwal reads it back."""
    d = tmp_path / "wal"
    with WAL.create(d, b"m", segment_size=4096) as w:
        for i in range(1, 60):
            w.save(HardState(1, 1, i), [Entry(term=1, index=i, data=bytes([i]) * 100)])
    out = ref.script(
        d,
        [
            {"op": "open", "index": 0, "term": 0, "segment_size": 4096},
            {"op": "save", "hard_state": (2, 1, 60), "entries": [(2, 60, 0, b"from etcd")]},
            {"op": "close"},
        ],
    )
    assert out["ok"], out
    with WAL.open_for_read(d) as w:
        md, hs, entries = w.read_all()
    assert md == b"m"
    assert hs == HardState(2, 1, 60)
    assert [e.index for e in entries] == list(range(1, 61))
    assert entries[-1].data == b"from etcd"


# --- raftwal reads what etcd writes ----------------------------------------------


def test_raftwal_reads_etcd(ref: EtcdRef, tmp_path: Path) -> None:
    d = tmp_path / "wal"
    cc = raftwal.ConfChangeV2(
        transition=2, changes=[raftwal.ConfChangeSingle(type=0, node_id=2)]
    ).SerializeToString()
    ops: list[dict[str, Any]] = [{"op": "create", "metadata": b"", "segment_size": 2048}]
    ops.append({"op": "save", "hard_state": (1, 0, 0), "entries": []})
    expect: list[tuple[int, int, int, bytes | None]] = []
    for i in range(1, 120):
        data: bytes | None
        etype = 0
        if i == 3:
            etype, data = 2, cc
        elif i % 9 == 0:
            data = None
        elif i % 10 == 0:
            data = b""
        elif i % 33 == 0:
            data = bytes(range(256)) * 40
        else:
            data = f"etcd-{i}".encode()
        expect.append((1, i, etype, data))
        ops.append({"op": "save", "hard_state": (1, 1, i), "entries": [(1, i, etype, data)]})
        if i % 30 == 0:
            ops.append({"op": "save_snapshot", "index": i, "term": 1})
    # an overwrite of the tail, as a new leader does
    ops.append({"op": "save", "hard_state": (2, 2, 110), "entries": [(2, 115, 0, b"new")]})
    expect = [*expect[:114], (2, 115, 0, b"new")]
    ops.append({"op": "close"})
    assert ref.script(d, ops)["ok"]
    assert len([p for p in d.iterdir() if p.suffix == ".wal"]) > 3
    with WAL.open(d) as w:
        md, hs, entries = w.read_all()
    assert md == b""
    assert hs == HardState(2, 2, 110)
    assert ref_entries(entries) == expect
    assert raftwal.verify(d) == HardState(2, 2, 110)
    assert [(s.index, s.term) for s in raftwal.valid_snapshot_entries(d)] == [
        (0, 0),
        (30, 1),
        (60, 1),
        (90, 1),
    ]
    with WAL.open_for_read(d, WalSnapshot(index=60, term=1)) as w:
        _, _, tail = w.read_all()
    assert ref_entries(tail) == expect[60:]


def test_raftwal_reads_etcd_bulk(ref: EtcdRef, tmp_path: Path) -> None:
    d = tmp_path / "wal"
    out = ref.write_fixture(d, entries=3000, size=100, batch=7, segment_size=64 * 1024)
    assert out["error"] is None
    with WAL.open_for_read(d) as w:
        _, hs, entries = w.read_all()
    want = fixture_entries(3000, 100)
    got = [(e.term, e.index, int(e.type), e.data if e.HasField("data") else None) for e in entries]
    assert got == list(want)
    assert hs.commit == 3000


# --- messages and .snap files, byte for byte against etcd's marshalers -----------------

u64 = st.integers(min_value=0, max_value=2**64 - 1)
small = st.integers(min_value=0, max_value=300)
opt_bytes = st.one_of(st.none(), st.just(b""), st.binary(max_size=40))
ids = st.lists(u64, max_size=4)

conf_states = st.builds(
    raftwal.ConfState,
    voters=ids,
    learners=ids,
    voters_outgoing=ids,
    learners_next=ids,
    auto_leave=st.booleans(),
)


def cs_json(cs: raftwal.ConfState) -> dict[str, Any]:
    return {
        "voters": cs.voters,
        "learners": cs.learners,
        "voters_outgoing": cs.voters_outgoing,
        "learners_next": cs.learners_next,
        "auto_leave": cs.auto_leave,
    }


@st.composite
def messages(draw: st.DrawFn) -> tuple[Any, dict[str, Any]]:
    kind = draw(
        st.sampled_from(
            [
                "entry",
                "hard_state",
                "conf_state",
                "snapshot_metadata",
                "snapshot",
                "wal_snapshot",
                "conf_change",
                "conf_change_v2",
            ]
        )
    )
    if kind == "entry":
        e = raftwal.Entry(
            term=draw(u64), index=draw(u64), type=draw(st.integers(0, 2)), data=draw(opt_bytes)
        )
        edata = e.data if e.HasField("data") else None
        return e, {"kind": kind, "term": e.term, "index": e.index, "type": e.type, "data": edata}
    if kind == "hard_state":
        h = HardState(draw(u64), draw(u64), draw(u64))
        return h, {"kind": kind, "term": h.term, "vote": h.vote, "commit": h.commit}
    if kind == "conf_state":
        c = draw(conf_states)
        return c, {"kind": kind, **cs_json(c)}
    if kind in ("snapshot_metadata", "snapshot"):
        md = raftwal.SnapshotMetadata(conf_state=draw(conf_states), index=draw(u64), term=draw(u64))
        mdj = {"conf_state": cs_json(md.conf_state), "index": md.index, "term": md.term}
        if kind == "snapshot_metadata":
            return md, {"kind": kind, **mdj}
        s = raftwal.Snapshot(data=draw(opt_bytes), metadata=md)
        sdata = s.data if s.HasField("data") else None
        return s, {"kind": kind, "data": sdata, "metadata": mdj}
    if kind == "wal_snapshot":
        w = WalSnapshot(index=draw(u64), term=draw(u64))
        return w, {"kind": kind, "index": w.index, "term": w.term}
    if kind == "conf_change":
        cc = raftwal.ConfChange(
            id=draw(u64), type=draw(st.integers(0, 3)), node_id=draw(u64), context=draw(opt_bytes)
        )
        return cc, {
            "kind": kind,
            "id": cc.id,
            "type": cc.type,
            "node_id": cc.node_id,
            "context": cc.context,
        }
    changes = draw(st.lists(st.tuples(st.integers(0, 3), u64), max_size=3))
    v2 = raftwal.ConfChangeV2(
        transition=draw(st.integers(0, 2)),
        changes=[raftwal.ConfChangeSingle(type=t, node_id=n) for t, n in changes],
        context=draw(opt_bytes),
    )
    return v2, {
        "kind": kind,
        "transition": v2.transition,
        "changes": [{"type": t, "node_id": n} for t, n in changes],
        "context": v2.context,
    }


@settings(max_examples=20)
@given(batch=st.lists(messages(), min_size=1, max_size=40))
def test_message_bytes_equal_etcds(ref: EtcdRef, batch: list[tuple[Any, dict[str, Any]]]) -> None:
    theirs = ref.marshal([j for _, j in batch])
    for (msg, j), want in zip(batch, theirs, strict=True):
        assert msg.SerializeToString() == want, j
        back = type(msg).FromString(want)
        assert back == msg


@settings(max_examples=25)
@given(
    data=st.one_of(st.none(), st.binary(min_size=1, max_size=3000)),
    index=st.integers(1, 2**64 - 1),
    term=u64,
    cs=conf_states,
)
def test_snap_files_equal_etcds(
    ref: EtcdRef,
    tmp_path_factory: pytest.TempPathFactory,
    data: bytes | None,
    index: int,
    term: int,
    cs: raftwal.ConfState,
) -> None:
    base = tmp_path_factory.mktemp("snap")
    ours, theirs = base / "ours", base / "theirs"
    ours.mkdir()
    theirs.mkdir()
    snap = raftwal.Snapshot(
        data=data, metadata=raftwal.SnapshotMetadata(conf_state=cs, index=index, term=term)
    )
    raftwal.Snapshotter(ours).save_snap(snap)
    assert ref.snap_save(theirs, data, index, term, cs_json(cs))["error"] is None
    assert dir_contents(ours) == dir_contents(theirs)
    # and each side loads the other's file
    loaded = ref.snap_load(ours)
    assert loaded["error"] is None and loaded["snapshot"]["index"] == index
    assert raftwal.Snapshotter(theirs).load() == snap

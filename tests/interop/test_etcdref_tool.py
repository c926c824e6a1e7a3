"""Smoke tests of tools/etcdref (etcd v3.4's real code) against known
vectors (the bytes etcd 3.4 writes for its own test cases), so that later
interop tests can trust it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from etcdref import (
    SEGMENT_SIZE,
    EtcdRefError,
    RefEntry,
    fixture_entries,
    fixture_entry_data,
    require_etcdref,
)

pytestmark = pytest.mark.interop

FIRST = "0000000000000000-0000000000000000.wal"


def _crc32c(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def test_crc32c_helper() -> None:
    assert _crc32c(b"123456789") == 0xE3069283
    assert _crc32c(b"somedata") == 0x741F6A05


# 15.1 ---------------------------------------------------------------------------

CREATE_SOMEDATA = bytes.fromhex(
    "0400000000000084 0804100000000000"
    "1200000000000086 08011085d4fda007"
    "1a08736f6d656461 7461000000000000"
    "0e00000000000082 08051080db81c101"
    "1a04080010000000"
)


def test_create_header(tmp_path: Path) -> None:
    ref = require_etcdref()
    d = tmp_path / "wal"
    out = ref.script(d, [{"op": "create", "metadata": b"somedata"}, {"op": "close"}])
    assert out == {"ok": True, "error": None, "results": [None, None]}
    assert sorted(p.name for p in d.iterdir()) == [FIRST]
    raw = (d / FIRST).read_bytes()
    assert len(raw) == SEGMENT_SIZE
    assert raw[:72] == CREATE_SOMEDATA
    assert raw[72:].count(0) == len(raw) - 72
    assert not (tmp_path / "wal.tmp").exists()

    r = ref.readall(d)
    assert r["error"] is None
    assert r["metadata"] == b"somedata"
    assert r["hard_state"] == (0, 0, 0)
    assert r["entries"] == []
    assert ref.verify(d) == {"error": None}
    assert ref.valid_snapshots(d) == {"snapshots": [(0, 0)], "error": None}


def test_create_nil_metadata_omits_data_field(tmp_path: Path) -> None:
    ref = require_etcdref()
    d = tmp_path / "wal"
    assert ref.script(d, [{"op": "create", "metadata": None}, {"op": "close"}])["ok"]
    raw = (d / FIRST).read_bytes()
    # metadata record {type 1, crc 0}: 4 data bytes, padded to 8
    assert raw[16:32] == bytes.fromhex("0400000000000084 0801100000000000")
    assert ref.readall(d)["metadata"] is None


def test_create_on_existing_wal_fails(tmp_path: Path) -> None:
    ref = require_etcdref()
    d = tmp_path / "wal"
    assert ref.script(d, [{"op": "create"}, {"op": "close"}])["ok"]
    out = ref.script(d, [{"op": "create"}])
    assert out["ok"] is False and out["op_index"] == 0
    assert out["error"] == "file already exists"


# 15.2 / 15.6 --------------------------------------------------------------------


def test_marshal_vectors() -> None:
    ref = require_etcdref()
    items: list[tuple[dict[str, object], str]] = [
        ({"kind": "entry"}, "080010001800"),
        ({"kind": "entry", "data": b""}, "0800100018002200"),
        ({"kind": "entry", "term": 1, "index": 1, "data": b"x"}, "080010011801220178"),
        ({"kind": "hard_state", "term": 1, "vote": 2, "commit": 3}, "080110021803"),
        ({"kind": "conf_state"}, "2800"),
        ({"kind": "conf_state", "voters": [1, 2, 3]}, "08010802080328 00"),
        ({"kind": "snapshot_metadata"}, "0a02280010001800"),
        ({"kind": "snapshot"}, "12080a02280010001800"),
        ({"kind": "wal_snapshot"}, "08001000"),
        ({"kind": "wal_snapshot", "index": 300, "term": 7}, "08ac021007"),
        ({"kind": "record", "type": 1}, "08011000"),
        ({"kind": "record", "type": 1, "data": b""}, "080110001a00"),
        (
            {
                "kind": "record",
                "type": 1,
                "crc": _crc32c(bytes.fromhex("08effd02")),
                "data": bytes.fromhex("08effd02"),
            },
            "0801 1099b5e4d003 1a0408effd02",
        ),
        (
            {"kind": "conf_change_v2", "transition": 2, "changes": [{"type": 0, "node_id": 2}]},
            "0802120408001002",
        ),
        ({"kind": "conf_change"}, "080010001800"),
        ({"kind": "entry", "index": 2**64 - 1}, "0800 1000 18ffffffffffffffffff01"),
    ]
    got = ref.marshal([i for i, _ in items])
    assert got == [bytes.fromhex(h) for _, h in items]


def test_marshal_snapshot_file_wrapper() -> None:
    ref = require_etcdref()
    inner = ref.marshal(
        [
            {
                "kind": "snapshot",
                "data": b"some snapshot",
                "metadata": {"conf_state": {"voters": [1, 2, 3]}, "index": 1, "term": 1},
            }
        ]
    )[0]
    assert _crc32c(inner) == 0xA92AB02D
    (wrapped,) = ref.marshal([{"kind": "snap_file", "crc": _crc32c(inner), "data": inner}])
    assert wrapped == SNAP_FILE


def test_usage_errors_raise() -> None:
    ref = require_etcdref()
    with pytest.raises(EtcdRefError):
        ref.run("no-such-command")
    with pytest.raises(EtcdRefError):
        ref.marshal([{"kind": "no-such-kind"}])
    with pytest.raises(EtcdRefError):
        ref.run("readall")  # --dir missing


# 15.3 ---------------------------------------------------------------------------

SEG0 = bytes.fromhex(
    "0400000000000084 08041000 00000000"
    "0c00000000000084 080110bad9f5bc011a026d64 00000000"
    "0e00000000000082 080510b38d92a10e1a0408001000 0000"
    "1300000000000085 08021092ddf0d90b1a09080010011801220178 0000000000"
    "0f00000000000081 080210d58be8521a06080010011802 00"
    "1000000000000000 080310c494b0c7031a06080110011801"
    "1000000000000000 080210d3acb9ce0c1a06080010011803"
    "1000000000000000 080310c3b89cc00c1a06080110011802"
)

# (crc, type, data) of the records of the second segment, section 15.3
SEG1_RECORDS = [
    (0xC8071C43, 4, None),
    (0x8170C29F, 1, b"md"),
    (0xA8E97628, 3, bytes.fromhex("080110011802")),
    (0x9F1CCA3F, 2, bytes.fromhex("080010011804")),
    (0x6EBEF3C0, 3, bytes.fromhex("080110011803")),
]

TWO_SEGMENT_PROGRAM: list[dict[str, Any]] = [
    {"op": "create", "metadata": b"md"},
    {"op": "save", "hard_state": (1, 1, 1), "entries": [(1, 1, 0, b"x"), (1, 2)]},
    {"op": "set_segment_size", "segment_size": 1},
    {"op": "save", "hard_state": (1, 1, 2), "entries": [(1, 3)]},
    {"op": "set_segment_size", "segment_size": SEGMENT_SIZE},
    {"op": "save", "hard_state": (1, 1, 3), "entries": [(1, 4)]},
    {"op": "close"},
]


def _frame(crc: int, rtype: int, data: bytes | None) -> bytes:
    ref = require_etcdref()
    item: dict[str, object] = {"kind": "record", "type": rtype, "crc": crc, "data": data}
    (rec,) = ref.marshal([item])
    pad = -len(rec) % 8
    length = len(rec) | ((0x80 | pad) << 56 if pad else 0)
    return length.to_bytes(8, "little") + rec + bytes(pad)


def test_two_segments(tmp_path: Path) -> None:
    ref = require_etcdref()
    d = tmp_path / "wal"
    out = ref.script(d, TWO_SEGMENT_PROGRAM)
    assert out["ok"], out
    second = "0000000000000001-0000000000000004.wal"
    assert sorted(p.name for p in d.iterdir()) == [FIRST, second]
    assert (d / FIRST).read_bytes() == SEG0

    raw1 = (d / second).read_bytes()
    assert len(raw1) == SEGMENT_SIZE
    expected1 = b"".join(_frame(*r) for r in SEG1_RECORDS)
    assert len(expected1) == 112
    assert raw1[:112] == expected1
    assert raw1[112:].count(0) == len(raw1) - 112

    # every record's crc is the CRC-32C of all record data so far
    running = SEG1_RECORDS[0][0]
    for crc, rtype, data in SEG1_RECORDS[1:]:
        running = _crc32c(data or b"", running)
        assert running == crc, (rtype, hex(running))

    want = [RefEntry(1, 1, 0, b"x"), RefEntry(1, 2), RefEntry(1, 3), RefEntry(1, 4)]
    for write in (False, True):
        r = ref.readall(d, write=write)
        assert r["error"] is None
        assert r["metadata"] == b"md"
        assert r["hard_state"] == (1, 1, 3)
        assert r["entries"] == want
        assert r["close_error"] is None
    assert ref.verify(d) == {"error": None}
    assert ref.valid_snapshots(d) == {"snapshots": [(0, 0)], "error": None}
    assert ref.repair(d) == {"ok": True, "error": None}


def test_save_with_cut_names_next_segment(tmp_path: Path) -> None:
    """etcd's TestSaveWithCut (section 5.4): limit 2048, one 500-byte entry per
    Save (indexes 0..4); the cut comes after the 5th Save, not the 4th."""
    ref = require_etcdref()
    d = tmp_path / "wal"
    big = b"Hello World!!".ljust(500, b"\0")
    ops: list[dict[str, object]] = [
        {"op": "create", "metadata": b"metadata"},
        {"op": "save", "hard_state": (1, 0, 0)},
        {"op": "set_segment_size", "segment_size": 2048},
    ]
    for i in range(5):
        ops.append({"op": "save", "hard_state": (1, 0, 0), "entries": [(1, i, 0, big)]})
    ops.append({"op": "close"})
    assert ref.script(d, ops)["ok"]
    names = sorted(p.name for p in d.iterdir())
    assert names == [FIRST, "0000000000000001-0000000000000005.wal"]
    r = ref.readall(d, write=True)
    assert r["error"] is None
    assert r["hard_state"] == (1, 0, 0)
    # the entry with index 0 is at the snapshot index and is skipped
    assert r["entries"] == [RefEntry(1, i, 0, big) for i in range(1, 5)]


def test_nil_and_empty_data_round_trip(tmp_path: Path) -> None:
    ref = require_etcdref()
    d = tmp_path / "wal"
    ents = [(1, 1, 0, None), (1, 2, 0, b""), (1, 3, 1, b"\x00\xff"), (2**53 + 1, 4, 2, b"z")]
    assert ref.script(d, [{"op": "create"}, {"op": "save", "entries": ents}, {"op": "close"}])["ok"]
    r = ref.readall(d)
    assert r["entries"] == [RefEntry(*e) for e in ents]
    assert r["entries"][0].data is None
    assert r["entries"][1].data == b""


def test_open_masks_snapshot_not_found(tmp_path: Path) -> None:
    """etcd 3.4 quirk: only OpenForRead reports ErrSnapshotNotFound (Open masks it)."""
    ref = require_etcdref()
    d = tmp_path / "wal"
    assert ref.script(d, TWO_SEGMENT_PROGRAM)["ok"]
    r = ref.readall(d, index=2, term=1)
    assert r["error"] == "wal: snapshot not found"
    assert [e.index for e in r["entries"]] == [3, 4]
    r = ref.readall(d, index=2, term=1, write=True)
    assert r["error"] is None
    assert [e.index for e in r["entries"]] == [3, 4]
    assert ref.verify(d, index=2, term=1) == {"error": "wal: snapshot not found"}


def test_script_open_snapshot_and_locks(tmp_path: Path) -> None:
    ref = require_etcdref()
    d = tmp_path / "wal"
    out = ref.script(
        d,
        [
            {"op": "create", "metadata": b"md"},
            {"op": "save", "hard_state": (1, 1, 2), "entries": [(1, 1), (1, 2)]},
            {"op": "save_snapshot", "index": 2, "term": 1},
            {"op": "close"},
            {"op": "open", "index": 2, "term": 1},
            {"op": "save", "hard_state": (1, 1, 3), "entries": [(1, 3)]},
            {"op": "read", "index": 0, "term": 0},
            {"op": "release_lock_to", "index": 3},
            {"op": "open"},
        ],
    )
    assert out["ok"] is False
    assert out["op_index"] == 8
    assert out["error"] == "fileutil: file already locked"
    opened = out["results"][4]
    assert opened["error"] is None
    assert opened["metadata"] == b"md"
    assert opened["hard_state"] == (1, 1, 2)
    assert opened["entries"] == []
    read = out["results"][6]
    assert read["error"] is None
    assert read["entries"] == [RefEntry(1, 1), RefEntry(1, 2), RefEntry(1, 3)]
    assert ref.valid_snapshots(d)["snapshots"] == [(0, 0), (2, 1)]
    assert ref.readall(d, index=2, term=5)["error"] == "wal: snapshot mismatch"


def test_readall_errors(tmp_path: Path) -> None:
    ref = require_etcdref()
    r = ref.readall(tmp_path / "missing")
    assert r["error"] is not None and r["entries"] == []
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ref.readall(empty)["error"] == "wal: file not found"
    assert ref.verify(empty) == {"error": "wal: file not found"}


def test_repair_torn_tail(tmp_path: Path) -> None:
    ref = require_etcdref()
    d = tmp_path / "wal"
    assert ref.script(d, TWO_SEGMENT_PROGRAM)["ok"]
    last = d / "0000000000000001-0000000000000004.wal"
    raw = last.read_bytes()[:100]  # the last record (88..112) is cut short
    last.write_bytes(raw)
    assert ref.readall(d, write=True)["error"] == "unexpected EOF"
    r = ref.readall(d)  # read-only mode tolerates the torn tail
    assert r["error"] is None
    assert r["hard_state"] == (1, 1, 2)
    assert ref.verify(d) == {"error": None}
    assert ref.repair(d) == {"ok": True, "error": None}
    assert last.stat().st_size == 88
    assert (d / (last.name + ".broken")).read_bytes() == raw
    r = ref.readall(d, write=True)
    assert r["error"] is None
    assert r["hard_state"] == (1, 1, 2)
    assert [e.index for e in r["entries"]] == [1, 2, 3, 4]


def test_protobuf_eof_counts_as_torn(tmp_path: Path) -> None:
    """Quirk: a corrupted record whose protobuf parse runs past its end makes
    gogoproto return io.ErrUnexpectedEOF itself, which etcd cannot tell from a
    torn write, whatever the zero-chunk check (section 2.3) says."""
    ref = require_etcdref()
    d = tmp_path / "wal"
    assert ref.script(d, TWO_SEGMENT_PROGRAM)["ok"]
    last = d / "0000000000000001-0000000000000004.wal"
    raw = bytearray(last.read_bytes()[:112])
    assert raw[96:101] == bytes.fromhex("080310c0e7")  # type 3, crc varint...
    raw[100] ^= 0xFF  # ...now ends early; next "tag" starts a group that never ends
    last.write_bytes(bytes(raw))
    assert ref.readall(d, write=True)["error"] == "unexpected EOF"
    assert ref.readall(d)["error"] is None
    assert ref.repair(d)["ok"] is True
    assert last.stat().st_size == 88


def test_protobuf_eof_in_earlier_segment_hides_later_segments(tmp_path: Path) -> None:
    """The same quirk in a non-last segment: read-only ReadAll and Verify stop
    there *without error*, silently dropping every later segment; write-mode
    Open fails with "unexpected EOF" and Repair (last segment only) cannot
    help."""
    ref = require_etcdref()
    d = tmp_path / "wal"
    assert ref.script(d, TWO_SEGMENT_PROGRAM)["ok"]
    first = d / FIRST
    raw = bytearray(first.read_bytes())
    # last record of segment 0 (HardState at 168): end the crc varint early
    # and turn the next byte into field 4/bytes whose length overruns the record
    assert raw[176:182] == bytes.fromhex("080310c3b89c")
    raw[180], raw[181] = 0x00, 0x22
    first.write_bytes(bytes(raw))
    r = ref.readall(d)
    assert r["error"] is None
    assert r["hard_state"] == (1, 1, 1)
    assert [e.index for e in r["entries"]] == [1, 2, 3]
    assert ref.verify(d) == {"error": None}
    assert ref.readall(d, write=True)["error"] == "unexpected EOF"
    assert ref.repair(d) == {"ok": True, "error": None}
    assert ref.readall(d, write=True)["error"] == "unexpected EOF"


# 15.5 ---------------------------------------------------------------------------

SNAP_FILE = bytes.fromhex(
    "08ade0aac90a 121f 0a0d736f6d6520736e617073686f74 120e 0a080801080208032800 1001 1801"
)


def test_snap_save_and_load(tmp_path: Path) -> None:
    ref = require_etcdref()
    d = tmp_path / "snap"
    d.mkdir()
    out = ref.snap_save(d, b"some snapshot", 1, 1, {"voters": [1, 2, 3]})
    assert out == {"error": None}
    f = d / "0000000000000001-0000000000000001.snap"
    assert sorted(p.name for p in d.iterdir()) == [f.name]
    assert f.read_bytes() == SNAP_FILE
    assert len(SNAP_FILE) == 39

    want = {
        "data": b"some snapshot",
        "index": 1,
        "term": 1,
        "conf_state": {
            "voters": [1, 2, 3],
            "learners": [],
            "voters_outgoing": [],
            "learners_next": [],
            "auto_leave": False,
        },
    }
    assert ref.snap_load(d) == {"snapshot": want, "error": None}
    assert ref.snap_load(d, wal_snaps=[(1, 1)]) == {"snapshot": want, "error": None}
    assert ref.snap_load(d, wal_snaps=[(1, 2)]) == {
        "snapshot": None,
        "error": "snap: no available snapshot",
    }

    # index 0 is silently not saved
    assert ref.snap_save(d, b"ignored", 0, 9) == {"error": None}
    assert sorted(p.name for p in d.iterdir()) == [f.name]

    # newest = greatest (term, index) name; a corrupt newer file is renamed
    assert ref.snap_save(d, b"newer", 5, 2)["error"] is None
    newer = d / "0000000000000002-0000000000000005.snap"
    assert ref.snap_load(d)["snapshot"]["index"] == 5
    raw = bytearray(newer.read_bytes())
    raw[-1] ^= 1
    newer.write_bytes(bytes(raw))
    assert ref.snap_load(d)["snapshot"] == want
    assert (d / (newer.name + ".broken")).exists()


# bulk writers -------------------------------------------------------------------


def test_write_fixture_and_bench(tmp_path: Path) -> None:
    ref = require_etcdref()
    d = tmp_path / "wal"
    out = ref.write_fixture(d, entries=50, size=100, batch=7, segment_size=2048)
    assert out["error"] is None
    assert out["saves"] == 8
    assert out["last_index"] == 50
    assert len([n for n in out["files"] if n.endswith(".wal")]) > 2
    assert not [n for n in out["files"] if n.endswith(".tmp")]
    r = ref.readall(d)
    assert r["error"] is None
    assert r["entries"] == fixture_entries(50, 100)
    assert r["hard_state"] == (1, 1, 50)
    assert fixture_entry_data(255, 3) == b"\xff\x00\x01"

    b = ref.bench_read(d)
    assert b["error"] is None and b["entries"] == 50 and b["last_index"] == 50
    assert b["seconds"] >= 0

    s = ref.bench_save(tmp_path / "bench", entries=20, size=10, batch=5)
    assert s["error"] is None and s["entries"] == 20 and s["saves"] == 4
    assert s["seconds"] > 0

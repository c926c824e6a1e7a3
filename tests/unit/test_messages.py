"""Message types: etcd 3.4's bytes for known values, presence rules, round
trips. (Byte equality against etcd's own marshalers over generated values
is in test_interop.py.)"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import raftwal
from raftwal import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeV2,
    ConfState,
    Entry,
    EntryConfChange,
    EntryConfChangeV2,
    EntryNormal,
    HardState,
    MemberMetadata,
    Snapshot,
    SnapshotMetadata,
    WalSnapshot,
)

VECTORS = [
    (Entry(), "080010001800"),
    (Entry(data=b""), "0800100018002200"),
    (Entry(term=1, index=2, type=2, data=b"ab"), "08021001180222026162"),
    (HardState(1, 2, 3), "080110021803"),
    (HardState(), "080010001800"),
    (ConfState(), "2800"),
    (
        ConfState(
            voters=[1, 2], learners=[3], voters_outgoing=[4], learners_next=[5], auto_leave=True
        ),
        "080108021003180420052801",
    ),
    (SnapshotMetadata(), "0a02280010001800"),
    (Snapshot(), "12080a02280010001800"),
    (WalSnapshot(), "08001000"),
    (WalSnapshot(300, 7), "08ac021007"),
    (MemberMetadata(), "08001000"),
    (ConfChange(id=1, type=3, node_id=5, context=b"c"), "080110031805220163"),
    (ConfChange(), "080010001800"),
    (ConfChangeV2(transition=2, changes=[ConfChangeSingle(type=0, node_id=2)]), "0802120408001002"),
    (ConfChangeV2(), "0800"),
]


@pytest.mark.parametrize(
    ("msg", "hexbytes"), VECTORS, ids=[f"{type(m).__name__}-{h}" for m, h in VECTORS]
)
def test_etcd_vectors(msg: object, hexbytes: str) -> None:
    assert msg.SerializeToString().hex() == hexbytes  # type: ignore[attr-defined]
    assert type(msg).FromString(bytes.fromhex(hexbytes)) == msg  # type: ignore[attr-defined]


def test_testsnap_vector() -> None:
    s = Snapshot(
        data=b"some snapshot", metadata=SnapshotMetadata(ConfState(voters=[1, 2, 3]), 1, 1)
    )
    assert s.SerializeToString().hex() == (
        "0a0d736f6d6520736e617073686f74120e0a08080108020803280010011801"
    )


def test_presence_of_bytes_fields() -> None:
    absent = [Entry(), Entry(data=None), Entry.FromString(bytes.fromhex("080010001800"))]
    assert all(e.data == b"" and not e.HasField("data") for e in absent)
    empty = Entry.FromString(bytes.fromhex("0800100018002200"))
    assert empty.data == b"" and empty.HasField("data")
    assert Entry() != Entry(data=b"")
    assert Snapshot().data == b"" and not Snapshot().HasField("data")
    assert Snapshot(data=b"").HasField("data")
    assert Snapshot(data=b"").SerializeToString() != Snapshot().SerializeToString()


def test_entry_type_compares_with_ints() -> None:
    assert (EntryNormal, EntryConfChange, EntryConfChangeV2) == (0, 1, 2)
    e = Entry(type=EntryConfChange)
    assert e.type == 1 and e.type == EntryConfChange
    e.type = 2
    assert e.type == EntryConfChangeV2
    assert type(e.type) is raftwal.EntryType and e.type is EntryConfChangeV2
    assert type(Entry.FromString(bytes.fromhex("080110001800")).type) is raftwal.EntryType


@pytest.mark.parametrize("bad", [3, -1, 2**31, 2**64])
def test_entry_type_out_of_range_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="not a valid EntryType"):
        Entry(type=bad)
    e = Entry()
    with pytest.raises(ValueError, match="not a valid EntryType"):
        e.type = bad
    assert e.type is EntryNormal


@pytest.mark.parametrize("bad", ["1", 1.0, True])
def test_entry_type_of_a_wrong_type_is_refused(bad: object) -> None:
    with pytest.raises(TypeError, match="EntryType or an int"):
        Entry(type=bad)  # type: ignore[arg-type]


def test_data_of_a_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError, match=r"Entry\.data must be bytes"):
        Entry(data="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Snapshot\.data must be bytes"):
        Snapshot(data="x")  # type: ignore[arg-type]


def test_presence_is_kept_by_copies_and_clear_field() -> None:
    for e in (Entry(term=1, index=2), Entry(term=1, index=2, data=b"")):
        for c in (copy.copy(e), copy.deepcopy(e), pickle.loads(pickle.dumps(e))):
            assert c == e and c.HasField("data") == e.HasField("data")
            assert c.SerializeToString() == e.SerializeToString()
    e = Entry(term=1, data=b"x")
    e.ClearField("data")
    assert e.data == b"" and not e.HasField("data") and e == Entry(term=1)
    e.data = b""
    assert e.HasField("data")
    s = Snapshot(data=b"x")
    s.ClearField("data")
    assert s == Snapshot() and s.SerializeToString() == Snapshot().SerializeToString()
    with pytest.raises(ValueError, match="no field"):
        Entry().HasField("nope")
    assert repr(Entry()) == "Entry(term=0, index=0, type=EntryNormal, data=None)"


def test_entry_is_a_value() -> None:
    e = Entry(term=3, index=4, data=bytearray(b"xy"))
    assert e.data == b"xy" and isinstance(e.data, bytes)
    assert pickle.loads(pickle.dumps(e)) == e
    c = copy.copy(e)
    assert c == e and c is not e
    c.term = 9
    assert c != e
    assert "term=3" in repr(e)
    with pytest.raises(TypeError):
        hash(e)
    with pytest.raises(AttributeError):
        e.other = 1  # type: ignore[attr-defined]


def test_decode_errors_are_corruption() -> None:
    with pytest.raises(raftwal.CorruptionError):
        Entry.FromString(b"\x22\x05ab")
    with pytest.raises(raftwal.CorruptionError):
        HardState.FromString(b"\xff")


@given(
    term=st.integers(0, 2**64 - 1),
    index=st.integers(0, 2**64 - 1),
    type=st.integers(0, 2),
    data=st.one_of(st.none(), st.binary(max_size=300)),
)
def test_entry_round_trip_and_size(term: int, index: int, type: int, data: bytes | None) -> None:
    e = Entry(term=term, index=index, type=type, data=data)
    raw = e.SerializeToString()
    assert e.ByteSize() == len(raw)
    assert Entry.FromString(raw) == e


@given(
    cs=st.builds(
        ConfState,
        voters=st.lists(st.integers(0, 2**64 - 1), max_size=5),
        learners=st.lists(st.integers(0, 2**64 - 1), max_size=5),
        auto_leave=st.booleans(),
    ),
    index=st.integers(0, 2**64 - 1),
    term=st.integers(0, 2**64 - 1),
    data=st.one_of(st.none(), st.binary(max_size=100)),
)
def test_snapshot_round_trip(cs: ConfState, index: int, term: int, data: bytes | None) -> None:
    s = Snapshot(data=data, metadata=SnapshotMetadata(cs, index, term))
    assert Snapshot.FromString(s.SerializeToString()) == s
    w = WalSnapshot(index, term, cs)
    assert WalSnapshot.FromString(w.SerializeToString()) == w


def test_shipped_descriptors_match_the_proto_files() -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (the dev extra) compiles proto/*.proto")
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run(
        [sys.executable, str(root / "tools" / "gen_descriptors.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr


def test_the_package_says_its_version_and_brings_aio() -> None:
    import importlib.metadata

    import raftwal

    assert raftwal.__version__ == importlib.metadata.version("raftwal")
    assert raftwal.__version__.count(".") >= 2
    assert raftwal.aio.afsync is not None

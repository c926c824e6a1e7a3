"""Recovery modes of raftwal.open and raftwal.salvage: strict, tolerate a
torn tail (etcd's behaviour, the default) and salvage, each with a report."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from walfile import frames, segments

import raftwal
from raftwal import Entry, HardState


def build(d: Path, n: int = 60) -> list[Entry]:
    """n entries or a few more: until the last segment holds entries too."""
    ents: list[Entry] = []
    with raftwal.open(d, segment_size=1024) as s:
        while len(ents) < n or not [f for f in frames(segments(d / "wal")[-1]) if f.type == 2]:
            i = len(ents) + 1
            e = Entry(term=1, index=i, data=b"%04d" % i * 10)
            s.save(HardState(1, 1, i), [e])
            ents.append(e)
    assert len(segments(d / "wal")) >= 4
    return ents


def tear_tail(d: Path) -> int:
    tail = segments(d / "wal")[-1]
    f = [x for x in frames(tail) if x.type == 2][-1]
    os.truncate(tail, f.end - 3)
    return f.offset


def flip_in_segment(d: Path, k: int) -> tuple[Path, int]:
    seg = segments(d / "wal")[k]
    f = [x for x in frames(seg) if x.type == 2][2]
    raw = bytearray(seg.read_bytes())
    raw[f.end - f.pad - 2] ^= 0x40
    seg.write_bytes(bytes(raw))
    return seg, f.offset


def snapshot_of(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((d / "wal").iterdir())}


def test_strict_refuses_a_torn_tail_and_changes_nothing(tmp_path: Path) -> None:
    d = tmp_path / "d"
    build(d)
    off = tear_tail(d)
    before = snapshot_of(d)
    with pytest.raises(raftwal.TornTailError) as ei:
        raftwal.open(d, recovery="strict", segment_size=1024)
    assert ei.value.path == str(segments(d / "wal")[-1])  # type: ignore[attr-defined]
    assert ei.value.offset == off  # type: ignore[attr-defined]
    assert snapshot_of(d) == before


def test_tolerate_tail_repairs_and_reports(tmp_path: Path) -> None:
    d = tmp_path / "d"
    ents = build(d)
    off = tear_tail(d)
    with raftwal.open(d, segment_size=1024) as s:
        r = s.recovery
        assert (r.mode, r.repaired) == ("tolerate-tail", True)
        assert r.damage == (str(segments(d / "wal")[-1]), off)
        assert s.entries(1, s.last_index() + 1) == ents[:-1]


def test_tolerate_tail_refuses_corruption_in_the_middle(tmp_path: Path) -> None:
    d = tmp_path / "d"
    build(d)
    seg, off = flip_in_segment(d, 1)
    before = snapshot_of(d)
    with pytest.raises(raftwal.CRCMismatchError, match=f"offset {off}") as ei:
        raftwal.open(d, segment_size=1024)
    assert ei.value.path == str(seg)  # type: ignore[attr-defined]
    assert snapshot_of(d) == before


def test_salvage_keeps_the_verified_prefix(tmp_path: Path) -> None:
    d = tmp_path / "d"
    ents = build(d)
    segs_before = [p.name for p in segments(d / "wal")]
    seg, off = flip_in_segment(d, 1)
    with raftwal.open(d, recovery="salvage", segment_size=1024) as s:
        r = s.recovery
        assert r.repaired and r.salvage is not None
        sv = r.salvage
        assert (sv.kind, sv.damaged_file, sv.damaged_offset) == ("corrupt", str(seg), off)
        assert sv.moved == segs_before[2:]
        assert sv.dropped_from_segment_index == int(segs_before[2].split("-")[1][:-4], 16)
        kept = s.entries(1, s.last_index() + 1)
        assert kept == ents[: len(kept)] and kept[-1].index == sv.last_kept_index
        assert len(kept) < len(ents)
        nxt = kept[-1].index + 1
        s.save(HardState(2, 1, nxt - 1), [Entry(term=2, index=nxt, data=b"after salvage")])
    names = {p.name for p in (d / "wal").iterdir()}
    assert f"{seg.name}.broken" in names and all(f"{n}.broken" in names for n in segs_before[2:])
    with raftwal.open(d, recovery="strict", segment_size=1024) as s:
        assert s.entries(nxt, nxt + 1)[0].data == b"after salvage"
    assert raftwal.verify(d / "wal").term == 2


def test_salvage_of_a_missing_segment(tmp_path: Path) -> None:
    d = tmp_path / "d"
    ents = build(d)
    segs = segments(d / "wal")
    segs[2].unlink()
    with pytest.raises(raftwal.Error):
        raftwal.open(d, segment_size=1024)
    with raftwal.open(d, recovery="salvage", segment_size=1024) as s:
        sv = s.recovery.salvage
        assert sv is not None and sv.moved == [p.name for p in segs[3:]]
        assert sv.damaged_file is None and "gap" in sv.detail
        kept = s.entries(1, s.last_index() + 1)
        assert kept == ents[: len(kept)]


def test_salvage_function_on_clean_wal_is_a_no_op(tmp_path: Path) -> None:
    d = tmp_path / "d"
    build(d)
    before = snapshot_of(d)
    rep = raftwal.salvage(d / "wal")
    assert not rep.changed and rep.last_kept_index >= 60
    assert snapshot_of(d) == before


def test_unknown_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        raftwal.open(tmp_path, recovery="yolo")

"""The WAL reader's integrity guarantee (DESIGN.md): a changed bit or byte
of a WAL gives a ``raftwal.Error`` on a strict open, or exactly the original
data; no open in any mode destroys a byte it did not report.

Damage is told apart from a torn final write the way tests/faults/test_power_loss.py
models one: whole 512-byte sectors, possibly written out of order, only in
the last segment. What such a write cannot leave (bytes in the sector of a
zero length word, a length over valid records, anything in an earlier
segment, a length at etcd's limit) is corruption; what it can leave is a
torn tail, which a strict open and the writer report and which repair cuts
keeping a ``.broken`` copy: never a silent end of the log.

Each finding has its own test below; the exhaustive campaign at the end
flips every bit, and inverts every byte, of the log region of a small
multi-segment WAL and checks the guarantee for each."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from walfile import FrameInfo, frames, segments, uvarint

import raftwal
from raftwal import WAL, Entry, HardState, WalSnapshot

SEG = 1024
CSEG = 512  # the campaign WAL's segment size
LIMIT = 10 * 1024 * 1024  # etcd 3.4's record limit


# --- helpers -------------------------------------------------------------------------------


def word(n: int, pad: int = 0) -> bytes:
    return struct.pack("<Q", n | ((0x80 | pad) << 56 if pad else 0))


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def files_of(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def wal_files(d: Path) -> dict[str, bytes]:
    return {n: b for n, b in files_of(d).items() if n.endswith(".wal")}


def read_write_mode(d: Path) -> tuple[bytes, HardState, list[Entry]]:
    with WAL.open(d, segment_size=SEG) as w:
        return w.read_all()


def build(d: Path, n: int = 40) -> list[Entry]:
    """A WAL of n entries of term 3 (one save each, a HardState each), in
    several segments of SEG bytes; the last segment holds entries too."""
    ents = []
    with WAL.create(d, b"meta", segment_size=SEG) as w:
        i = 0
        while i < n or frames(segments(d)[-1])[-1].end < 700:
            i += 1
            e = Entry(term=3, index=i, data=b"%04d" % i * 6)
            w.save(HardState(3, 1, max(0, i - 1)), [e])
            ents.append(e)
    assert len(segments(d)) >= 3
    assert len(entry_frames(segments(d)[-1])) >= 6
    return ents


def entry_frames(seg: Path) -> list[FrameInfo]:
    return [f for f in frames(seg) if f.type == 2]


def assert_refused_and_untouched(d: Path, exc: type[BaseException]) -> None:
    """Every open that may write refuses, and no byte of the WAL changes."""
    before = files_of(d)
    with pytest.raises(exc):
        read_write_mode(d)
    assert files_of(d) == before
    with pytest.raises(exc):
        raftwal.verify(d)
    assert files_of(d) == before


def node_dir(tmp_path: Path, wal: Path) -> Path:
    root = tmp_path / "node"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    shutil.copytree(wal, root / "wal")
    return root


# --- 1. a zero length word does not end the log silently ----------------------------------


def test_a_zero_length_word_mid_log_is_corruption(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    ents = build(d)
    tail = segments(d)[-1]
    f = entry_frames(tail)[1]
    patch(tail, f.offset, bytes(8))  # the rest of its sector holds its record
    assert_refused_and_untouched(d, raftwal.CorruptionError)
    root = node_dir(tmp_path, d)
    for mode in ("strict", "tolerate-tail"):
        with pytest.raises(raftwal.CorruptionError):
            raftwal.open(root, recovery=mode, segment_size=SEG)
    assert wal_files(root / "wal") == wal_files(d)
    with raftwal.open(root, recovery="salvage", segment_size=SEG) as s:
        assert s.recovery.salvage is not None
        assert s.recovery.salvage.damaged_offset == f.offset
        got = s.entries(s.first_index(), s.last_index() + 1)
        assert got == ents[: len(got)]
    assert (root / "wal" / (tail.name + ".broken")).read_bytes() == tail.read_bytes()


def test_a_single_bit_flip_to_a_zero_length_word(tmp_path: Path) -> None:
    """A 16-byte record has a one-bit length word: one flip makes it 0."""
    d = tmp_path / "wal"
    with WAL.create(d, b"", segment_size=1 << 16) as w:
        for i in range(1, 40):
            w.save(HardState(1, 1, i - 1), [Entry(term=1, index=i)])
    seg = segments(d)[0]
    small = [f for f in frames(seg) if f.type == 2 and f.length + f.pad == 16 and f.pad == 0]
    f = [x for x in small if x.offset % 512 < 400][5]
    patch(seg, f.offset, word(0))
    assert seg.read_bytes()[f.offset : f.offset + 8] == bytes(8)
    assert_refused_and_untouched(d, raftwal.CorruptionError)


def test_a_lost_sector_at_a_frame_of_the_last_segment_is_a_torn_tail(tmp_path: Path) -> None:
    """Zeros from a frame to the end of its sector, records after: a sector
    of an unsynced final write that was lost (pages written back out of
    order) looks the same. Never silent: the writer refuses, and repair
    keeps a copy."""
    d = tmp_path / "wal"
    ents = build(d)
    tail = segments(d)[-1]
    f = entry_frames(tail)[1]
    end = (f.offset // 512 + 1) * 512
    patch(tail, f.offset, bytes(end - f.offset))
    assert_refused_and_untouched(d, raftwal.TornTailError)
    root = node_dir(tmp_path, d)
    with pytest.raises(raftwal.TornTailError):
        raftwal.open(root, recovery="strict", segment_size=SEG)
    with raftwal.open(root, segment_size=SEG) as s:
        assert s.recovery.repaired
        assert s.recovery.damage == (str(root / "wal" / tail.name), f.offset)
        got = s.entries(s.first_index(), s.last_index() + 1)
        assert got == ents[: len(got)] and len(got) < len(ents)
    assert (root / "wal" / (tail.name + ".broken")).read_bytes() == tail.read_bytes()


def test_the_same_damage_in_an_earlier_segment_is_corruption(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    build(d)
    seg = segments(d)[1]
    f = entry_frames(seg)[1]
    end = (f.offset // 512 + 1) * 512
    patch(seg, f.offset, bytes(min(end, seg.stat().st_size) - f.offset))
    assert_refused_and_untouched(d, raftwal.CorruptionError)
    with pytest.raises(raftwal.CorruptionError) as ei:
        read_write_mode(d)
    assert not isinstance(ei.value, raftwal.TornTailError)


@pytest.mark.parametrize("where", ["last", "earlier"])
def test_the_writer_zeroes_no_bytes_after_the_end_of_the_log(tmp_path: Path, where: str) -> None:
    d = tmp_path / "wal"
    ents = build(d)
    seg = segments(d)[-1 if where == "last" else 0]
    end = frames(seg)[-1].end
    if where == "last":
        patch(seg, end + 700, b"\x01")
        exc: type[raftwal.Error] = raftwal.TornTailError
    else:
        with open(seg, "ab") as fh:  # an earlier segment ends at its end of log
            fh.write(bytes(100) + b"\x01")
        exc = raftwal.CorruptionError
    assert_refused_and_untouched(d, exc)
    with WAL.open_for_read(d) as r:
        if where == "last":
            assert r.read_all()[2] == ents
        else:
            with pytest.raises(raftwal.CorruptionError):
                r.read_all()


# --- 2. an impossible or mid-log length word is not a torn tail ---------------------------


def test_a_huge_length_word_mid_segment_is_record_too_large(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    ents = build(d)
    tail = segments(d)[-1]
    f = entry_frames(tail)[1]
    patch(tail, f.offset + 5, b"\x01")  # claims about 2**40 bytes
    assert_refused_and_untouched(d, raftwal.RecordTooLargeError)
    with pytest.raises(raftwal.RecordTooLargeError), WAL.open_for_read(d) as r:
        r.read_all()
    root = node_dir(tmp_path, d)
    for mode in ("strict", "tolerate-tail"):
        with pytest.raises(raftwal.RecordTooLargeError) as ei:
            raftwal.open(root, recovery=mode, segment_size=SEG)
        assert ei.value.path == str(root / "wal" / tail.name)  # type: ignore[attr-defined]
        assert ei.value.offset == f.offset  # type: ignore[attr-defined]
    assert wal_files(root / "wal") == wal_files(d)
    with raftwal.open(root, recovery="salvage", segment_size=SEG) as s:
        assert s.recovery.salvage is not None and s.recovery.salvage.damaged_offset == f.offset
        got = s.entries(s.first_index(), s.last_index() + 1)
        assert got == ents[: len(got)]


def test_a_changed_length_word_over_valid_records_is_not_a_torn_tail(tmp_path: Path) -> None:
    """A length a few KB too long runs over intact records into the zeros
    after them: it looks torn, but the records after it say otherwise."""
    d = tmp_path / "wal"
    build(d)
    tail = segments(d)[-1]
    f = entry_frames(tail)[1]
    patch(tail, f.offset + 1, bytes([tail.read_bytes()[f.offset + 1] ^ 0x10]))
    assert_refused_and_untouched(d, raftwal.CorruptionError)
    with pytest.raises(raftwal.CorruptionError) as ei:
        read_write_mode(d)
    assert not isinstance(ei.value, raftwal.TornTailError)
    root = node_dir(tmp_path, d)
    with pytest.raises(raftwal.CorruptionError):
        raftwal.open(root, segment_size=SEG)  # the default mode does not cut
    assert wal_files(root / "wal") == wal_files(d)


def test_a_length_past_the_end_of_an_earlier_segment_is_corruption(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    build(d)
    seg = segments(d)[0]
    f = entry_frames(seg)[-1]
    patch(seg, f.offset, word(f.length + 64, f.pad))
    with pytest.raises(raftwal.CorruptionError) as ei:
        read_write_mode(d)
    assert not isinstance(ei.value, raftwal.TornTailError)
    assert_refused_and_untouched(d, raftwal.CorruptionError)


def varint_len(v: int) -> int:
    return max(1, (v.bit_length() + 6) // 7)


def test_a_crc_failure_followed_by_valid_records_is_not_a_torn_tail(tmp_path: Path) -> None:
    """A record whose last bytes sit alone in the next sector and are zero
    (etcd's torn-write test calls that chunk torn): a flip elsewhere in it,
    with valid records after it, is a CRC mismatch, not a torn tail."""
    d = tmp_path / "wal"
    with WAL.create(d, b"", segment_size=1 << 16) as w:
        w.save(HardState(1, 1, 0), [Entry(term=1, index=1, data=b"first")])
        seg = segments(d)[-1]
        start = frames(seg)[-1].end
        for size in range(32, 1100):
            entry = 2 + 2 + 2 + 1 + varint_len(size) + size
            n = 2 + 6 + 1 + varint_len(entry) + entry  # with a 5-byte CRC varint
            if (start + 8 + n) % 512 == 8:
                break
        data = b"d" * (size - 16) + bytes(16)
        w.save(HardState(1, 1, 1), [Entry(term=1, index=2, data=data)])
        for j in range(3, 6):
            w.save(HardState(1, 1, j - 1), [Entry(term=1, index=j, data=b"after")])
    f = entry_frames(seg)[1]
    assert 0 < (f.offset + 8 + f.length) % 512 <= 16
    raw = seg.read_bytes()
    patch(seg, f.offset + 40, bytes([raw[f.offset + 40] ^ 1]))
    with pytest.raises(raftwal.CRCMismatchError):
        read_write_mode(d)
    assert_refused_and_untouched(d, raftwal.CRCMismatchError)
    with pytest.raises(raftwal.CorruptionError):  # not repairable: refused, nothing cut
        raftwal.repair(d)
    assert seg.read_bytes() != raw  # the flip is still there: nothing was cut


# --- 3. raft's invariants catch record-type flips ------------------------------------------


def type_byte(f: FrameInfo) -> int:
    return f.offset + 9  # the record's type varint, after its 0x08 tag


def flip_type(seg: Path, f: FrameInfo, to: int) -> None:
    raw = seg.read_bytes()
    assert raw[type_byte(f)] == f.type
    patch(seg, type_byte(f), bytes([to]))


def test_an_entry_read_as_a_hard_state_is_corruption(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    build(d)
    tail = segments(d)[-1]
    flip_type(tail, entry_frames(tail)[-1], 3)  # the last entry: nothing would be missing
    assert_refused_and_untouched(d, raftwal.CorruptionError)
    root = node_dir(tmp_path, d)
    with pytest.raises(raftwal.CorruptionError, match="HardState"):
        raftwal.open(root, recovery="strict", segment_size=SEG)


def test_an_entry_without_data_read_as_a_hard_state_is_corruption(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    with WAL.create(d, b"") as w:
        w.save(HardState(3, 1, 0), [Entry(term=3, index=1), Entry(term=3, index=2)])
        w.save(HardState(3, 1, 1), [Entry(term=3, index=3)])
    seg = segments(d)[0]
    flip_type(seg, entry_frames(seg)[-1], 3)  # HardState(term=0, vote=3, commit=3)
    with pytest.raises(raftwal.CorruptionError, match="term"):
        read_write_mode(d)
    assert_refused_and_untouched(d, raftwal.CorruptionError)


def test_a_hard_state_read_as_an_entry_is_corruption(tmp_path: Path) -> None:
    """HardState(term=2, vote=1, commit=3) read as an entry is entry 3 of
    term 1 and type 2: it would replace entry 3 and drop 4 and 5."""
    d = tmp_path / "wal"
    with WAL.create(d, b"") as w:
        w.save(HardState(2, 1, 2), [Entry(term=2, index=i, data=b"x") for i in range(1, 6)])
        w.save(HardState(2, 1, 3), [])
    seg = segments(d)[0]
    hs = [f for f in frames(seg) if f.type == 3][-1]
    flip_type(seg, hs, 2)
    with pytest.raises(raftwal.CorruptionError, match="below entry 2"):
        read_write_mode(d)
    assert_refused_and_untouched(d, raftwal.CorruptionError)


def test_a_hard_state_read_as_an_entry_of_unknown_type_is_corruption(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    with WAL.create(d, b"") as w:
        w.save(HardState(5, 1, 0), [Entry(term=5, index=1, data=b"x")])
        w.save(HardState(5, 1, 1), [])
    seg = segments(d)[0]
    flip_type(seg, [f for f in frames(seg) if f.type == 3][-1], 2)
    with pytest.raises(raftwal.CorruptionError, match="type 5"):
        read_write_mode(d)


def test_raft_invariants_of_the_log(tmp_path: Path) -> None:
    """Logs raft cannot write, made with the writer itself."""

    def refused(saves: list[tuple[HardState, list[Entry]]], what: str) -> None:
        d = tmp_path / what.replace(" ", "-")
        with WAL.create(d, b"") as w:
            for hs, ents in saves:
                w.save(hs, ents)
        with pytest.raises(raftwal.CorruptionError, match=what):
            read_write_mode(d)
        with pytest.raises(raftwal.CorruptionError, match=what):
            raftwal.verify(d)

    e = Entry
    refused([(HardState(2, 1, 0), [e(term=2, index=1), e(term=1, index=2)])], "below entry 1")
    refused([(HardState(3, 1, 0), []), (HardState(2, 1, 0), [])], "goes back")
    # Overwrites raft makes (a later term; a lower one: a new leader's older
    # entry), and one it does not but etcd's WAL reads back (the same term).
    d = tmp_path / "ok"
    with WAL.create(d, b"") as w:
        w.save(HardState(3, 1, 1), [e(term=1, index=1), e(term=3, index=2)])
        w.save(HardState(5, 1, 1), [e(term=2, index=2)])
        w.save(HardState(5, 1, 1), [e(term=5, index=2), e(term=5, index=3)])
        w.save(HardState(5, 1, 1), [e(term=5, index=3, data=b"again")])
    got = read_write_mode(d)[2]
    assert [(x.term, x.index) for x in got] == [(1, 1), (5, 2), (5, 3)]
    assert got[-1].data == b"again"


# --- 4. etcd's size limit; a located snapshot mismatch ---------------------------------------


@pytest.mark.parametrize("pad", [0, 3])
def test_a_length_at_etcds_limit_is_record_too_large(tmp_path: Path, pad: int) -> None:
    d = tmp_path / "wal"
    with WAL.create(d, b"", segment_size=1 << 16) as w:
        w.save(HardState(1, 1, 0), [Entry(term=1, index=1, data=b"x")])
    seg = segments(d)[0]
    end = frames(seg)[-1].end
    patch(seg, end, word(LIMIT - pad, pad) + b"\x08\x02")
    assert_refused_and_untouched(d, raftwal.RecordTooLargeError)
    with (
        pytest.raises(raftwal.RecordTooLargeError, match="max entry size"),
        WAL.open_for_read(d) as r,
    ):
        r.read_all()
    # one byte less is a torn tail, as etcd 3.4 reads it
    patch(seg, end, word(LIMIT - pad - 1, pad))
    with pytest.raises(raftwal.TornTailError):
        read_write_mode(d)


def test_a_snapshot_mismatch_names_file_and_offset(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    with WAL.create(d, b"") as w:
        w.save(HardState(1, 1, 1), [Entry(term=1, index=1)])
        w.save_snapshot(WalSnapshot(index=1, term=1))
    seg = segments(d)[0]
    snap = [f for f in frames(seg) if f.type == 5][-1]
    with (
        pytest.raises(raftwal.SnapshotMismatchError) as ei,
        WAL.open_for_read(d, WalSnapshot(index=1, term=2)) as r,
    ):
        r.read_all()
    assert ei.value.path == str(seg)  # type: ignore[attr-defined]
    assert ei.value.offset == snap.offset  # type: ignore[attr-defined]
    assert str(seg) in str(ei.value) and f"offset {snap.offset}" in str(ei.value)


# --- the exhaustive campaign ---------------------------------------------------------------------


def campaign_wal(d: Path) -> None:
    """A few KB of log in >= 3 segments: entries with and without data (and
    of each type), HardStates, a snapshot record, a raft overwrite."""
    with WAL.create(d, b"meta", segment_size=CSEG) as w:
        w.save(HardState(3, 1, 0), [Entry(term=3, index=1, data=b"a" * 20), Entry(term=3, index=2)])
        w.save(HardState(3, 1, 2), [Entry(term=3, index=3, type=1, data=b"conf change")])
        w.save_snapshot(WalSnapshot(index=2, term=3))
        w.save(HardState(4, 2, 3), [Entry(term=4, index=4, data=b""), Entry(term=4, index=5)])
        w.save(HardState(4, 2, 3), [Entry(term=4, index=6, data=b"b" * 150)])
        w.save(HardState(5, 3, 4), [Entry(term=5, index=6, type=2, data=b"c" * 40)])
        for i in range(7, 16):
            w.save(HardState(5, 3, i - 2), [Entry(term=5, index=i, data=b"%02d" % i * (i % 4))])
        w.save(HardState(5, 3, 13), [Entry(term=5, index=16)])
    assert len(segments(d)) >= 3


def record_data(raw: bytes, f: FrameInfo) -> bytes:
    """The data field of the walpb.Record in frame ``f``."""
    body = raw[f.offset + 8 : f.offset + 8 + f.length]
    pos = 0
    while pos < len(body):
        tag, pos = uvarint(body, pos)
        if tag & 7 == 0:
            _, pos = uvarint(body, pos)
        else:
            n, pos = uvarint(body, pos)
            if tag >> 3 == 3:
                return body[pos : pos + n]
            pos += n
    return b""


def legal_logs(d: Path) -> list[list[Entry]]:
    """The log after each entry record of the WAL in ``d``, in order: what
    replaying a prefix of its records gives."""
    log: list[Entry] = []
    out = [list(log)]
    for seg in segments(d):
        raw = seg.read_bytes()
        for f in frames(seg):
            if f.type == 2:
                e = Entry.FromString(record_data(raw, f))
                log = [*log[: e.index - 1], e]
                out.append(list(log))
    return out


def write_files(d: Path, files: dict[str, bytes]) -> None:
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for name, data in files.items():
        (d / name).write_bytes(data)


def check_tolerant_open(
    root: Path, mode: str, files: dict[str, bytes], legal: list[list[Entry]]
) -> str | None:
    """Open the WAL in root/wal in ``mode``; a problem, or None if the open
    destroyed no byte it did not report and returned the log of a prefix
    of the records."""
    wal = root / "wal"
    write_files(wal, files)
    shutil.rmtree(root / "snap", ignore_errors=True)
    report = None
    try:
        with raftwal.open(root, recovery=mode, segment_size=CSEG) as s:
            report = s.recovery
            got = s.entries(s.first_index(), s.last_index() + 1) if s.last_index() else []
            if got not in legal:
                return f"{mode}: entries are not those of a prefix of the records"
    except raftwal.Error:
        pass
    named: set[str] = set()
    if report is not None:
        if report.damage:
            named.add(os.path.basename(report.damage[0]))
        if report.salvage is not None:
            named.update(report.salvage.moved)
            if report.salvage.damaged_file:
                named.add(os.path.basename(report.salvage.damaged_file))
    now = files_of(wal)
    for name, data in files.items():
        if now.get(name) == data:
            continue
        if now.get(name + ".broken") != data:
            return f"{mode}: {name} changed without a .broken copy"
        if report is not None and name not in named:
            return f"{mode}: {name} changed and the report does not name it"
    return None


def run_campaign(tmp_path: Path, mutations: list[int]) -> tuple[int, dict[str, int]]:
    src = tmp_path / "src"
    campaign_wal(src)
    pristine = wal_files(src)
    with WAL.open_for_read(src) as r:
        want = r.read_all()
    assert want[0] == b"meta" and len(want[2]) == 16
    legal = legal_logs(src)
    assert legal[-1] == want[2]
    positions = []
    for name, data in pristine.items():
        end = frames(src / name)[-1].end
        positions += [(name, i) for i in range(min(len(data), end + 64))]
    work = tmp_path / "work"
    root = tmp_path / "root"
    tried = 0
    outcomes: dict[str, int] = {}
    problems: list[str] = []
    silent: list[str] = []
    for name, i in positions:
        for m in mutations:
            files = dict(pristine)
            raw = bytearray(files[name])
            raw[i] ^= m
            files[name] = bytes(raw)
            tried += 1
            label = f"{name}[{i}] ^= {m:#04x}"
            write_files(work, files)
            try:
                with WAL.open(work, segment_size=CSEG) as w:
                    got = w.read_all()
            except raftwal.Error as exc:
                kind = type(exc).__name__
                outcomes[kind] = outcomes.get(kind, 0) + 1
                if wal_files(work) != files:
                    problems.append(f"{label}: the refused writable open changed the files")
                for mode in ("tolerate-tail", "salvage"):
                    p = check_tolerant_open(root, mode, files, legal)
                    if p:
                        problems.append(f"{label}: {p}")
                continue
            if got != want:
                problems.append(f"{label}: a strict open returned other data, silently")
            elif wal_files(work) != files:
                problems.append(f"{label}: the writable open changed bytes it did not report")
            outcomes["original data"] = outcomes.get("original data", 0) + 1
            silent.append(label)
    print(f"\n{tried} mutations tried over {len(positions)} bytes: {outcomes}")
    print("read back as the original data:", " ".join(silent))
    assert not problems, f"{len(problems)} of {tried}:\n" + "\n".join(problems[:30])
    return tried, outcomes


@pytest.fixture
def fast_dir(tmp_path: Path) -> Any:
    """A directory in memory where there is one (fsyncs cost nothing there:
    the campaign opens the WAL some 30,000 times)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        import tempfile

        with tempfile.TemporaryDirectory(dir=shm, prefix="raftwal-trust-") as t:
            yield Path(t)
    else:
        yield tmp_path


@pytest.mark.timeout(900)
def test_every_single_bit_flip_of_the_log(fast_dir: Path) -> None:
    tried, _ = run_campaign(fast_dir, [1 << b for b in range(8)])
    assert tried > 8 * 1200


@pytest.mark.timeout(900)
def test_every_byte_inverted(fast_dir: Path) -> None:
    tried, _ = run_campaign(fast_dir, [0xFF])
    assert tried > 1200

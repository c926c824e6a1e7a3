"""A tiny, independent walker over WAL segment frames, for tests that need to
know where records sit in a file (to tear, zero or flip them)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import NamedTuple


class FrameInfo(NamedTuple):
    offset: int  # of the length word
    length: int  # of the record
    pad: int
    type: int

    @property
    def end(self) -> int:
        return self.offset + 8 + self.length + self.pad


def uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    """A protobuf varint at ``pos``: (value, position after it)."""
    v = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, pos


def frames(path: Path) -> list[FrameInfo]:
    """Frames of a well-formed segment, up to its end of log."""
    raw = path.read_bytes()
    out = []
    off = 0
    while off + 8 <= len(raw):
        (word,) = struct.unpack_from("<Q", raw, off)
        if word == 0:
            break
        n = word & ((1 << 56) - 1)
        pad = (word >> 56) & 0x07 if word >> 63 else 0
        body = raw[off + 8 : off + 8 + n]
        assert body[0] == 0x08, "record must start with its type field"
        rtype, _ = uvarint(body, 1)
        out.append(FrameInfo(off, n, pad, rtype))
        off += 8 + n + pad
    return out


def segments(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.suffix == ".wal")


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_frame(rtype: int, crc: int, data: bytes | None) -> bytes:
    """One frame as etcd writes it: length word, walpb.Record, padding."""
    rec = b"\x08" + _varint(rtype) + b"\x10" + _varint(crc)
    if data is not None:
        rec += b"\x1a" + _varint(len(data)) + data
    pad = -len(rec) % 8
    word = len(rec) | ((0x80 | pad) << 56 if pad else 0)
    return struct.pack("<Q", word) + rec + bytes(pad)


def record_crc(path: Path, frame: FrameInfo) -> int:
    """The crc field of the record in ``frame``."""
    body = path.read_bytes()[frame.offset + 8 : frame.offset + 8 + frame.length]
    _, pos = uvarint(body, 1)
    assert body[pos] == 0x10, "record must have its crc field second"
    crc, _ = uvarint(body, pos + 1)
    return crc


def append_records(path: Path, records: list[tuple[int, bytes | None]]) -> int:
    """Write ``records`` (type, data) after the last frame of segment
    ``path``, continuing its CRC chain, bypassing every check a writer
    makes (to build logs no writer would); returns the first one's offset."""
    from raftwal._native import crc32c

    last = frames(path)[-1]
    crc = record_crc(path, last)
    out = b""
    for rtype, data in records:
        crc = crc32c(data or b"", crc)
        out += encode_frame(rtype, crc, data)
    with open(path, "r+b") as f:
        f.seek(last.end)
        f.write(out)
    return last.end

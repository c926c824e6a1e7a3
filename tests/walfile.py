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

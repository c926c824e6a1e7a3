"""Write the seed corpora for the fuzz targets (run from anywhere).

segment_reader: the first segment of a few small WALs written by raftwal
itself (metadata, snapshots, entries, hard states, an overwrite, a
preallocated tail of zeros, a torn tail). record_decoder: every framed
record of those segments and every record's data field (an entry, a
HardState or a walpb.Snapshot), each as its own file.

Seeds are named seed-<target>-<n>; re-running rewrites them identically.
"""

from __future__ import annotations

import hashlib
import struct
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import raftwal

HERE = Path(__file__).resolve().parent
FIRST = "0000000000000000-0000000000000000.wal"
MAX_SEED = 4096


def _wal(tmp: Path, name: str, build: Callable[[raftwal.WAL], None]) -> bytes:
    d = tmp / name
    w = raftwal.WAL.create(d, b"meta-" + name.encode(), segment_size=4096)
    try:
        build(w)
    finally:
        w.close()
    return (d / FIRST).read_bytes()


def _entries(lo: int, hi: int, term: int, size: int = 8) -> list[raftwal.Entry]:
    return [raftwal.Entry(term=term, index=i, data=bytes([i % 251]) * size) for i in range(lo, hi)]


def _small(w: raftwal.WAL) -> None:
    w.save(raftwal.HardState(term=1, vote=1, commit=2), _entries(1, 4, 1))


def _snap35(w: raftwal.WAL) -> None:
    w.save(raftwal.HardState(term=2, vote=1, commit=3), _entries(1, 4, 2))
    cs = raftwal.ConfState(voters=[1, 2, 3], learners=[4])
    w.save_snapshot(raftwal.WalSnapshot(index=3, term=2, conf_state=cs))
    w.save(raftwal.HardState(term=2, vote=1, commit=5), _entries(4, 6, 2, size=3))


def _overwrite(w: raftwal.WAL) -> None:
    w.save(raftwal.HardState(term=1, vote=2, commit=1), _entries(1, 5, 1))
    w.save(raftwal.HardState(term=3, vote=3, commit=2), _entries(3, 5, 3, size=0))
    w.save_snapshot(raftwal.WalSnapshot(index=2, term=1))


def _multi(w: raftwal.WAL) -> None:
    # Spans several 4 KiB segments; the first one is the seed.
    for i in range(1, 40, 4):
        w.save(raftwal.HardState(term=1, vote=1, commit=i), _entries(i, i + 4, 1, size=60))


def _nothing(w: raftwal.WAL) -> None:
    pass


def _frames(seg: bytes) -> list[bytes]:
    out, off = [], 0
    while off + 8 <= len(seg):
        (word,) = struct.unpack_from("<Q", seg, off)
        if word == 0:
            break
        n, top = word & ((1 << 56) - 1), word >> 56
        pad = top & 7 if top & 0x80 else 0
        if off + 8 + n + pad > len(seg):
            break
        out.append(seg[off + 8 : off + 8 + n])
        off += 8 + n + pad
    return out


def _data_field(rec: bytes) -> bytes | None:
    """The bytes of field 3 of a walpb.Record (a tiny protobuf walk)."""
    pos = 0

    def uvarint() -> int:
        nonlocal pos
        v = shift = 0
        while True:
            b = rec[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v

    while pos < len(rec):
        key = uvarint()
        if key & 7 == 0:
            uvarint()
        elif key & 7 == 2:
            n = uvarint()
            if key >> 3 == 3:
                return rec[pos : pos + n]
            pos += n
        else:
            return None
    return None


def _trim(seg: bytes, keep_zeros: int) -> bytes:
    body = seg.rstrip(b"\0")
    body += b"\0" * ((-len(body)) % 8)
    return body + b"\0" * keep_zeros


def main() -> int:
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        segs = {
            "small": _wal(tmp, "small", _small),
            "snap35": _wal(tmp, "snap35", _snap35),
            "overwrite": _wal(tmp, "overwrite", _overwrite),
            "multi": _wal(tmp, "multi", _multi),
            "empty": _wal(tmp, "empty", _nothing),
        }
    seeds: dict[str, list[bytes]] = {"segment_reader": [], "record_decoder": []}
    for name, seg in segs.items():
        seeds["segment_reader"].append(_trim(seg, 0))
        if name in ("small", "snap35"):
            seeds["segment_reader"].append(_trim(seg, 512))  # preallocated tail
            body = _trim(seg, 0)
            seeds["segment_reader"].append(body[: len(body) - 5])  # torn last frame
        if name == "multi":
            continue  # its records repeat the others'
        for rec in _frames(seg):
            seeds["record_decoder"].append(rec)
            data = _data_field(rec)
            if data:
                seeds["record_decoder"].append(data)
    for target, blobs in seeds.items():
        d = HERE / "corpus" / target
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()
        seen: set[bytes] = set()
        n = 0
        for blob in blobs:
            blob = blob[:MAX_SEED]
            if blob in seen:
                continue
            seen.add(blob)
            digest = hashlib.sha1(blob).hexdigest()[:12]
            (d / f"seed-{n:03d}-{digest}").write_bytes(blob)
            n += 1
        print(f"{target}: {n} seeds in {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

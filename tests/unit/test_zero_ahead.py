"""The zero-ahead thread and the overlapped replay, seen from outside.

* Zero-ahead: in a fallocated tail, blocks a little ahead of the writer are
  written (zeros) rather than "unwritten", so the writer's syncs need no
  extent conversion; the far end of the segment is left alone; with
  ``RAFTWAL_ZERO_AHEAD=0`` nothing ahead is written. Read with the FIEMAP
  ioctl, which reports unwritten extents (ext4, xfs); skipped, saying so,
  on file systems without them.
* The replay runs on a helper thread: an entry class that fails mid-replay
  raises its error from ``read_all`` and leaves nothing hanging.
"""

from __future__ import annotations

import fcntl
import os
import struct
import time
from pathlib import Path

import pytest

from raftwal import WAL, Entry, HardState

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_UNWRITTEN = 0x800
HEADER = struct.Struct("=QQIIII")
EXTENT = struct.Struct("=QQQQQIIII")


def extents(path: Path) -> list[tuple[int, int, int]]:
    """(logical start, length, flags) of every extent of ``path``."""
    out: list[tuple[int, int, int]] = []
    start = 0
    count = 256
    with open(path, "rb") as f:
        while True:
            buf = bytearray(
                HEADER.pack(start, (1 << 64) - 1 - start, FIEMAP_FLAG_SYNC, 0, count, 0)
            )
            buf += bytes(EXTENT.size * count)
            fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, buf)
            mapped = HEADER.unpack_from(buf)[3]
            last = False
            for i in range(mapped):
                logical, _, length, _, _, flags, *_ = EXTENT.unpack_from(
                    buf, HEADER.size + i * EXTENT.size
                )
                out.append((logical, length, flags))
                start = logical + length
                last = bool(flags & FIEMAP_EXTENT_LAST)
            if mapped == 0 or last:
                return out


def unwritten_overlap(path: Path, lo: int, hi: int) -> int:
    """Bytes of ``[lo, hi)`` that lie in unwritten extents."""
    n = 0
    for start, length, flags in extents(path):
        if flags & FIEMAP_EXTENT_UNWRITTEN:
            n += max(0, min(hi, start + length) - max(lo, start))
    return n


def segment_of(wal_dir: Path) -> Path:
    return wal_dir / "0000000000000000-0000000000000000.wal"


def log_end(path: Path) -> int:
    """Offset just past the last non-zero byte among the first 16 MiB."""
    data = path.read_bytes()[: 16 << 20]
    return len(data.rstrip(b"\0"))


@pytest.fixture
def unwritten_extents(tmp_path: Path) -> None:
    """Skip unless this file system reports fallocated blocks as unwritten."""
    probe = tmp_path / "probe"
    fd = os.open(probe, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, 1 << 20)
    finally:
        os.close(fd)
    try:
        found = unwritten_overlap(probe, 0, 1 << 20)
    except OSError as exc:
        pytest.skip(f"FIEMAP not supported here ({exc}): cannot see unwritten extents")
    probe.unlink()
    if found == 0:
        pytest.skip("this file system does not keep fallocated blocks unwritten")


PAYLOAD = b"\x5a" * 1000


def save_mib(w: WAL, mib: int) -> None:
    """About ``mib`` MiB of entries, 100 entries of 1000 B per synced save."""
    index = 1
    for _ in range(mib * 1024 * 1024 // (100 * 1000)):
        w.save(
            HardState(1, 1, index + 99),
            [Entry(term=1, index=i, data=PAYLOAD) for i in range(index, index + 100)],
        )
        index += 100


def test_zeros_are_written_just_ahead_of_the_writer(
    tmp_path: Path, unwritten_extents: None
) -> None:
    w = WAL.create(tmp_path / "wal", b"m")
    seg = segment_of(tmp_path / "wal")
    save_mib(w, 2)
    end = log_end(seg)
    # The thread runs behind the saves: give it a moment to catch up.
    ahead_lo, ahead_hi = (end + (64 << 10) + 4095) // 4096 * 4096, end + (1 << 20)
    deadline = time.monotonic() + 10
    while unwritten_overlap(seg, ahead_lo, ahead_hi) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert unwritten_overlap(seg, ahead_lo, ahead_hi) == 0
    # Only ahead, not the whole 64 MB segment.
    assert unwritten_overlap(seg, 32 << 20, 64_000_000) == 64_000_000 - (32 << 20)
    w.close()
    # The zeros changed no byte of the log.
    with WAL.open_for_read(tmp_path / "wal") as r:
        _, hs, ents = r.read_all()
    assert hs.commit == ents[-1].index and len(ents) == ents[-1].index
    assert all(e.data == PAYLOAD for e in ents)


def test_zero_ahead_can_be_turned_off(
    tmp_path: Path, unwritten_extents: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAFTWAL_ZERO_AHEAD", "0")
    w = WAL.create(tmp_path / "wal", b"m")
    seg = segment_of(tmp_path / "wal")
    save_mib(w, 2)
    time.sleep(0.3)
    end = log_end(seg)
    lo = (end + (64 << 10) + 4095) // 4096 * 4096
    assert unwritten_overlap(seg, lo, lo + (1 << 20)) == 1 << 20
    w.close()


class Exploding:
    """An entry class (called for each entry) that fails at index 3000."""

    def __init__(self, term: int, index: int, type: int, data: bytes | None) -> None:
        if index == 3000:
            raise ValueError("no entry 3000")
        self.index = index


def test_a_failing_entry_class_stops_the_overlapped_replay(tmp_path: Path) -> None:
    w = WAL.create(tmp_path / "wal", None, segment_size=1 << 20)
    save_mib(w, 4)  # several segments and several replay chunks
    w.close()
    from raftwal import _native

    for _ in range(3):
        n = _native.Wal.open(str(tmp_path / "wal"), 0, 0, False)
        with pytest.raises(ValueError, match="no entry 3000"):
            n.read_all(Exploding)
        n.close()
    # And a normal replay afterwards sees everything.
    with WAL.open_for_read(tmp_path / "wal") as r:
        assert len(r.read_all()[2]) == 4 * 1024 * 1024 // 100_000 * 100

"""Fuzzing the Python reading path: bytes on disk never escape as anything
but a raftwal.Error.

A WAL directory (one segment) and a ``.snap`` file, arbitrary or mutated
from real ones written by raftwal, go through every way Python reads them:
``WAL.open_for_read(...).read_all()`` (at the start and at each snapshot
the log vouches for), ``verify``, ``valid_snapshot_entries`` and
``Snapshotter.read`` on the files as they are (which must leave them
untouched), and, each on its own copy, ``WAL.open(...).read_all()``,
``repair``, ``salvage`` and ``raftwal.open`` in each recovery mode.

Only raftwal.Error may escape. Everything else fails the test by name, above
all pyo3's ``PanicException`` (a BaseException: a panic in the Rust core).
No OSError is allowed either: the files are ours and readable, so one would
be a bug too.

The budget is a fixed number of examples per test (``RAFTWAL_FUZZ_EXAMPLES``,
default 300; a few seconds). ``tests/support/atheris_reader.py`` drives the same
``exercise`` from atheris for a time budget (``tools/fuzz.sh``).
"""

from __future__ import annotations

import functools
import os
import shutil
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import raftwal
from raftwal import (
    WAL,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
    Snapshotter,
    WalSnapshot,
)
from raftwal.messages import snap_file_bytes
from raftwal.snap import snap_file_name

FIRST = "0000000000000000-0000000000000000.wal"
SEGMENT_SIZE = 1 << 16  # for the writable opens: keeps preallocation small
RECOVERY_MODES = ("strict", "tolerate-tail", "salvage")
EXAMPLES = int(os.environ.get("RAFTWAL_FUZZ_EXAMPLES", "300"))

T = TypeVar("T")


class UnexpectedError(AssertionError):
    """Something other than a raftwal.Error came out of the reading path."""


def guarded(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``fn(*args, **kwargs)``, None if it raised a raftwal.Error; anything
    else (a PanicException included) becomes an UnexpectedError."""
    try:
        return fn(*args, **kwargs)
    except raftwal.Error:
        return None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
        raise UnexpectedError(f"{what} raised {kind}: {exc}") from exc


# --- real files to mutate ---------------------------------------------------


def _trim(seg: bytes, zeros: int = 64) -> bytes:
    """A preallocated segment cut down to its records and a little of the
    zeroed tail (mutations then land on the records)."""
    body = seg.rstrip(b"\0")
    body += b"\0" * (-len(body) % 8)
    return body + b"\0" * zeros


@functools.cache
def bases() -> tuple[tuple[bytes, bytes, str], ...]:
    """(first segment, .snap file, .snap file name) of a few real logs."""
    out = []
    with tempfile.TemporaryDirectory() as t:
        for n, shape in enumerate(("snap35", "snap34", "overwrite", "plain")):
            root = Path(t) / shape
            wal_dir, snap_dir = root / "wal", root / "snap"
            snap_dir.mkdir(parents=True)
            cs = ConfState(voters=[1, 2, 3], learners=[4]) if shape == "snap35" else None
            meta = SnapshotMetadata(conf_state=ConfState(voters=[1, 2, 3]), index=3, term=2)
            snap = Snapshot(data=b"state-" + shape.encode() * (n + 1), metadata=meta)
            Snapshotter(snap_dir).save_snap(snap)
            with WAL.create(wal_dir, b"meta-" + shape.encode(), segment_size=SEGMENT_SIZE) as w:
                es = [Entry(term=2, index=i, type=i % 3, data=b"x" * (i * n)) for i in range(1, 6)]
                w.save(HardState(term=2, vote=1, commit=4), es)
                if shape == "overwrite":
                    w.save(HardState(term=3, vote=2, commit=4), [Entry(term=3, index=4)])
                if shape != "plain":
                    w.save_snapshot(WalSnapshot(index=3, term=2, conf_state=cs))
                w.save(HardState(term=3, vote=2, commit=5), [Entry(term=3, index=5, data=b"")])
            name = snap_file_name(2, 3)
            out.append(
                (_trim((wal_dir / FIRST).read_bytes()), (snap_dir / name).read_bytes(), name)
            )
    return tuple(out)


# --- strategies -------------------------------------------------------------

OPS = ("set", "xor", "insert", "delete", "truncate", "word", "splice")


@st.composite
def mutated(draw: st.DrawFn, base: bytes, max_ops: int = 4) -> bytes:
    """``base`` with a few random edits: bytes set, flipped, inserted or
    deleted, a cut, an 8-byte word (a length word) overwritten, a run copied."""
    raw = bytearray(base)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(OPS))
        pos = draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "set" and raw:
            raw[pos] = draw(st.integers(0, 255))
        elif op == "xor" and raw:
            raw[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del raw[pos : pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del raw[pos:]
        elif op == "word":
            at = pos - pos % 8
            word = draw(
                st.one_of(
                    st.integers(0, 2**64 - 1),
                    st.integers(0, 4096).map(lambda n: n | ((0x80 | (-n % 8)) << 56)),
                    st.integers(0, 7).map(lambda k: (2**56 - 1 - k) | (0x80 | k) << 56),
                )
            )
            raw[at : at + 8] = struct.pack("<Q", word)
        elif op == "splice" and raw:
            n = draw(st.integers(1, 64))
            src = draw(st.integers(0, max(len(raw) - 1, 0)))
            raw[pos:pos] = raw[src : src + n]
    return bytes(raw)


def framed() -> st.SearchStrategy[bytes]:
    """Length words (mostly well formed) each followed by arbitrary bytes."""
    body = st.binary(max_size=48)

    def frame(b: bytes, pad_ok: bool, word: int | None) -> bytes:
        if word is None:
            pad = -len(b) % 8
            word = len(b) | ((0x80 | pad) << 56 if pad and pad_ok else 0)
            return struct.pack("<Q", word) + b + b"\0" * (pad if pad_ok else 0)
        return struct.pack("<Q", word) + b

    one = st.builds(frame, body, st.booleans(), st.none() | st.integers(0, 2**64 - 1))
    return st.lists(one, max_size=8).map(b"".join)


def segments() -> st.SearchStrategy[tuple[bytes, int]]:
    """(segment bytes, which base it came from)."""
    n = len(bases())
    from_base = st.integers(0, n - 1).flatmap(
        lambda i: st.tuples(st.one_of(st.just(bases()[i][0]), mutated(bases()[i][0])), st.just(i))
    )
    arbitrary = st.tuples(st.one_of(st.binary(max_size=1024), framed()), st.integers(0, n - 1))
    return st.one_of(from_base, from_base, arbitrary)


def snap_files(i: int) -> st.SearchStrategy[bytes | None]:
    """A .snap file for base ``i``: intact, mutated, arbitrary, or arbitrary
    snapshot bytes under a correct CRC (so the protobuf decoder sees them)."""
    raw = bases()[i][1]
    good = Snapshot(
        data=b"d", metadata=SnapshotMetadata(conf_state=ConfState(voters=[1]), index=3, term=2)
    ).SerializeToString()
    payload = st.one_of(st.binary(max_size=128), mutated(good))
    return st.one_of(
        st.none(),
        st.just(raw),
        mutated(raw),
        st.binary(max_size=128),
        payload.map(lambda d: snap_file_bytes(raftwal.crc32c(d), d)),
    )


# --- the reading path ---------------------------------------------------------


def _read(wal_dir: Path, snap: WalSnapshot | None = None, *, write: bool = False) -> None:
    if write:
        w = WAL.open(wal_dir, snap, segment_size=SEGMENT_SIZE)
    else:
        w = WAL.open_for_read(wal_dir, snap)
    with w:
        w.read_all()


def _open_storage(root: Path, mode: str) -> None:
    with raftwal.open(root, recovery=mode, segment_size=SEGMENT_SIZE) as s:
        s.last_index()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def exercise(work: Path, segment: bytes, snap: bytes | None, snap_name: str) -> None:
    """Every Python reading entry point over one segment and one .snap file
    laid out as a data directory under ``work`` (which must be empty)."""
    src = work / "src"
    wal_dir, snap_dir = src / "wal", src / "snap"
    wal_dir.mkdir(parents=True)
    snap_dir.mkdir()
    (wal_dir / FIRST).write_bytes(segment)
    if snap is not None:
        (snap_dir / snap_name).write_bytes(snap)
    before = _tree(src)

    # Read-only: on the files as they are, which must stay as they were.
    guarded("WAL.open_for_read().read_all()", _read, wal_dir)
    guarded("verify", raftwal.verify, wal_dir)
    snaps = guarded("valid_snapshot_entries", raftwal.valid_snapshot_entries, wal_dir)
    for s in (snaps or [])[:3]:
        if not isinstance(s, WalSnapshot):
            raise UnexpectedError(f"valid_snapshot_entries returned {s!r}")
        guarded(f"WAL.open_for_read({s}).read_all()", _read, wal_dir, s)
        guarded(f"verify({s})", raftwal.verify, wal_dir, s)
    if snap is not None:
        guarded("Snapshotter.read", Snapshotter.read, snap_dir / snap_name)
    after = _tree(src)
    if after != before:
        raise UnexpectedError(f"a read-only call changed the files: {sorted(after)}")

    # Each writer-side reader on its own copy.
    def copy(name: str) -> Path:
        dst = work / name
        shutil.copytree(src, dst)
        return dst

    guarded("WAL.open().read_all()", _read, copy("open") / "wal", write=True)
    d = copy("repair") / "wal"
    if guarded("repair", raftwal.repair, d):
        guarded("WAL.open_for_read().read_all() after repair", _read, d)
    d = copy("salvage") / "wal"
    if guarded("salvage", raftwal.salvage, d) is not None:
        guarded("WAL.open_for_read().read_all() after salvage", _read, d)
    for mode in RECOVERY_MODES:
        guarded(f"raftwal.open(recovery={mode!r})", _open_storage, copy(f"storage-{mode}"), mode)


def run_case(segment: bytes, snap: bytes | None, snap_name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="raftwal-fuzz-") as t:
        exercise(Path(t), segment, snap, snap_name)


# --- the tests ------------------------------------------------------------------

FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(data=st.data())
def test_fuzz_segment_and_snap_files(data: st.DataObject) -> None:
    segment, i = data.draw(segments(), label="segment")
    snap = data.draw(snap_files(i), label="snap")
    run_case(segment, snap, bases()[i][2])


@FUZZ
@given(raw=st.binary(max_size=256), name=st.sampled_from([snap_file_name(2, 3), "x.snap"]))
def test_fuzz_snapshot_file_alone(raw: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as t:
        p = Path(t) / name
        p.write_bytes(raw)
        guarded("Snapshotter.read", Snapshotter.read, p)


def test_bases_read_back() -> None:
    """The unmutated inputs are real logs: they must read without error."""
    for segment, snap, name in bases():
        with tempfile.TemporaryDirectory() as t:
            wal_dir = Path(t) / "wal"
            wal_dir.mkdir()
            (wal_dir / FIRST).write_bytes(segment)
            with WAL.open_for_read(wal_dir) as w:
                _, hs, entries = w.read_all()
            assert hs.commit == 5
            assert [e.index for e in entries][-1] == 5
            (Path(t) / name).write_bytes(snap)
            assert Snapshotter.read(Path(t) / name).metadata.index == 3


def test_guard_flags_foreign_exceptions() -> None:
    def panic() -> None:
        raise BaseException("looks like a pyo3 PanicException")

    def corrupt() -> None:
        raise raftwal.CorruptionError("fine")

    assert guarded("corrupt", corrupt) is None
    for fn in (panic, lambda: [][0], lambda: open("/nonexistent/x")):
        try:
            guarded("f", fn)
        except UnexpectedError:
            pass
        else:
            raise AssertionError("not flagged")

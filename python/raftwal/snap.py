"""Raft snapshot files: etcd's ``member/snap`` directory.

A snapshot file is named ``%016x-%016x.snap`` after the snapshot's term and
index (term first, lowercase hex), so that the newest snapshot is the greatest
name as a string. Its bytes are a ``snappb.Snapshot`` wrapper: a CRC-32C of
the marshalled ``raftpb.Snapshot`` and those bytes. The files written here are
byte-identical to etcd 3.4's, and etcd 3.4, 3.5 and 3.6 read them.

One thing differs on purpose: etcd writes the file in place, so a crash can
leave a torn ``.snap`` behind (its loader then quarantines it). Here the file
is written to a temporary name in the same directory, fsynced, renamed into
place and the directory fsynced, so a ``.snap`` name only ever holds a whole
file.

Loading follows etcd: candidates are tried newest first; one that cannot be
read is renamed to ``<name>.broken`` and the next one is tried. That rename
is a writer's business: :meth:`Snapshotter.scan_newest_available` makes the
same choice without changing anything (``raftwal.open`` and the tools use
it, and a writer quarantines only once it holds the WAL).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import tempfile
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Protocol

from ._fsutil import fsync_dir
from ._native import crc32c
from .errors import (
    CorruptionError,
    CRCMismatchError,
    EmptySnapshotError,
    Error,
    NoDBSnapshotError,
    NoSnapshotError,
)
from .messages import Snapshot, WalSnapshot, parse_snap_file

__all__ = [
    "DBSource",
    "Snapshotter",
    "db_file_name",
    "is_db_source",
    "snap_file_name",
    "snap_file_parts",
]

_log = logging.getLogger(__name__)

SNAP_SUFFIX = ".snap"
"""Suffix of a snapshot file."""

SNAP_DB_SUFFIX = ".snap.db"
"""Suffix of a backend database file sent with a snapshot (``%016x.snap.db``)."""

BROKEN_SUFFIX = ".broken"
"""Suffix added to a snapshot file that failed to load."""

_TMP_SUFFIX = ".tmp"
_DB_TMP_PREFIX = "db.tmp"
_HEX = re.compile(r"[0-9a-fA-F]+")

StrPath = str | os.PathLike[str]
"""A file or directory path."""

_DB_CHUNK = 1 << 20
"""Bytes copied at a time by :meth:`Snapshotter.save_db_from`."""


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes | None: ...


DBSource = (
    StrPath | os.PathLike[bytes] | bytes | bytearray | memoryview | _Readable | Iterable[bytes]
)
"""What :meth:`Snapshotter.save_db_from` copies: a path (``str`` or
path-like) to a file, a binary file object (anything with ``read``), an
iterable of bytes-like chunks, or the bytes themselves."""


def snap_file_name(term: int, index: int) -> str:
    """The file name etcd gives the snapshot taken at ``term``/``index``."""
    return f"{term:016x}-{index:016x}{SNAP_SUFFIX}"


def db_file_name(index: int) -> str:
    """The file name etcd gives the backend database sent with the snapshot
    at ``index``: ``%016x.snap.db``."""
    return f"{_u64(index, 'index'):016x}{SNAP_DB_SUFFIX}"


def _u64(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value < 1 << 64:
        raise ValueError(f"{what} must be a uint64, not {value}")
    return value


def is_db_source(source: object) -> bool:
    """Whether ``source`` is something :meth:`Snapshotter.save_db_from` copies."""
    return isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview, Iterable)) or (
        callable(getattr(source, "read", None))
    )


def _chunks(source: DBSource) -> Generator[bytes | bytearray | memoryview, None, None]:
    """``source`` as a stream of chunks of at most ``_DB_CHUNK`` bytes
    (file objects and paths) or as the caller's own chunks (iterables)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield source
        return
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            yield from _chunks(f)
        return
    read = getattr(source, "read", None)
    if read is not None:
        readinto = getattr(source, "readinto", None)
        if readinto is not None:
            buf = bytearray(_DB_CHUNK)
            view = memoryview(buf)
            while n := readinto(view):
                yield view[:n]
            if n is None:
                raise ValueError("save_db_from: the source returned None (a non-blocking stream?)")
            return
        while chunk := read(_DB_CHUNK):
            yield chunk
        if chunk is None:
            raise ValueError("save_db_from: the source returned None (a non-blocking stream?)")
        return
    if not is_db_source(source):
        raise TypeError(
            "save_db_from: source must be a path, a binary file object, an iterable of "
            f"bytes chunks or bytes, not {type(source).__name__}"
        )
    yield from source  # type: ignore[misc]


def _write_all(fd: int, chunk: bytes | bytearray | memoryview) -> int:
    view = memoryview(chunk).cast("B")
    done = 0
    while done < len(view):
        done += os.write(fd, view[done:])
    return done


def _uvarint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def snap_file_parts(snap: Snapshot) -> list[bytes]:
    """The bytes of ``snap``'s ``.snap`` file (a ``snappb.Snapshot``
    wrapping the marshalled ``raftpb.Snapshot`` and its CRC-32C), as parts
    to write one after the other: the application's data is one of them,
    never copied (a snapshot can be hundreds of MiB, and every copy holds
    the GIL from the threads saving beside it). Joined, they are
    ``snap_file_bytes(crc32c(snap.SerializeToString()), ...)``, byte for byte."""
    data = snap.data
    # raftpb.Snapshot: field 1 data (when present), field 2 metadata
    head = b"\x0a" + _uvarint(len(data)) if snap.HasField("data") else b""
    tail = Snapshot(metadata=snap.metadata).SerializeToString()
    crc = crc32c(tail, crc32c(data, crc32c(head)))
    inner = len(head) + len(data) + len(tail)
    # snappb.Snapshot: field 1 crc, field 2 the raftpb bytes
    outer = b"\x08" + _uvarint(crc) + b"\x12" + _uvarint(inner)
    return [outer, head, data, tail]


def _parse_hex_u64(text: str) -> int | None:
    """``text`` as a hexadecimal uint64, or None if it is not one (as Go's ParseUint)."""
    if not _HEX.fullmatch(text):
        return None
    value = int(text, 16)
    return value if value < 1 << 64 else None


def _is_snap_tmp(name: str) -> bool:
    """A temporary of :meth:`Snapshotter._write_file`: ``<name>.snap.<random>.tmp``."""
    head, sep, _ = name.partition(SNAP_SUFFIX + ".")
    return bool(sep) and bool(head) and name.endswith(_TMP_SUFFIX)


def _read_regular_file(path: str) -> bytes:
    """The bytes of ``path``, refusing (:class:`CorruptionError`) anything
    but a regular file; the open never blocks, even on a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = (
                "a fifo"
                if stat.S_ISFIFO(mode)
                else "a directory"
                if stat.S_ISDIR(mode)
                else "not a file"
            )
            raise CorruptionError(f"snap: {path} is not a regular file ({kind})")
        os.set_blocking(fd, True)
        with open(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


class Snapshotter:
    """Saves and loads raft snapshots in one directory, as etcd's ``snap.Snapshotter``.

    The directory must exist; the snapshotter never creates it. Operations on
    a missing directory raise :class:`FileNotFoundError`.
    """

    __slots__ = ("_dir",)

    def __init__(self, dirpath: StrPath) -> None:
        """Use ``dirpath`` as the snapshot directory (nothing is read yet)."""
        self._dir = os.fspath(dirpath)

    @property
    def dirpath(self) -> str:
        """The snapshot directory."""
        return self._dir

    def __repr__(self) -> str:
        """``Snapshotter('<dirpath>')``."""
        return f"{type(self).__name__}({self._dir!r})"

    # --- writing -------------------------------------------------------------

    def save_snap(self, snap: Snapshot) -> None:
        """Write ``snap`` durably to ``%016x-%016x.snap`` (term, index).

        An empty snapshot (metadata index 0) is not written, as in etcd. The
        file's bytes are the ones etcd 3.4 writes; it appears under its name
        only once complete and fsynced (an existing file of that name is
        replaced), with mode 0600.
        """
        if snap.is_empty():
            return
        self._write_file(
            snap_file_name(snap.metadata.term, snap.metadata.index), snap_file_parts(snap)
        )

    def _write_file(
        self,
        name: str,
        chunks: Iterable[bytes | bytearray | memoryview],
        *,
        keep_existing: bool = False,
    ) -> int:
        """Write ``chunks`` one after the other to ``name`` through a
        fsynced temporary file and a rename, then fsync the directory;
        return the bytes written. With ``keep_existing`` an existing
        ``name`` is kept and the copy dropped. Whatever fails, the
        temporary is removed."""
        final = os.path.join(self._dir, name)
        # mkstemp creates the file with mode 0600 and a name of its own: a
        # leftover from a crash can never be taken for a snapshot.
        fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=_TMP_SUFFIX, dir=self._dir)
        written = 0
        try:
            try:
                for i, chunk in enumerate(chunks):
                    if not isinstance(chunk, (bytes, bytearray, memoryview)):
                        raise TypeError(f"{name}: chunk {i} is {type(chunk).__name__}, not bytes")
                    written += _write_all(fd, chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
            if keep_existing and os.path.lexists(final):
                os.unlink(tmp)
                return written
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(self._dir)
        return written

    def save_db_from(self, source: DBSource, index: int) -> int:
        """Save the backend database sent with the snapshot at ``index`` as
        ``%016x.snap.db``, as etcd's ``SaveDBFrom``; return the bytes copied.

        ``source`` is streamed (memory independent of its size) into a
        temporary file of this directory, which is fsynced, renamed into
        place (mode 0600) and the directory fsynced: the name only ever holds
        a whole file. When the file exists already it is kept and the copy
        dropped, as etcd does (one index, one database). If the copy fails
        (the source raises, the disk is full, a signal) nothing is left
        behind; a copy cut short by a kill leaves a temporary that the next
        writer removes (:meth:`remove_leftover_temporaries`).
        """
        name = db_file_name(index)
        with contextlib.closing(_chunks(source)) as chunks:
            return self._write_file(name, chunks, keep_existing=True)

    def db_file_path(self, index: int) -> str:
        """The path of the backend database saved for the snapshot at
        ``index``, as etcd's ``DBFilePath``; :class:`NoDBSnapshotError` when
        there is none."""
        path = os.path.join(self._dir, db_file_name(index))
        if not os.path.isdir(self._dir):
            raise FileNotFoundError(f"snap: no snapshot directory {self._dir}")
        if not os.path.isfile(path):
            raise NoDBSnapshotError(f"snap: snapshot file doesn't exist: {path}")
        return path

    # --- reading -------------------------------------------------------------

    @staticmethod
    def read(path: StrPath) -> Snapshot:
        """Read and check one snapshot file.

        Raises :class:`EmptySnapshotError` for an empty file or a wrapper with
        no data or a zero CRC, :class:`CRCMismatchError` when the data does not
        match its CRC, and :class:`CorruptionError` when the wrapper or the
        snapshot does not decode, or when ``path`` is not a regular file (a
        FIFO is refused, never waited on). Failures to read the file stay
        ``OSError``.
        """
        path = os.fspath(path)
        raw = _read_regular_file(path)
        if not raw:
            raise EmptySnapshotError(f"snap: empty snapshot: {path} is an empty file")
        try:
            crc, data = parse_snap_file(raw)
        except CorruptionError as exc:
            raise CorruptionError(f"snap: {path}: {exc}") from exc
        if not data or crc == 0:
            raise EmptySnapshotError(f"snap: empty snapshot: {path} has no data or a zero crc")
        actual = crc32c(data)
        if actual != crc:
            raise CRCMismatchError(
                f"snap: crc mismatch: {path}: stored {crc:#010x}, computed {actual:#010x}"
            )
        try:
            return Snapshot.FromString(data)
        except CorruptionError as exc:
            raise CorruptionError(f"snap: {path}: {exc}") from exc

    def snap_names(self) -> list[str]:
        """Names of the ``.snap`` files in the directory, newest first; ``[]`` when none.

        Newest means greatest as a string, i.e. by (term, index) for names
        written by etcd or raftwal.
        """
        return sorted((n for n in os.listdir(self._dir) if n.endswith(SNAP_SUFFIX)), reverse=True)

    def load(self) -> Snapshot:
        """The newest snapshot that reads correctly.

        Files that fail to read are renamed to ``<name>.broken`` on the way.
        Raises :class:`NoSnapshotError` when no file is left.
        """
        return self._load_matching(lambda _snap: True)

    def load_newest_available(self, wal_snaps: Iterable[WalSnapshot]) -> Snapshot:
        """The newest readable snapshot whose term and index are among ``wal_snaps``.

        ``wal_snaps`` are the snapshot records the WAL holds (see
        ``raftwal.valid_snapshot_entries``); their order does not matter.
        Unreadable files are renamed to ``<name>.broken`` as in :meth:`load`;
        readable ones that do not match are left alone. Raises
        :class:`NoSnapshotError` when none matches.
        """
        wanted = {(w.term, w.index) for w in wal_snaps}
        return self._load_matching(lambda s: (s.metadata.term, s.metadata.index) in wanted)

    def scan_newest_available(
        self, wal_snaps: Iterable[WalSnapshot]
    ) -> tuple[Snapshot | None, list[tuple[str, Error | OSError]]]:
        """What :meth:`load_newest_available` would load, without changing
        anything: the snapshot (None when none matches) and the files that
        failed to read on the way, newest first, with why."""
        wanted = {(w.term, w.index) for w in wal_snaps}
        return self._scan(lambda s: (s.metadata.term, s.metadata.index) in wanted)

    def unreadable(self) -> list[tuple[str, Error | OSError]]:
        """Every ``.snap`` file that fails to read, newest first, with why
        (nothing is changed)."""
        return self._scan(lambda _s: False)[1]

    def newest_first(self) -> Iterator[tuple[str, Snapshot | Error | OSError]]:
        """Every ``.snap`` file, newest first, read as it is reached: its
        name and the snapshot, or why it failed to read. Files purged since
        the listing (by a live writer) are passed over."""
        for name in self.snap_names():
            try:
                snap = self.read(os.path.join(self._dir, name))
            except FileNotFoundError:
                continue  # purged since the listing: not damage
            except (Error, OSError) as exc:
                yield name, exc
                continue
            yield name, snap

    def _scan(
        self, accept: Callable[[Snapshot], bool]
    ) -> tuple[Snapshot | None, list[tuple[str, Error | OSError]]]:
        broken: list[tuple[str, Error | OSError]] = []
        for name, got in self.newest_first():
            if not isinstance(got, Snapshot):
                broken.append((name, got))
            elif accept(got):
                return got, broken
        return None, broken

    def _load_matching(self, accept: Callable[[Snapshot], bool]) -> Snapshot:
        """The first candidate, newest first, that reads and satisfies ``accept``."""
        self.remove_leftover_temporaries()
        snap, broken = self._scan(accept)
        for name, exc in broken:
            path = os.path.join(self._dir, name)
            _log.warning("snap: cannot load %s (%s); renaming it to *%s", path, exc, BROKEN_SUFFIX)
            self.quarantine(name)
        if snap is None:
            raise NoSnapshotError(f"snap: no available snapshot in {self._dir}")
        return snap

    def remove_leftover_temporaries(self, *, transfers: bool = True) -> list[str]:
        """Delete what interrupted writes left: ``db.tmp*`` files of a
        database transfer (as etcd does when it starts) and this
        snapshotter's own ``<name>.snap.*.tmp`` files of a snapshot write
        cut short (by a signal or a kill); return their names.
        ``transfers=False`` leaves ``db.tmp*`` alone (a transfer may be in
        flight while the writer runs). Only a writer that holds the WAL may
        call this: on a live member it would delete a write in flight."""
        removed = []
        for name in sorted(os.listdir(self._dir)):
            if (transfers and name.startswith(_DB_TMP_PREFIX)) or _is_snap_tmp(name):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self._dir, name))
                    removed.append(name)
        return removed

    def quarantine(self, name: str) -> str | None:
        """Rename the snapshot file ``name`` that failed to load to
        ``<name>.broken``; return the new name, or None if it could not be
        renamed (logged)."""
        path = os.path.join(self._dir, name)
        try:
            os.replace(path, path + BROKEN_SUFFIX)
        except OSError as exc:
            _log.warning("snap: cannot rename %s to %s: %s", path, path + BROKEN_SUFFIX, exc)
            return None
        return name + BROKEN_SUFFIX

    # --- cleaning up ---------------------------------------------------------

    def release_snap_dbs(self, snap: Snapshot) -> list[str]:
        """Delete the ``%016x.snap.db`` files older than ``snap``; return their names.

        A file goes when its hexadecimal index is below ``snap.metadata.index``.
        Names whose prefix is not a hexadecimal uint64 are left alone.
        """
        deleted = []
        for name in sorted(os.listdir(self._dir)):
            if not name.endswith(SNAP_DB_SUFFIX):
                continue
            index = _parse_hex_u64(name[: -len(SNAP_DB_SUFFIX)])
            if index is None:
                _log.warning("snap: skipping %s: not a %%016x.snap.db name", name)
                continue
            if index < snap.metadata.index:
                os.remove(os.path.join(self._dir, name))
                deleted.append(name)
        return deleted

    def snap_db_names(self) -> list[str]:
        """The ``%016x.snap.db`` files of the directory, oldest first."""
        names = []
        for name in os.listdir(self._dir):
            if (
                name.endswith(SNAP_DB_SUFFIX)
                and _parse_hex_u64(name[: -len(SNAP_DB_SUFFIX)]) is not None
            ):
                names.append(name)
        names.sort(key=lambda n: int(n[: -len(SNAP_DB_SUFFIX)], 16))
        return names

    def purge_snap_dbs(self, keep: int) -> list[str]:
        """Delete the oldest ``.snap.db`` files so that at most ``keep``
        remain, as etcd's purge of the snapshot directory (``keep=0`` keeps
        everything). Returns the deleted names, oldest first."""
        if keep < 0:
            raise ValueError(f"keep must be >= 0, not {keep}")
        if keep == 0:
            return []
        names = self.snap_db_names()
        victims = names[: max(0, len(names) - keep)]
        for name in victims:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self._dir, name))
        return victims

    def purge_snapshots(self, keep: int) -> list[str]:
        """Delete the oldest ``.snap`` files so that at most ``keep`` remain.

        ``keep=0`` keeps everything, as etcd's ``--max-snapshots 0``. Returns
        the deleted names, oldest first.
        """
        if keep < 0:
            raise ValueError(f"keep must be >= 0, not {keep}")
        if keep == 0:
            return []
        victims = self.snap_names()[keep:]
        victims.reverse()
        for name in victims:
            os.remove(os.path.join(self._dir, name))
        return victims

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
from collections.abc import Callable, Iterable

from ._fsutil import fsync_dir
from ._native import crc32c
from .errors import CorruptionError, CRCMismatchError, EmptySnapshotError, Error, NoSnapshotError
from .messages import Snapshot, WalSnapshot, parse_snap_file, snap_file_bytes

__all__ = ["Snapshotter", "snap_file_name"]

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


def snap_file_name(term: int, index: int) -> str:
    """The file name etcd gives the snapshot taken at ``term``/``index``."""
    return f"{term:016x}-{index:016x}{SNAP_SUFFIX}"


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
        data = snap.SerializeToString()
        raw = snap_file_bytes(crc32c(data), data)
        self._write_file(snap_file_name(snap.metadata.term, snap.metadata.index), raw)

    def _write_file(self, name: str, raw: bytes) -> None:
        """Write ``raw`` to ``name`` through a fsynced temporary file and a rename."""
        final = os.path.join(self._dir, name)
        # mkstemp creates the file with mode 0600 and a name of its own: a
        # leftover from a crash can never be taken for a snapshot.
        fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=_TMP_SUFFIX, dir=self._dir)
        try:
            with open(fd, "wb", closefd=True) as f:
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(self._dir)

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

    def _scan(
        self, accept: Callable[[Snapshot], bool]
    ) -> tuple[Snapshot | None, list[tuple[str, Error | OSError]]]:
        broken: list[tuple[str, Error | OSError]] = []
        for name in self.snap_names():
            path = os.path.join(self._dir, name)
            try:
                snap = self.read(path)
            except FileNotFoundError:
                continue  # purged since the listing (by a live writer): not damage
            except (Error, OSError) as exc:
                broken.append((name, exc))
                continue
            if accept(snap):
                return snap, broken
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

"""Where the ``raftwal`` subcommands that take ``DIR`` find the WAL: a data
directory (``wal/``, ``snap/``), an etcd member directory or a WAL directory
itself, and how they read it without a lock."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .._native import LogRuns
from ..errors import SnapshotNotFoundError, WALNotFoundError
from ..wal import WAL, valid_snapshot_entries
from .logruns import read_runs
from .output import CommandError

__all__ = ["read_runs_from", "replay", "wal_dirs"]


def _dirs(path: Path) -> tuple[Path, Path | None]:
    """(wal dir, snap dir or None) of a data dir, member dir or WAL dir."""
    if (path / "wal").is_dir():
        return path / "wal", (path / "snap" if (path / "snap").is_dir() else None)
    if (path / "member" / "wal").is_dir():
        return _dirs(path / "member")
    return path, None


def wal_dirs(command: str, dir_arg: str) -> tuple[Path, Path | None]:
    """(wal dir, snap dir or None) of ``DIR``; :class:`CommandError` (exit
    status 2) when it does not exist, is not a directory, or is neither a
    data or member directory (a ``wal/`` inside) nor a directory holding a
    ``*.wal`` segment. A data directory whose ``wal/`` lost every segment
    is damage, found later (exit status 1)."""
    path = Path(dir_arg)
    if not path.exists():
        raise CommandError(f"{dir_arg}: no such file or directory", "FileNotFoundError")
    if not path.is_dir():
        raise CommandError(f"{dir_arg}: not a directory", "NotADirectoryError")
    wal_dir, snap_dir = _dirs(path)
    if wal_dir == path and not any(p.suffix == ".wal" for p in path.iterdir()):
        raise CommandError(
            f"{dir_arg}: not a WAL directory (no wal/ inside, no *.wal segment)",
            "NotAWALDirectory",
        )
    return wal_dir, snap_dir


_T = TypeVar("_T")


def replay(wal_dir: Path, what: str, read: Callable[[WAL], _T]) -> tuple[int, _T]:
    """``read`` applied to the WAL opened without a lock: from index 1 when
    it still holds every entry, otherwise from its newest snapshot record
    (old segments purged, as on a long-running etcd member), saying so on
    stderr. Returns the index of the first entry read, and what ``read``
    returned."""
    try:
        with WAL.open_for_read(wal_dir) as w:
            return 1, read(w)
    except (WALNotFoundError, SnapshotNotFoundError):
        snaps = valid_snapshot_entries(wal_dir)
        if not snaps:
            raise
    for attempt in range(3):
        snap = snaps[-1]
        try:
            with WAL.open_for_read(wal_dir, snap) as w:
                got = read(w)
        except (WALNotFoundError, SnapshotNotFoundError):
            # purged meanwhile by a live writer, behind a newer snapshot
            snaps = valid_snapshot_entries(wal_dir)
            if attempt == 2 or not snaps or snaps[-1] == snap:
                raise
            continue
        print(
            f"raftwal {what}: entries up to {snap.index} were compacted away; "
            f"reading from the snapshot record at {snap.index} (term {snap.term})",
            file=sys.stderr,
        )
        return snap.index + 1, got
    raise AssertionError("unreachable")


def read_runs_from(wal_dir: Path, what: str) -> tuple[int, LogRuns]:
    """The log kept as runs, its files open for a second pass: (index of
    the first entry, the runs)."""
    first, (_, _, log) = replay(wal_dir, what, read_runs)
    return first, log

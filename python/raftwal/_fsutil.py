"""fsync helpers for what Python writes itself (snapshot files, the
PySyncObj journal's side files); the WAL's are in the native core."""

from __future__ import annotations

import os

__all__ = ["fsync_dir", "fsync_file"]


def fsync_dir(dirpath: str | os.PathLike[str]) -> None:
    """Make the directory's entries (a rename, a new file) durable."""
    fd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike[str]) -> None:
    """fsync a file written without it, then its directory entry."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(os.path.dirname(os.path.abspath(path)))

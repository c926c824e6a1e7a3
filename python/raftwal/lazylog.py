"""The entry list of a MemoryStorage whose recovered log stays on disk.

``raftwal.open(..., bounded_memory=True)`` replays the WAL into a
:class:`raftwal._native.DiskLog` (12 bytes of index per entry: where the
frame is and the CRC chain before it; terms as runs) instead of building an
``Entry`` per record. :class:`LazyEntries` puts that behind the list
operations MemoryStorage uses, reading entries back (and checking their CRC
again) only when they are asked for. Entries appended after recovery are
kept in memory, as usual, until a snapshot compacts them away.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import overload

from ._native import DiskLog
from .messages import Entry

__all__ = ["LazyEntries"]


class LazyEntries:
    """``[dummy] + disk entries + appended entries`` with list semantics
    (indexing, slicing, ``del l[k:]``, ``del l[:k]``, ``l[0] = x``, ``extend``)."""

    __slots__ = ("_disk", "_dummy", "_tail")

    def __init__(self, dummy: Entry, disk: DiskLog) -> None:
        self._dummy = dummy
        self._disk = disk
        self._tail: list[Entry] = []

    def __len__(self) -> int:
        return 1 + len(self._disk) + len(self._tail)

    def _range(self, start: int, stop: int) -> list[Entry]:
        out: list[Entry] = []
        if start >= stop:
            return out
        if start == 0:
            out.append(self._dummy)
            start = 1
        d = len(self._disk)
        if start <= d:
            out.extend(self._disk.read(start - 1, min(stop - 1, d), Entry))
        if stop - 1 > d:
            out.extend(self._tail[max(start - 1 - d, 0) : stop - 1 - d])
        return out

    @overload
    def __getitem__(self, k: int) -> Entry: ...
    @overload
    def __getitem__(self, k: slice) -> list[Entry]: ...
    def __getitem__(self, k: int | slice) -> Entry | list[Entry]:
        n = len(self)
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            if step != 1:
                raise ValueError("LazyEntries slices take no step")
            return self._range(start, stop)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError("LazyEntries index out of range")
        if k == 0:
            return self._dummy
        d = len(self._disk)
        if k <= d:
            return self._disk.read(k - 1, k, Entry)[0]  # type: ignore[no-any-return]
        return self._tail[k - 1 - d]

    def term_at(self, k: int) -> int:
        """The term at position ``k`` without reading the entry from disk."""
        if k == 0:
            return self._dummy.term
        d = len(self._disk)
        if k <= d:
            return self._disk.term(k - 1)
        return self._tail[k - 1 - d].term

    def __setitem__(self, k: int, value: Entry) -> None:
        if k != 0:
            raise IndexError("only the dummy entry (position 0) can be replaced")
        self._dummy = value

    def __delitem__(self, k: slice) -> None:
        if not isinstance(k, slice) or k.step not in (None, 1):
            raise TypeError("LazyEntries supports del l[k:] and del l[:k]")
        d = len(self._disk)
        if k.stop is None and k.start is not None:
            keep = max(k.start, 1) - 1  # real entries kept
            if keep <= d:
                self._disk.truncate(keep)
                self._tail.clear()
            else:
                del self._tail[keep - d :]
        elif k.start is None and k.stop is not None:
            n = k.stop  # positions [0, n) go; the entry at n becomes position 0
            if n <= 0:
                return
            new_first = self[n] if n < len(self) else self._dummy
            drop = n  # real entries 1..n (the one at n moves into the dummy slot)
            from_disk = min(drop, d)
            self._disk.drop_front(from_disk)
            del self._tail[: drop - from_disk]
            self._dummy = new_first
        else:
            raise TypeError("LazyEntries supports del l[k:] and del l[:k]")

    def extend(self, items: Iterable[Entry]) -> None:
        self._tail.extend(items)

    def close(self) -> None:
        """Let go of the segment files; entries still on disk can no longer
        be read (:class:`raftwal.WALClosedError`)."""
        self._disk.close()

    @property
    def open_files(self) -> int:
        """Segment files the on-disk part holds open."""
        return self._disk.open_files

    @property
    def index_bytes(self) -> int:
        """Memory the on-disk part's index takes."""
        return self._disk.footprint

"""The Raft log storage interface and its in-memory implementation.

:class:`Storage` is etcd's ``raft.Storage`` interface: what a Raft core reads
its log, its hard state and its latest snapshot through.
:class:`MemoryStorage` is etcd's ``raft.MemoryStorage``, with the same
semantics case for case:

* the log is a list whose element 0 is a *dummy* entry holding only the
  index and term of the last compacted (or snapshotted) entry, so
  ``first_index() == dummy.index + 1`` and
  ``last_index() == dummy.index + len(list) - 1``;
* where etcd returns an error, the matching :mod:`raftwal.errors` class is
  raised with etcd's message;
* where etcd panics (or would index out of range), :class:`ValueError` is
  raised and the storage is left unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Protocol, overload, runtime_checkable

from ._native import EntryBase, MemLog
from .errors import CompactedError, SnapOutOfDateError, UnavailableError
from .messages import ConfState, Entry, HardState, Snapshot, SnapshotMetadata

__all__ = ["EntryList", "MemoryStorage", "Storage"]

# etcd's error strings (raft/storage.go), word for word.
_COMPACTED = "requested index is unavailable due to compaction"
_SNAP_OUT_OF_DATE = "requested index is older than the existing snapshot"
_UNAVAILABLE = "requested entry at index is unavailable"

_U64_MAX = (1 << 64) - 1


@runtime_checkable
class Storage(Protocol):
    """etcd's ``raft.Storage``: read access to a Raft node's persisted state.

    Index arguments are log indexes (non-negative ints). Implementations
    raise :class:`~raftwal.CompactedError`,
    :class:`~raftwal.UnavailableError` or
    :class:`~raftwal.SnapshotTemporarilyUnavailableError` where etcd's
    interface returns the matching error.
    """

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The saved hard state and the conf state of the latest snapshot."""
        ...

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """The entries with indexes in ``[lo, hi)``.

        ``max_size`` caps the summed serialized size of the result
        (``None``: no cap), but at least one entry is returned if any.
        """
        ...

    def term(self, i: int) -> int:
        """The term of entry ``i``, for ``first_index() - 1 <= i <= last_index()``."""
        ...

    def last_index(self) -> int:
        """The index of the last entry in the log."""
        ...

    def first_index(self) -> int:
        """The index of the first entry possibly available through :meth:`entries`."""
        ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot."""
        ...


class EntryList(Protocol):
    """The entry container a :class:`MemoryStorage` keeps its log in: what
    it uses of a ``list[Entry]`` (position 0 is the dummy entry). A
    ``list`` is one; so are a log kept on disk (``raftwal.lazylog``) and a
    packed one (``raftwal._native.MemLog``, what :func:`raftwal.open`
    recovers into), which may add ``term_at(k)`` (a term without building
    the entry), ``size_limit(lo, hi, max_size)`` (where ``max_size`` cuts
    ``[lo, hi)``) and ``reset(index, term)`` (only a new dummy left)."""

    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, k: int) -> Entry: ...
    @overload
    def __getitem__(self, k: slice) -> list[Entry]: ...
    def __setitem__(self, k: int, value: Entry) -> None: ...
    def __delitem__(self, k: slice) -> None: ...
    def extend(self, items: Iterable[Entry]) -> None: ...


def _copy_conf_state(cs: ConfState) -> ConfState:
    return ConfState(
        voters=cs.voters,
        learners=cs.learners,
        voters_outgoing=cs.voters_outgoing,
        learners_next=cs.learners_next,
        auto_leave=cs.auto_leave,
    )


def _check_entries(entries: object) -> None:
    """A ``TypeError`` that says what was wanted, for anything but a
    sequence of :class:`Entry`."""
    if isinstance(entries, str | bytes | bytearray | memoryview) or not isinstance(
        entries, Sequence
    ):
        raise TypeError(
            f"entries must be a sequence of raftwal.Entry, not {type(entries).__name__}"
        )
    # one pass in C over the types (a recovered log has millions of entries)
    if all(issubclass(t, EntryBase) for t in set(map(type, entries))):
        return
    for k, e in enumerate(entries):
        if not isinstance(e, EntryBase):
            raise TypeError(f"entries[{k}] must be a raftwal.Entry, not {type(e).__name__}")


def _check_type(name: str, value: object, cls: type) -> None:
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be a raftwal.{cls.__name__}, not {type(value).__name__}")


def _copy_snapshot(snap: Snapshot) -> Snapshot:
    # A structural copy of the small parts; ``data`` is shared, never copied.
    md = snap.metadata
    return Snapshot(
        data=snap.data if snap.HasField("data") else None,
        metadata=SnapshotMetadata(
            conf_state=_copy_conf_state(md.conf_state), index=md.index, term=md.term
        ),
    )


class MemoryStorage:
    """etcd's ``raft.MemoryStorage``: a :class:`Storage` backed by a Python list.

    Entries are kept by reference: :meth:`append` stores the objects it is
    given and :meth:`entries` returns (a new list of) those same objects, so
    an entry must not be mutated once appended. Snapshots, hard states and
    conf states are copied on the way in and out (snapshot ``data`` is
    shared, not copied).

    Every method holds one :class:`threading.Lock`, so a storage may be
    shared between threads (etcd's raft goroutine and its application
    goroutine); appends must still come in log order from their callers.
    """

    __slots__ = ("_ents", "_hard_state", "_lock", "_snapshot")

    def __init__(
        self, entries: EntryList | None = None, *, snapshot: Snapshot | None = None
    ) -> None:
        """An empty storage (only the dummy entry ``(index 0, term 0)``), or
        one that starts at ``snapshot`` (as :meth:`apply_snapshot` would)
        holding the log in ``entries``: an :class:`EntryList` whose
        position 0 is the dummy entry at the snapshot's index and term
        (``ValueError`` otherwise), taken as is, not copied."""
        snap = _copy_snapshot(snapshot) if snapshot is not None else Snapshot()
        md = snap.metadata
        ents: EntryList
        if entries is None:
            ents = [Entry(term=md.term, index=md.index)]
        else:
            if len(entries) == 0 or (entries[0].index, entries[0].term) != (md.index, md.term):
                raise ValueError(
                    "entries must start with the dummy entry at the snapshot's index and term"
                )
            ents = entries
        self._lock = threading.Lock()
        self._hard_state = HardState()
        self._snapshot = snap
        # _ents[k] is log position _ents[0].index + k; _ents[0] is the dummy.
        self._ents = ents

    def close(self) -> None:
        """Let go of what the entry container holds outside memory (the
        segment files of a log kept on disk); a list holds nothing."""
        with self._lock:
            close = getattr(self._ents, "close", None)
        if close is not None:
            close()

    def _serves_copies(self) -> bool:
        """Whether :meth:`entries` builds new objects (a packed log) rather
        than returning the ones appended."""
        return isinstance(self._ents, MemLog)

    def __repr__(self) -> str:
        """A short summary: the first and last index and the snapshot index."""
        with self._lock:
            off = self._ents[0].index
            last = off + len(self._ents) - 1
            snap = self._snapshot.metadata.index
        return f"MemoryStorage(first_index={off + 1}, last_index={last}, snapshot_index={snap})"

    # --- Storage protocol -------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The hard state last set and the conf state of the current snapshot."""
        with self._lock:
            hs = self._hard_state
            cs = self._snapshot.metadata.conf_state
            return HardState(term=hs.term, vote=hs.vote, commit=hs.commit), _copy_conf_state(cs)

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """The entries with indexes in ``[lo, hi)``, as etcd's ``Entries``.

        Raises :class:`~raftwal.CompactedError` if ``lo`` is at or below the
        dummy entry, :class:`ValueError` if ``hi > last_index() + 1`` or
        ``lo > hi``, and :class:`~raftwal.UnavailableError` if the storage
        holds no entry at all (only the dummy). With ``max_size`` (``None``:
        unlimited) the result is cut after the longest prefix whose summed
        :meth:`Entry.ByteSize` does not exceed it, but always keeps the
        first entry.
        """
        with self._lock:
            ents = self._ents
            offset = ents[0].index
            if lo <= offset:
                raise CompactedError(_COMPACTED)
            n = len(ents)
            last = offset + n - 1
            if hi > last + 1:
                raise ValueError(f"entries' hi({hi}) is out of bound lastindex({last})")
            if n == 1:
                raise UnavailableError(_UNAVAILABLE)
            if lo > hi:
                raise ValueError(f"entries' lo({lo}) is greater than hi({hi})")
            start = lo - offset
            stop = hi - offset
            if max_size is None or start == stop:
                return ents[start:stop]
            size_limit = getattr(ents, "size_limit", None)  # a packed log
            if size_limit is not None:
                cap = min(max(max_size, 0), _U64_MAX)
                return ents[start : size_limit(start, stop, cap)]
            # Sizes are computed only until the limit is crossed.
            size = ents[start].ByteSize()
            end = start + 1
            while end < stop:
                size += ents[end].ByteSize()
                if size > max_size:
                    break
                end += 1
            return ents[start:end]

    def term(self, i: int) -> int:
        """The term of entry ``i`` (the dummy's term for ``i == first_index() - 1``).

        Raises :class:`~raftwal.CompactedError` below the dummy entry and
        :class:`~raftwal.UnavailableError` beyond the last index.
        """
        with self._lock:
            ents = self._ents
            offset = ents[0].index
            if i < offset:
                raise CompactedError(_COMPACTED)
            k = i - offset
            if k >= len(ents):
                raise UnavailableError(_UNAVAILABLE)
            term_at = getattr(ents, "term_at", None)  # a log kept on disk
            if term_at is not None:
                return term_at(k)  # type: ignore[no-any-return]
            return ents[k].term

    def last_index(self) -> int:
        """The index of the last entry (the dummy's index when the log is empty)."""
        with self._lock:
            return self._ents[0].index + len(self._ents) - 1

    def first_index(self) -> int:
        """One past the dummy entry's index."""
        with self._lock:
            return self._ents[0].index + 1

    def snapshot(self) -> Snapshot:
        """A copy of the current snapshot (empty, index 0, until one is applied or created)."""
        with self._lock:
            return _copy_snapshot(self._snapshot)

    # --- mutation ---------------------------------------------------------

    def set_hard_state(self, hs: HardState) -> None:
        """Store ``hs`` (a copy) as the hard state :meth:`initial_state` returns."""
        _check_type("hs", hs, HardState)
        copy = HardState(term=hs.term, vote=hs.vote, commit=hs.commit)
        with self._lock:
            self._hard_state = copy

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log with ``snap``: the dummy becomes its index and term.

        Raises :class:`~raftwal.SnapOutOfDateError` unless ``snap`` is newer
        (a strictly greater index) than the current snapshot, so an index-0
        snapshot is refused even by a fresh storage. The hard state is
        left as it is.
        """
        _check_type("snap", snap, Snapshot)
        copy = _copy_snapshot(snap)
        md = copy.metadata
        with self._lock:
            if self._snapshot.metadata.index >= md.index:
                raise SnapOutOfDateError(_SNAP_OUT_OF_DATE)
            self._snapshot = copy
            reset = getattr(self._ents, "reset", None)  # a packed log stays one
            if reset is not None:
                reset(md.index, md.term)
            else:
                self._ents = [Entry(term=md.term, index=md.index)]

    def build_snapshot(
        self, i: int, conf_state: ConfState | None = None, data: bytes | None = None
    ) -> Snapshot:
        """The snapshot :meth:`create_snapshot` would make at ``i``, raising
        what it raises, without making it current (for a storage that must
        persist a snapshot before showing it)."""
        cs = _copy_conf_state(conf_state) if conf_state is not None else None
        with self._lock:
            return _copy_snapshot(self._build(i, cs, data))

    def _build(self, i: int, cs: ConfState | None, data: bytes | None) -> Snapshot:
        old = self._snapshot
        if i <= old.metadata.index:
            raise SnapOutOfDateError(_SNAP_OUT_OF_DATE)
        ents = self._ents
        offset = ents[0].index
        last = offset + len(ents) - 1
        if i > last:
            raise ValueError(f"snapshot {i} is out of bound lastindex({last})")
        if i < offset:
            raise ValueError(f"snapshot {i} is below the compacted index({offset})")
        md = SnapshotMetadata(
            conf_state=cs if cs is not None else old.metadata.conf_state,
            index=i,
            term=ents[i - offset].term,
        )
        return Snapshot(data=data, metadata=md)

    def create_snapshot(
        self, i: int, conf_state: ConfState | None = None, data: bytes | None = None
    ) -> Snapshot:
        """Make the snapshot at index ``i`` current and return (a copy of) it.

        Its term is entry ``i``'s; ``conf_state=None`` keeps the previous
        snapshot's conf state; ``data`` replaces the previous data (``None``
        included). The log is not compacted. Raises
        :class:`~raftwal.SnapOutOfDateError` if ``i`` is not above the
        current snapshot's index, :class:`ValueError` if ``i`` is past the
        last index or below the dummy entry.
        """
        cs = _copy_conf_state(conf_state) if conf_state is not None else None
        with self._lock:
            self._snapshot = self._build(i, cs, data)
            return _copy_snapshot(self._snapshot)

    def compact(self, compact_index: int) -> None:
        """Discard the entries before ``compact_index``; it becomes the dummy entry.

        The new dummy keeps only the index and term of entry
        ``compact_index``. Raises :class:`~raftwal.CompactedError` if
        ``compact_index`` is not above the current dummy, :class:`ValueError`
        if it is past the last index.
        """
        with self._lock:
            ents = self._ents
            offset = ents[0].index
            if compact_index <= offset:
                raise CompactedError(_COMPACTED)
            last = offset + len(ents) - 1
            if compact_index > last:
                raise ValueError(f"compact {compact_index} is out of bound lastindex({last})")
            k = compact_index - offset
            keep = ents[k]
            del ents[:k]
            ents[0] = Entry(term=keep.term, index=keep.index)

    def append(self, entries: Sequence[Entry]) -> None:
        """Append ``entries`` (consecutive indexes) to the log, as etcd's ``Append``.

        Entries at or below the dummy (already compacted) are ignored.
        If the first remaining entry is inside the log, the log is first
        truncated just before it, whatever the terms (the caller has
        already found the conflict). Raises :class:`ValueError` ("missing
        log entry") if it would leave a gap after the last index. Like
        etcd, the batch itself is not checked for consecutive indexes.
        """
        _check_entries(entries)
        self._append(entries)

    def _append(self, entries: Sequence[Entry]) -> None:
        # append without the type check, for callers that made it already
        n = len(entries)
        if n == 0:
            return
        with self._lock:
            ents = self._ents
            offset = ents[0].index
            first = offset + 1
            start = entries[0].index
            if start + n - 1 < first:
                return  # all of them are compacted already
            new: Sequence[Entry] | islice[Entry] = entries
            if start < first:
                skip = first - start
                if isinstance(entries, list | tuple):
                    new = entries[skip:]
                else:
                    new = islice(entries, skip, None)
                start = first
            k = start - offset
            have = len(ents)
            if k < have:
                del ents[k:]
            elif k > have:
                raise ValueError(
                    f"missing log entry [last: {offset + have - 1}, append at: {start}]"
                )
            ents.extend(new)

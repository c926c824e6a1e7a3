"""asyncio helpers: durable saves without blocking the event loop.

raftwal's group commit already runs off the caller's thread: ``save_async``
appends the records and returns a :class:`concurrent.futures.Future` that a
background thread resolves once an fsync covers them. These helpers run
``save_async`` itself on a worker thread too (appending may cut a segment:
a truncate, fsyncs, a rename and a directory sync), one worker per WAL so
that saves keep their call order, and turn the result into an awaitable:
one event loop can keep hundreds of saves in flight, they share fsyncs, and
no file I/O happens on the loop's thread::

    import raftwal
    from raftwal import aio

    async with await aio.aopen("data") as storage:       # closed off the loop
        await aio.asave(storage, hard_state, entries)    # durable on return
        pending = [aio.submit(storage, hs, [e]) for e in batch]  # in log order
        await asyncio.gather(*pending)                   # one or a few fsyncs

Order: a save takes its place in the log in the order :func:`submit` is
called (or the coroutines of :func:`asave` start running), so call them in
index order. Cancelling an awaiting task does not undo or lose the save: it
is appended and becomes durable with the next fsync; the wait is shielded
so the WAL's own future is never cancelled. A save issued before the target
is closed completes; one issued after raises :class:`~raftwal.WALClosedError`.

Slow, rare operations (opening and recovering, snapshots, closing) run in
a worker thread through :func:`asyncio.to_thread`. ``async with`` on a
:class:`~raftwal.DurableStorage` or a :class:`~raftwal.WAL` closes it that
way on exit (pending saves drain first), as :func:`aclose` and the
objects' own ``aclose()`` do.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Protocol

from .durable import DurableStorage
from .messages import ConfState, Entry, HardState, Snapshot
from .restart import open as _open
from .wal import WAL, OffLoop, shielded

__all__ = ["aclose", "acreate_snapshot", "afsync", "aopen", "asave", "submit"]


class _SavesAsync(Protocol):
    def save_async(self, hard_state: HardState, entries: Sequence[Entry] = ()) -> Future[None]: ...


def _start(
    target: WAL | DurableStorage | _SavesAsync,
    hard_state: HardState,
    entries: Sequence[Entry],
    snapshot: Snapshot | None,
) -> Future[None]:
    if snapshot is not None:
        if not isinstance(target, DurableStorage):
            raise TypeError("a snapshot can only be saved through a DurableStorage")
        return target.save_async(hard_state, entries, snapshot)
    return target.save_async(hard_state, entries)


# For targets other than a WAL or a DurableStorage (which have their own).
_shared_off_loop = OffLoop()


def _off_loop(target: WAL | DurableStorage | _SavesAsync) -> OffLoop:
    if isinstance(target, (WAL, DurableStorage)):
        return target._off_loop
    return _shared_off_loop


def submit(
    target: WAL | DurableStorage | _SavesAsync,
    hard_state: HardState,
    entries: Sequence[Entry] = (),
    snapshot: Snapshot | None = None,
) -> asyncio.Future[None]:
    """Queue the append (saves keep their call order; it runs on a worker
    thread, never the loop's) and return an awaitable that resolves once the
    save is durable. Must be called from a running event loop.

    ``target`` is a :class:`~raftwal.WAL` or a :class:`~raftwal.DurableStorage`
    (anything with ``save_async``); ``snapshot`` needs a DurableStorage."""
    loop = asyncio.get_running_loop()  # RuntimeError outside a running loop
    if snapshot is not None and not isinstance(target, DurableStorage):
        raise TypeError("a snapshot can only be saved through a DurableStorage")
    ents = list(entries)
    done = _off_loop(target).submit(lambda: _start(target, hard_state, ents, snapshot))
    return shielded(done, loop)


async def asave(
    target: WAL | DurableStorage | _SavesAsync,
    hard_state: HardState,
    entries: Sequence[Entry] = (),
    snapshot: Snapshot | None = None,
) -> None:
    """Save and wait until it is durable, without blocking the event loop.
    Many concurrent ``asave`` calls share fsyncs (group commit)."""
    await submit(target, hard_state, entries, snapshot)


async def afsync(wal: WAL) -> None:
    """``wal.sync()`` (flush and fdatasync) in a worker thread."""
    await asyncio.to_thread(wal.sync)


async def aopen(data_dir: str | os.PathLike[str], **kwargs: Any) -> DurableStorage:
    """:func:`raftwal.open` (creation or full recovery) in a worker thread."""
    return await asyncio.to_thread(_open, data_dir, **kwargs)


async def acreate_snapshot(
    storage: DurableStorage, index: int, conf_state: ConfState | None, data: bytes | None
) -> Snapshot:
    """``storage.create_snapshot(...)`` (files written and synced, old ones
    purged) in a worker thread."""
    return await asyncio.to_thread(storage.create_snapshot, index, conf_state, data)


async def aclose(target: WAL | DurableStorage) -> None:
    """Close (final sync, pending futures settled) in a worker thread."""
    await asyncio.to_thread(target.close)

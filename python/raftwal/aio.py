"""asyncio helpers: durable saves without blocking the event loop.

raftwal's group commit already runs off the caller's thread: ``save_async``
appends the records and returns a :class:`concurrent.futures.Future` that a
background thread resolves once an fsync covers them. These helpers turn
that future into an awaitable, so one event loop can keep hundreds of saves
in flight and they share fsyncs::

    import raftwal
    from raftwal import aio

    storage = await aio.aopen("data")
    await aio.asave(storage, hard_state, entries)        # durable on return
    pending = [aio.submit(storage, hs, [e]) for e in batch]  # in log order
    await asyncio.gather(*pending)                       # one or a few fsyncs

Order: a save takes its place in the log when :func:`submit` is called (or
when the coroutine of :func:`asave` starts running), so call them in index
order. Cancelling an awaiting task does not undo or lose the save: the
records are already in the log and become durable with the next fsync; the
wait is shielded so the WAL's own future is never cancelled.

Slow, rare operations (opening and recovering, snapshots, closing) run in
a worker thread through :func:`asyncio.to_thread`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Protocol

from .messages import ConfState, Entry, HardState, Snapshot
from .node import DurableStorage
from .node import open as _open
from .wal import WAL

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


def _consume(fut: asyncio.Future[None]) -> None:
    # The shielded inner future may finish after its awaiter was cancelled:
    # retrieve its outcome so asyncio does not log "exception never retrieved".
    if not fut.cancelled():
        fut.exception()


def submit(
    target: WAL | DurableStorage | _SavesAsync,
    hard_state: HardState,
    entries: Sequence[Entry] = (),
    snapshot: Snapshot | None = None,
) -> asyncio.Future[None]:
    """Append now (in call order) and return an awaitable that resolves once
    the save is durable. Must be called from a running event loop.

    ``target`` is a :class:`~raftwal.WAL` or a :class:`~raftwal.DurableStorage`
    (anything with ``save_async``); ``snapshot`` needs a DurableStorage."""
    loop = asyncio.get_running_loop()  # RuntimeError outside a running loop
    inner = asyncio.wrap_future(_start(target, hard_state, entries, snapshot), loop=loop)
    inner.add_done_callback(_consume)
    return asyncio.shield(inner)


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

"""raftwal.aio: durable saves awaited from one event loop, which keeps running."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import raftwal
from raftwal import ConfState, Entry, HardState, aio


def _entry(i: int) -> Entry:
    return Entry(term=1, index=i, data=f"entry {i}".encode())


async def _ticker(stop: asyncio.Event, ticks: list[int]) -> None:
    while not stop.is_set():
        ticks[0] += 1
        await asyncio.sleep(0)


def test_many_concurrent_asaves_share_fsyncs_and_never_block_the_loop(tmp_path: Path) -> None:
    n = 400

    async def main() -> tuple[int, int]:
        storage = await aio.aopen(tmp_path / "d", metadata=b"aio")
        stop, ticks = asyncio.Event(), [0]
        ticker = asyncio.create_task(_ticker(stop, ticks))
        await asyncio.sleep(0)
        # submit() appends in call order; the awaits then overlap
        pending = [
            aio.submit(storage, HardState(1, 1, i - 1), [_entry(i)]) for i in range(1, n + 1)
        ]
        before = ticks[0]
        await asyncio.gather(*pending)
        during = ticks[0] - before
        stop.set()
        await ticker
        assert storage.durable_index == n
        assert storage.last_index() == n
        await aio.aclose(storage)
        return during, ticks[0]

    during, total = asyncio.run(main())
    assert during > 0, "the event loop did not run while the saves were in flight"
    assert total > 0
    with raftwal.open(tmp_path / "d") as s:
        assert s.last_index() == n
        assert [e.data for e in s.entries(1, n + 1)] == [_entry(i).data for i in range(1, n + 1)]


def test_asave_on_a_wal_and_coroutines_started_in_order(tmp_path: Path) -> None:
    async def main() -> None:
        w = raftwal.WAL.create(tmp_path / "wal", b"m")
        stop, ticks = asyncio.Event(), [0]
        ticker = asyncio.create_task(_ticker(stop, ticks))
        await asyncio.gather(
            *(aio.asave(w, HardState(2, 1, 0), [_entry(i)]) for i in range(1, 201))
        )
        assert w.durable_index == 200
        await aio.afsync(w)
        stop.set()
        await ticker
        assert ticks[0] > 0
        await aio.aclose(w)

    asyncio.run(main())
    with raftwal.WAL.open_for_read(tmp_path / "wal") as w:
        md, hs, ents = w.read_all()
    assert md == b"m" and hs.term == 2
    assert [e.index for e in ents] == list(range(1, 201))


def test_a_cancelled_awaiter_loses_nothing_and_later_saves_still_resolve(tmp_path: Path) -> None:
    async def main() -> None:
        w = raftwal.WAL.create(tmp_path / "wal")
        task = asyncio.create_task(aio.asave(w, HardState(1, 1, 0), [_entry(1)]))
        await asyncio.sleep(0)  # the save is in the log now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the group-commit thread survived: later saves become durable
        await asyncio.wait_for(aio.asave(w, HardState(1, 1, 1), [_entry(2)]), timeout=30)
        assert w.durable_index == 2
        await aio.aclose(w)

    asyncio.run(main())
    with raftwal.WAL.open_for_read(tmp_path / "wal") as w:
        assert [e.index for e in w.read_all()[2]] == [1, 2]


def test_snapshot_through_asave_and_acreate_snapshot(tmp_path: Path) -> None:
    async def main() -> None:
        s = await aio.aopen(tmp_path / "d", snapshot_count=5, catch_up_entries=0)
        for i in range(1, 11):
            await aio.asave(s, HardState(1, 1, i), [_entry(i)])
        snap = await aio.acreate_snapshot(s, 8, ConfState(voters=[1]), b"state@8")
        assert snap.metadata.index == 8
        w = raftwal.WAL.create(tmp_path / "plain")
        with pytest.raises(TypeError):
            aio.submit(w, HardState(1, 1, 1), [], snapshot=snap)
        await aio.aclose(w)
        await aio.aclose(s)

    asyncio.run(main())
    with raftwal.open(tmp_path / "d") as s:
        assert s.snapshot().metadata.index == 8
        assert s.snapshot().data == b"state@8"
        assert s.last_index() == 10


def test_submit_needs_a_running_loop(tmp_path: Path) -> None:
    with raftwal.WAL.create(tmp_path / "wal") as w, pytest.raises(RuntimeError):
        aio.submit(w, HardState(1, 1, 0), [_entry(1)])


def test_wal_and_storage_asave_survive_cancelled_waiters(tmp_path: Path) -> None:
    """WAL.asave / DurableStorage.asave: a cancelled waiter neither cancels
    its save nor stops the group-commit thread."""

    async def main() -> None:
        with raftwal.WAL.create(tmp_path / "w") as w:
            tasks = [
                asyncio.ensure_future(w.asave(HardState(1, 1, i - 1), [Entry(term=1, index=i)]))
                for i in range(1, 51)
            ]
            await asyncio.sleep(0)
            for t in tasks[::3]:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await w.asave(HardState(1, 1, 50), [Entry(term=1, index=51)])
            assert w.durable_index == 51
        with raftwal.open(tmp_path / "d") as s:
            t = asyncio.ensure_future(s.asave(HardState(1, 1, 0), [Entry(term=1, index=1)]))
            await asyncio.sleep(0)
            t.cancel()
            await asyncio.gather(t, return_exceptions=True)
            await s.asave(HardState(1, 1, 1), [Entry(term=1, index=2)])
            assert s.last_index() == 2

    asyncio.run(main())
    with raftwal.WAL.open_for_read(tmp_path / "w") as r:
        assert [e.index for e in r.read_all()[2]] == list(range(1, 52))


def test_asave_appends_off_the_event_loop_in_call_order(tmp_path: Path) -> None:
    """Appending may cut a segment and fsync: asave never does it on the
    loop's thread, and saves still land in the order they were awaited."""
    import threading
    from collections.abc import Sequence
    from concurrent.futures import Future

    seen: list[tuple[int, int]] = []

    class SpyWAL(raftwal.WAL):
        __slots__ = ()

        def save_async(self, hard_state: HardState, entries: Sequence[Entry] = ()) -> Future[None]:
            seen.append((threading.get_ident(), entries[0].index))
            return super().save_async(hard_state, entries)

    async def main() -> None:
        with SpyWAL.create(tmp_path / "w", segment_size=1) as w:  # a cut on every save
            tasks = [
                asyncio.ensure_future(w.asave(HardState(1, 1, i - 1), [Entry(term=1, index=i)]))
                for i in range(1, 41)
            ]
            await asyncio.gather(*tasks)
            assert w.durable_index == 40
        loop_thread = threading.get_ident()
        assert seen and all(t != loop_thread for t, _ in seen)
        assert [i for _, i in seen] == list(range(1, 41))

    asyncio.run(main())
    with raftwal.WAL.open_for_read(tmp_path / "w") as r:
        assert [e.index for e in r.read_all()[2]] == list(range(1, 41))


def test_async_with_closes_off_the_loop(tmp_path: Path) -> None:
    async def main() -> tuple[bool, bool]:
        async with await aio.aopen(tmp_path / "data") as s:
            pending = [
                aio.submit(s, HardState(term=1, commit=i), [_entry(i)]) for i in range(1, 50)
            ]
            await asyncio.gather(*pending)
        with raftwal.WAL.create(tmp_path / "wal") as w:
            async with w:
                fut = w.save_async(HardState(term=1), [_entry(1)])
            assert fut.done()
        return s.wal.closed, w.closed

    assert asyncio.run(main()) == (True, True)
    with raftwal.open(tmp_path / "data", recovery="strict") as s:
        assert s.last_index() == 49

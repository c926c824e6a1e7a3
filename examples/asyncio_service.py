"""An asyncio service that saves to raftwal and stays responsive.

    python examples/asyncio_service.py [DATA_DIR]

A writer task keeps up to 64 saves in flight through ``raftwal.aio`` (each
durable when its await returns; concurrent ones share fsyncs) while a
ticker task measures the event loop's lag: how late its 5 ms sleeps wake
up. No file I/O happens on the loop's thread, so the lag stays near the
scheduler's own. At the end the storage is reopened and every acknowledged
entry is checked.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import raftwal
from raftwal import Entry, HardState, aio

SAVES = 2000
IN_FLIGHT = 64


async def ticker(stop: asyncio.Event, lags: list[float]) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(0.005)
        lags.append(time.perf_counter() - t - 0.005)


async def writer(storage: raftwal.DurableStorage) -> int:
    acked = 0
    window: list[asyncio.Future[None]] = []
    for index in range(1, SAVES + 1):
        entry = Entry(term=1, index=index, data=b"event %d" % index)
        window.append(aio.submit(storage, HardState(term=1, vote=1, commit=index), [entry]))
        if len(window) == IN_FLIGHT:
            await asyncio.gather(*window)
            acked += len(window)
            window.clear()
    await asyncio.gather(*window)
    return acked + len(window)


async def main(data_dir: Path) -> None:
    storage = await aio.aopen(data_dir)
    stop = asyncio.Event()
    lags: list[float] = []
    tick = asyncio.create_task(ticker(stop, lags))
    t0 = time.perf_counter()
    acked = await writer(storage)
    took = time.perf_counter() - t0
    stop.set()
    await tick
    await aio.aclose(storage)
    lags.sort()
    print(f"{acked} durable saves in {took:.2f} s ({acked / took:,.0f}/s)")
    print(
        f"event loop lag over {len(lags)} ticks: p50 {lags[len(lags) // 2] * 1e3:.2f} ms, "
        f"p99 {lags[int(len(lags) * 0.99)] * 1e3:.2f} ms, max {lags[-1] * 1e3:.2f} ms"
    )
    with raftwal.open(data_dir, read_only=True) as again:
        assert again.last_index() == SAVES == acked
        assert again.entries(SAVES, SAVES + 1)[0].data == b"event %d" % SAVES
    print("reopened: every acknowledged save is there")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())))

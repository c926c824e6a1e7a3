"""The context-manager protocol, sync and async, of what has a ``close()``
(:class:`~raftwal.WAL`, :class:`~raftwal.DurableStorage`)."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

__all__ = ["Closing"]


class Closing:
    """``with`` and ``async with`` over ``close()``; ``aclose()`` runs it in
    a worker thread, so pending saves drain and the final sync run off the
    event loop."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def aclose(self) -> None:
        """:meth:`close` in a worker thread: pending saves drain and the
        final sync runs off the event loop."""
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

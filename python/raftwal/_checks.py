"""Checks of a caller's arguments, made completely before the first byte is
written (a call that raises changes nothing): used by ``raftwal.open`` and
:class:`~raftwal.DurableStorage`."""

from __future__ import annotations

from . import _native
from ._native import EntryBase
from .errors import EntryTooLargeError
from .messages import Entry

__all__ = ["check_db", "check_u64", "entry_list"]


def check_u64(name: str, value: object) -> None:
    """``value`` is an int (not a bool) in [0, 2**64): ``TypeError`` or ``ValueError``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value < 1 << 64:
        raise ValueError(f"{name} must be in [0, 2**64), not {value}")


def check_db(db: object) -> None:
    """``db`` is None or something :meth:`Snapshotter.save_db_from` copies."""
    from .snap import is_db_source

    if db is not None and not is_db_source(db):
        raise TypeError(
            "db must be a path, a binary file object, an iterable of bytes chunks or "
            f"bytes, not {type(db).__name__}"
        )


def entry_list(entries: object) -> list[Entry]:
    """``entries`` as a list, each a :class:`Entry` whose record etcd can
    read, with consecutive indexes (a ``TypeError``, ``ValueError`` or
    :class:`EntryTooLargeError` otherwise)."""
    if isinstance(entries, str | bytes | bytearray | memoryview):
        raise TypeError(
            f"entries must be a sequence of raftwal.Entry, not {type(entries).__name__}"
        )
    try:
        ents: list[Entry] = list(entries)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(
            f"entries must be a sequence of raftwal.Entry, not {type(entries).__name__}"
        ) from None
    copies: list[Entry] = []
    for k, e in enumerate(ents):
        if not isinstance(e, EntryBase):
            raise TypeError(f"entries[{k}] must be a raftwal.Entry, not {type(e).__name__}")
        if k and e.index != ents[k - 1].index + 1:
            raise ValueError(f"entries are not consecutive: {e.index} follows {ents[k - 1].index}")
        data = e.data
        # only an entry whose data is near the limit can pass it (the rest of
        # an entry is a few varints): serialize just those to measure exactly
        if len(data) > _SIZE_CHECK_FROM:
            size = e.ByteSize()
            if not _native.entry_fits(size):
                raise EntryTooLargeError(
                    f"entry {e.index} encodes to {size} bytes; etcd 3.4 reads records below 10 MiB"
                )
        # the storage keeps its own copy: what the caller does with its
        # objects afterwards cannot change what is served (data is bytes)
        copies.append(Entry(e.term, e.index, e.type, data if e.HasField("data") else None))
    return copies


_SIZE_CHECK_FROM = 10 * 1024 * 1024 - 4096

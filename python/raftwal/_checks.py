"""Checks of a caller's arguments, made completely before the first byte is
written (a call that raises changes nothing): used by ``raftwal.open`` and
:class:`~raftwal.DurableStorage`."""

from __future__ import annotations

from . import _native
from .errors import EntryTooLargeError
from .messages import Entry

__all__ = ["check_db", "check_u64", "entry_list", "made_entries"]


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
    :class:`EntryTooLargeError` otherwise). The storage keeps these copies,
    made in one native pass: what the caller does with its objects
    afterwards cannot change what is served."""
    copies, too_large = _native.copy_entries(entries, Entry)
    _check_size(too_large)
    return copies


def made_entries(term: object, first_index: object, datas: object) -> list[Entry]:
    """The normal entries of ``term`` from ``first_index`` whose data are
    ``datas`` (bytes, bytearray or None each), built natively and checked as
    :func:`entry_list` checks a caller's."""
    check_u64("term", term)
    check_u64("first_index", first_index)
    made, too_large = _native.make_entries(Entry, term, first_index, datas)
    _check_size(too_large)
    return made


def _check_size(too_large: tuple[int, int] | None) -> None:
    if too_large is not None:
        index, size = too_large
        raise EntryTooLargeError(
            f"entry {index} encodes to {size} bytes; etcd 3.4 reads records below 10 MiB"
        )

"""Reading a log in memory independent of its length, for the CLI.

:func:`read_runs` replays a WAL into a :class:`raftwal._native.LogRuns`:
the recovered log as runs (one per overwrite and per segment) and its terms
as runs, with the replay's files kept open. ``LogRuns.scan(lo, hi, Entry)``
then reads those files again and yields, a list at a time, the entries of
positions ``[lo, hi)`` that survived (later writes replace earlier ones),
CRC-checked again; no object is built for any other entry.
:func:`recovered_range` is what a read-only restart would recover, found
the same way.
"""

from __future__ import annotations

from pathlib import Path

from .. import _native
from ..errors import WALNotFoundError
from ..messages import HardState, WalSnapshot
from ..restart import RecoveryReport, _choose_snapshot
from ..snap import Snapshotter
from ..storage import MemoryStorage
from ..wal import WAL, wal_exists

__all__ = ["RecoveredRange", "read_runs", "recovered_range"]


def read_runs(w: WAL) -> tuple[bytes, HardState, _native.LogRuns]:
    """Replay ``w`` keeping the recovered log as runs: (metadata, HardState,
    the runs). Raises as :meth:`WAL.read_all` does."""
    metadata, (term, vote, commit), runs = _native.replay_runs(w._native)
    return (metadata if metadata is not None else b"", HardState(term, vote, commit), runs)


class RecoveredRange:
    """What ``raftwal.open(data_dir, read_only=True)`` would serve, without
    the entries."""

    __slots__ = ("first_index", "hard_state", "last_index", "report")

    def __init__(
        self, report: RecoveryReport, hard_state: HardState, first_index: int, last_index: int
    ) -> None:
        self.report = report
        self.hard_state = hard_state
        self.first_index = first_index
        self.last_index = last_index


def recovered_range(data_dir: Path) -> RecoveredRange:
    """The restart ``raftwal.open(data_dir, read_only=True)`` makes (the
    same snapshot, the WAL read at it, the same errors), keeping the log as
    runs: memory independent of the number of entries."""
    wal_dir, snap_dir = data_dir / "wal", data_dir / "snap"
    if not wal_exists(wal_dir):
        raise WALNotFoundError(f"raftwal: no WAL segment in {wal_dir}")
    snapshotter = Snapshotter(snap_dir) if snap_dir.is_dir() else None
    report = RecoveryReport()
    races = 0
    while True:
        try:
            snapshot, _ = _choose_snapshot(wal_dir, snapshotter, report.mode, report)
            walsnap = WalSnapshot()
            if snapshot is not None:
                walsnap = WalSnapshot(index=snapshot.metadata.index, term=snapshot.metadata.term)
            with WAL.open_for_read(wal_dir, walsnap) as wal:
                _, hs, runs = read_runs(wal)
            break
        except FileNotFoundError:
            if races < 3:
                # a live writer purged a file between listing and opening it
                races += 1
                continue
            raise
    try:
        memory = MemoryStorage()
        if snapshot is not None:
            memory.apply_snapshot(snapshot)
            report.snapshot_index = snapshot.metadata.index
            report.snapshot_term = snapshot.metadata.term
        memory.set_hard_state(hs)
        first = memory.first_index()
        report.entries = len(runs)
        report.last_index = first - 1 + len(runs)
        return RecoveredRange(report, hs, first, report.last_index)
    finally:
        runs.close()

"""``raftwal verify`` (a strict, read-only check) and ``raftwal repair``
(cut away damage at the end of the log)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from ..errors import Error, SnapshotNotFoundError, WALNotFoundError
from ..messages import HardState, WalSnapshot
from ..snap import Snapshotter
from ..wal import repair, salvage, valid_snapshot_entries, verify
from .output import emit, hard_state
from .output import problem as describe
from .paths import wal_dirs

__all__ = ["Check", "check", "cmd_repair", "cmd_verify"]


def _segment_start(name: str) -> int | None:
    """The first index a segment name says it holds, or None."""
    stem = name.removesuffix(".wal")
    try:
        return int(stem.split("-", 1)[1], 16)
    except (IndexError, ValueError):
        return None


def _restart_point(wal_dir: Path, snaps: list[WalSnapshot]) -> WalSnapshot:
    """Where a restart of a WAL directory alone starts: its newest snapshot
    record that a remaining segment covers, or index 0 (as ``repair``).
    Not index 0 whenever it could: a follower that installed its leader's
    snapshot goes on at the snapshot's index + 1, a gap for a reader
    starting before it."""
    starts = [_segment_start(p.name) for p in wal_dir.iterdir() if p.suffix == ".wal"]
    first = min((i for i in starts if i is not None), default=0)
    covered = [s for s in snaps if s.index >= first]
    return max(covered, key=lambda s: s.index) if covered else WalSnapshot()


@dataclasses.dataclass
class Check:
    """What a strict, read-only look at a directory found."""

    problems: list[str]
    hard_state: HardState | None
    start: WalSnapshot


def check(wal_dir: Path, snap_dir: Path | None, attempts: int = 0) -> Check:
    """Check, without changing anything, what a strict restart reads: every
    segment's frames and CRC chain, every ``.snap`` file, and the log from
    the snapshot a restart would use (a data directory: the newest readable
    ``.snap`` file the WAL holds a record of; a bare WAL directory: its
    newest snapshot record). Operating-system failures propagate."""
    problems: list[str] = []
    snaps: list[WalSnapshot] = []
    try:
        snaps = valid_snapshot_entries(wal_dir)
    except Error as exc:
        problems.append(describe(exc))
    if snap_dir is not None:
        sn = Snapshotter(snap_dir)
        problems.extend(describe(exc) for _, exc in sn.unreadable())
        chosen, _ = sn.scan_newest_available(snaps)
        start = WalSnapshot()
        if chosen is not None:
            start = WalSnapshot(index=chosen.metadata.index, term=chosen.metadata.term)
    else:
        start = _restart_point(wal_dir, snaps)
    hs = None
    try:
        hs = verify(wal_dir, start)
    except (WALNotFoundError, SnapshotNotFoundError) as exc:
        # A live writer may have purged the segments of the snapshot chosen
        # a moment ago (a newer one took its place): choose again, twice.
        if attempts < 2 and _snapshot_records_changed(wal_dir, snaps):
            return check(wal_dir, snap_dir, attempts + 1)
        problem = describe(exc)
        if problem not in problems:
            problems.append(problem)
    except Error as exc:
        problem = describe(exc)
        if problem not in problems:
            problems.append(problem)
    return Check(problems, hs, start)


def _snapshot_records_changed(wal_dir: Path, before: list[WalSnapshot]) -> bool:
    try:
        return valid_snapshot_entries(wal_dir) != before
    except Error:
        return False


def cmd_verify(args: argparse.Namespace) -> int:
    wal_dir, snap_dir = wal_dirs(args.command, args.dir)
    found = check(wal_dir, snap_dir)
    data = {
        "wal_dir": str(wal_dir),
        "healthy": not found.problems,
        "problems": found.problems,
        "hard_state": hard_state(found.hard_state),
        "from_snapshot": {"index": found.start.index, "term": found.start.term},
    }
    human = "healthy" if not found.problems else "\n".join(found.problems)
    emit(args, f"{wal_dir}: {human}", data)
    return 0 if not found.problems else 1


def _names(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def cmd_repair(args: argparse.Namespace) -> int:
    """Both modes report the same keys: ``mode``, ``repaired`` (true only
    when something was cut or moved aside), ``healthy`` and ``problems``
    (the strict check of what is left), ``broken_copies`` (files made or
    renamed ``*.broken``), ``moved``, ``kind`` (``""``, ``"torn"`` or
    ``"corrupt"``), ``detail``, ``damaged_file``, ``damaged_offset`` and
    ``last_kept_index`` (null where the mode does not know it)."""
    wal_dir, snap_dir = wal_dirs(args.command, args.dir)
    before = _names(wal_dir)
    data: dict[str, Any] = {
        "wal_dir": str(wal_dir),
        "mode": args.mode,
        "repaired": False,
        "broken_copies": [],
        "moved": [],
        "kind": "",
        "detail": "",
        "damaged_file": None,
        "damaged_offset": None,
        "last_kept_index": None,
    }
    try:
        if args.mode == "salvage":
            rep = salvage(wal_dir)
            data |= dataclasses.asdict(rep)
            data.pop("dropped_from_segment_index", None)
            data["repaired"] = rep.changed
            if not rep.changed:
                human = (
                    f"{wal_dir}: no damage found, nothing cut (last index {rep.last_kept_index})"
                )
            else:
                where = (
                    f"{rep.damaged_file} at offset {rep.damaged_offset}"
                    if rep.damaged_file
                    else "a missing segment"
                )
                human = (
                    f"{wal_dir}: {rep.kind} damage ({rep.detail}) in {where}; kept entries up to "
                    f"{rep.last_kept_index}; moved aside: {', '.join(rep.moved) or 'nothing'}"
                )
        else:
            ok = repair(wal_dir)
            if not ok:
                raise WALNotFoundError(f"no WAL segment in {wal_dir}")
            broken = sorted(_names(wal_dir) - before)
            if broken:
                data |= {
                    "repaired": True,
                    "kind": "torn",
                    "damaged_file": broken[0].removesuffix(".broken"),
                }
            human = f"{wal_dir}: " + (
                "no damage found, nothing to truncate"
                if not broken
                else f"torn tail truncated; kept {', '.join(broken)}"
            )
    except Error as exc:
        # damage the mode cannot repair: nothing was changed
        path = getattr(exc, "path", None)
        data |= {
            "kind": "missing" if isinstance(exc, WALNotFoundError) else "corrupt",
            "detail": describe(exc),
            "damaged_file": Path(path).name if path else None,
            "damaged_offset": getattr(exc, "offset", None),
            "healthy": False,
            "problems": [describe(exc)],
        }
        if args.json:
            emit(args, "", data)
        else:
            print(f"raftwal repair: {wal_dir}: not repaired: {describe(exc)}", file=sys.stderr)
        return 1
    data["broken_copies"] = sorted(_names(wal_dir) - before)
    # What the repair left must pass the strict check; what it could not
    # repair (a .snap file, say) is reported and the exit status says so.
    found = check(wal_dir, snap_dir)
    data |= {"healthy": not found.problems, "problems": found.problems}
    if found.problems:
        human += "\nstill damaged:\n" + "\n".join(found.problems)
    emit(args, human, data)
    return 0 if not found.problems else 1

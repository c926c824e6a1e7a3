"""The ``raftwal`` command.

    raftwal demo                 durable appends, snapshots, a SIGKILLed writer, recovery
    raftwal demo --cluster 3     PySyncObj nodes on raftwal: kill the leader, lose nothing
    raftwal inspect DIR          segments, snapshots, HardState, metadata, index ranges
    raftwal dump DIR             entries (filter by index range and type; --etcd decodes)
    raftwal verify DIR           strict check; exit 1 on damage, naming file and offset
    raftwal repair DIR           truncate a torn tail (keeping a .broken copy)

inspect, dump and verify only read: they rename, delete, truncate and lock
nothing, so they are safe on a live etcd member directory.
    raftwal diskcheck [DIR]      is this disk fast enough for a Raft log? (etcd's fio test)
    raftwal bench                side-by-side speed comparison

``DIR`` is a data directory (``wal/``, ``snap/``), an etcd member directory
(``.../member``) or a WAL directory itself. Exit status 0 means healthy
(or repaired), 1 damage found (not repaired), 2 a usage error, a missing
path or an operating-system failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from .._native import LogRuns
from ..errors import Error, SnapshotNotFoundError, WALNotFoundError
from ..messages import ConfState, Entry, EntryType, HardState, MemberMetadata, WalSnapshot
from ..restart import open as open_storage
from ..snap import Snapshotter
from ..wal import WAL, repair, salvage, valid_snapshot_entries, verify
from .logruns import read_runs, recovered_range

__all__ = ["main"]


def _dirs(path: Path) -> tuple[Path, Path | None]:
    """(wal dir, snap dir or None) of a data dir, member dir or WAL dir."""
    if (path / "wal").is_dir():
        return path / "wal", (path / "snap" if (path / "snap").is_dir() else None)
    if (path / "member" / "wal").is_dir():
        return _dirs(path / "member")
    return path, None


SCHEMA_VERSION = 1


def _emit(args: argparse.Namespace, human: str, data: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps({"schema_version": SCHEMA_VERSION} | data, indent=2, sort_keys=True))
    else:
        print(human)


def _problem(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


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
class _Check:
    """What a strict, read-only look at a directory found."""

    problems: list[str]
    hard_state: HardState | None
    start: WalSnapshot


def _check(wal_dir: Path, snap_dir: Path | None, attempts: int = 0) -> _Check:
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
        problems.append(_problem(exc))
    if snap_dir is not None:
        sn = Snapshotter(snap_dir)
        problems.extend(_problem(exc) for _, exc in sn.unreadable())
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
            return _check(wal_dir, snap_dir, attempts + 1)
        problem = _problem(exc)
        if problem not in problems:
            problems.append(problem)
    except Error as exc:
        problem = _problem(exc)
        if problem not in problems:
            problems.append(problem)
    return _Check(problems, hs, start)


def _snapshot_records_changed(wal_dir: Path, before: list[WalSnapshot]) -> bool:
    try:
        return valid_snapshot_entries(wal_dir) != before
    except Error:
        return False


def _missing(args: argparse.Namespace) -> int | None:
    """Exit status 2 (with the message) when the path does not exist."""
    if Path(args.dir).exists():
        return None
    msg = f"raftwal {args.command}: {args.dir}: no such file or directory"
    if args.json:
        _emit(args, "", {"error": {"type": "FileNotFoundError", "message": msg}})
    print(msg, file=sys.stderr)
    return 2


# --- progress ------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a
    terminal (so pipes, files and --json output stay clean)."""

    def __init__(self, label: str, total: float) -> None:
        self.label = label
        self.total = total
        self.on = sys.stderr.isatty()
        self._last = 0.0

    def update(self, done: float, detail: str = "") -> None:
        now = time.monotonic()
        if not self.on or now - self._last < 0.1:
            return
        self._last = now
        frac = max(0.0, min(1.0, done / self.total)) if self.total else 0.0
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}% {detail}\x1b[K")
        sys.stderr.flush()

    def close(self) -> None:
        if self.on:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


# --- demo -----------------------------------------------------------------------------


def _payload(index: int, size: int) -> bytes:
    seed = hashlib.sha256(index.to_bytes(8, "little")).digest()
    return (seed * (size // len(seed) + 1))[:size]


def _writer(data_dir: str, size: int, in_flight: int, snapshot_count: int) -> int:
    """The demo's child: append until killed, printing each durable index."""
    out = sys.stdout
    with open_storage(
        data_dir, metadata=b"raftwal demo", snapshot_count=snapshot_count, segment_size=4_000_000
    ) as s:
        index = s.last_index()
        pending: deque[tuple[int, Future[None]]] = deque()
        cs = ConfState(voters=[1])
        while True:
            index += 1
            hs = HardState(term=1, vote=1, commit=max(0, index - in_flight))
            fut = s.save_async(hs, [Entry(term=1, index=index, data=_payload(index, size))])
            pending.append((index, fut))
            if len(pending) >= in_flight:
                acked, f = pending.popleft()
                f.result()
                while pending and pending[0][1].done():
                    acked, f = pending.popleft()
                    f.result()
                out.write(f"{acked}\n")
                out.flush()
                # a snapshot covers applied, hence committed, entries only
                committed = s.initial_state()[0].commit
                if s.needs_snapshot(committed):
                    s.create_snapshot(committed, cs, f"applied through {committed}".encode())


def cmd_cluster_demo(args: argparse.Namespace) -> int:
    """``raftwal demo --cluster N``: PySyncObj nodes whose journal is raftwal."""
    try:
        from . import pysyncobj_cluster as psj
    except ImportError as exc:
        print(
            f"raftwal demo --cluster needs PySyncObj ({exc}): pip install pysyncobj",
            file=sys.stderr,
        )
        return 2
    if args.cluster < 3:
        print("raftwal demo: --cluster needs at least 3 nodes", file=sys.stderr)
        return 2
    report = psj.cluster_demo(
        args.cluster,
        seconds=args.compare_seconds,
        data_dir=args.data_dir,
        keep=args.keep,
        compare=args.compare_seconds > 0,
    )
    _emit(args, psj.render_demo(report), report)
    ok = not report["lost"] and not report["killed_leader_journal_missing"]
    return 0 if ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    if args.cluster:
        return cmd_cluster_demo(args)
    own_dir = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="raftwal-demo-")) if own_dir else Path(args.data_dir)
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "raftwal",
            "_demo-writer",
            str(data_dir),
            str(args.entry_size),
            str(args.in_flight),
            str(args.snapshot_count),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    acked = 0
    started = time.monotonic()
    deadline = started + args.seconds
    first_ack = None
    try:
        bar = Progress("writing", args.seconds)
        for line in child.stdout:
            acked = int(line)
            if first_ack is None:
                first_ack = time.monotonic()
            bar.update(time.monotonic() - started, f"{acked:,} acknowledged")
            if time.monotonic() >= deadline:
                break
        bar.close()
    finally:
        elapsed = time.monotonic() - (first_ack or started)
        child.send_signal(signal.SIGKILL)
        child.wait()
    if acked == 0:
        print("the writer acknowledged nothing before it was killed", file=sys.stderr)
        return 1

    t0 = time.monotonic()
    with open_storage(data_dir) as s:
        recovery_seconds = time.monotonic() - t0
        first, last = s.first_index(), s.last_index()
        snap_index = s.snapshot().metadata.index
        lost: list[int] = []
        checked = 0
        lo = max(first, 1)
        for start in range(lo, acked + 1, 4096):
            hi = min(acked + 1, start + 4096)
            if hi > last + 1:
                lost.extend(range(max(start, last + 1), hi))
                hi = last + 1
            if hi <= start:
                continue
            for e in s.entries(start, hi):
                checked += 1
                if e.data != _payload(e.index, args.entry_size):
                    lost.append(e.index)
        report = s.recovery
    segs = sorted(p.name for p in (data_dir / "wal").iterdir() if p.suffix == ".wal")
    snaps = sorted(p.name for p in (data_dir / "snap").iterdir() if p.suffix == ".snap")
    rate = acked / elapsed if elapsed > 0 else 0.0
    data = {
        "data_dir": str(data_dir),
        "acknowledged": acked,
        "recovered_last_index": last,
        "checked_after_snapshot": checked,
        "snapshot_index": snap_index,
        "lost": len(lost),
        "torn_tail_repaired": report.repaired,
        "durable_entries_per_second": round(rate),
        "recovery_seconds": round(recovery_seconds, 4),
        "segments": len(segs),
        "snapshots": len(snaps),
    }
    human = "\n".join(
        [
            f"raftwal demo in {data_dir}",
            f"  writer: durable appends with group commit ({args.in_flight} in flight, "
            f"{args.entry_size}-byte entries), snapshots every {args.snapshot_count} entries",
            f"  killed with SIGKILL after {acked} acknowledged entries "
            f"({rate:,.0f} durable entries/s)",
            f"  recovered in {recovery_seconds * 1000:.1f} ms: snapshot at {snap_index}, "
            f"entries {first}..{last}, torn tail repaired: {report.repaired}",
            f"  on disk: {len(segs)} WAL segment(s), {len(snaps)} snapshot file(s)",
            f"  acknowledged entries checked byte for byte after the snapshot: {checked}",
            f"  lost: {len(lost)}" + ("  (every acknowledged entry survived)" if not lost else ""),
        ]
    )
    _emit(args, human, data)
    if own_dir and not args.keep:
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)
    return 0 if not lost else 1


# --- inspect, dump, verify, repair --------------------------------------------------------


def _metadata_info(md: bytes) -> dict[str, Any]:
    info: dict[str, Any] = {"hex": md.hex(), "length": len(md)}
    try:
        m = MemberMetadata.FromString(md)
        if m.SerializeToString() == md and md:
            info["etcd_member_id"] = f"{m.node_id:x}"
            info["etcd_cluster_id"] = f"{m.cluster_id:x}"
    except Error:
        pass
    return info


def _segment_sizes(wal_dir: Path) -> list[tuple[str, int]]:
    """Name and size of each segment; one a live writer purged since the
    listing is left out."""
    out = []
    for p in sorted(p for p in wal_dir.iterdir() if p.suffix == ".wal"):
        try:
            out.append((p.name, p.stat().st_size))
        except FileNotFoundError:
            continue
    return out


def cmd_inspect(args: argparse.Namespace) -> int:
    if (rc := _missing(args)) is not None:
        return rc
    wal_dir, snap_dir = _dirs(Path(args.dir))
    segs = _segment_sizes(wal_dir)
    # the log is kept as runs of entries and of terms: memory independent
    # of its length
    first, (md, hs, log) = _replay(wal_dir, "inspect", read_runs)
    log.close()
    n = len(log)
    check = _check(wal_dir, snap_dir)
    data: dict[str, Any] = {
        "wal_dir": str(wal_dir),
        "segments": [{"name": name, "size": size} for name, size in segs],
        "metadata": _metadata_info(md),
        "hard_state": {"term": hs.term, "vote": hs.vote, "commit": hs.commit},
        "entries": n,
        "first_index": first if n else None,
        "last_index": first + n - 1 if n else None,
        "terms": log.terms(),
        "wal_snapshots": [[s.index, s.term] for s in valid_snapshot_entries(wal_dir)],
        "healthy": not check.problems,
        "problems": check.problems,
    }
    if snap_dir is not None:
        data["recovery"] = _recovery_info(wal_dir.parent)
        snaps = []
        for name in Snapshotter(snap_dir).snap_names():
            try:
                s = Snapshotter.read(snap_dir / name)
                snaps.append(
                    {
                        "name": name,
                        "index": s.metadata.index,
                        "term": s.metadata.term,
                        "voters": s.metadata.conf_state.voters,
                        "learners": s.metadata.conf_state.learners,
                        "data_len": len(s.data or b""),
                    }
                )
            except FileNotFoundError:
                continue  # purged by a live writer since it was listed
            except Error as exc:
                snaps.append({"name": name, "error": str(exc)})
        data["snapshots"] = snaps
    lines = [
        f"WAL {wal_dir}: {len(segs)} segment(s), {sum(size for _, size in segs)} bytes",
        f"  metadata: {data['metadata']}",
        f"  hard state: term={hs.term} vote={hs.vote:x} commit={hs.commit}",
        f"  entries: {n} ({data['first_index']}..{data['last_index']}), "
        f"terms {data['terms'][:1]}..{data['terms'][-1:]}",
        f"  snapshot records: {data['wal_snapshots']}",
    ]
    for s in data.get("snapshots", []):
        lines.append(f"  snapshot file {s}")
    if "recovery" in data:
        lines.append(f"  a restart would recover: {data['recovery']}")
    lines.append("  healthy" if not check.problems else "  damage:")
    lines.extend(f"    {p}" for p in check.problems)
    _emit(args, "\n".join(lines), data)
    return 0 if not check.problems else 1


def _recovery_info(data_dir: Path) -> dict[str, Any]:
    """What a restart of ``data_dir`` would recover (read-only: nothing is
    locked or changed), or the error that would stop it."""
    try:
        # as raftwal.open(data_dir, read_only=True), the log kept as runs
        got = recovered_range(data_dir)
        hs, rep = got.hard_state, got.report
        return {
            "snapshot_index": rep.snapshot_index,
            "snapshot_term": rep.snapshot_term,
            "first_index": got.first_index,
            "last_index": got.last_index,
            "hard_state": {"term": hs.term, "vote": hs.vote, "commit": hs.commit},
            "unreadable_snapshots": [name for name, _ in rep.broken_snapshots],
        }
    except Error as exc:
        return {"error": _problem(exc)}


_T = TypeVar("_T")


def _replay(wal_dir: Path, what: str, read: Callable[[WAL], _T]) -> tuple[int, _T]:
    """``read`` applied to the WAL opened without a lock: from index 1 when
    it still holds every entry, otherwise from its newest snapshot record
    (old segments purged, as on a long-running etcd member), saying so on
    stderr. Returns the index of the first entry read, and what ``read``
    returned."""
    try:
        with WAL.open_for_read(wal_dir) as w:
            return 1, read(w)
    except (WALNotFoundError, SnapshotNotFoundError):
        snaps = valid_snapshot_entries(wal_dir)
        if not snaps:
            raise
    for attempt in range(3):
        snap = snaps[-1]
        try:
            with WAL.open_for_read(wal_dir, snap) as w:
                got = read(w)
        except (WALNotFoundError, SnapshotNotFoundError):
            # purged meanwhile by a live writer, behind a newer snapshot
            snaps = valid_snapshot_entries(wal_dir)
            if attempt == 2 or not snaps or snaps[-1] == snap:
                raise
            continue
        print(
            f"raftwal {what}: entries up to {snap.index} were compacted away; "
            f"reading from the snapshot record at {snap.index} (term {snap.term})",
            file=sys.stderr,
        )
        return snap.index + 1, got
    raise AssertionError("unreachable")


def _read_all(wal_dir: Path, what: str) -> tuple[bytes, HardState, list[Entry]]:
    """The whole log, in memory (see :func:`_replay`)."""
    return _replay(wal_dir, what, WAL.read_all)[1]


def _read_runs(wal_dir: Path, what: str) -> tuple[int, LogRuns]:
    """The log kept as runs, its files open for a second pass: (index of
    the first entry, the runs)."""
    first, (_, _, log) = _replay(wal_dir, what, read_runs)
    return first, log


def _dump_rows(args: argparse.Namespace, first: int, log: LogRuns) -> Iterator[Entry]:
    """The entries to dump, streamed from disk a chunk at a time: entries
    that did not survive, or lie outside ``--start``/``--end``, or are of
    another ``--type``, never become objects."""
    types = {t.name.removeprefix("Entry").lower(): t for t in EntryType}
    want = int(types[args.type]) if args.type else None
    lo = 0 if args.start is None else max(0, args.start - first)
    hi = len(log) if args.end is None else min(len(log), max(0, args.end - first + 1))
    try:
        for chunk in log.scan(lo, hi, Entry, want):
            yield from chunk
    finally:
        log.close()


def cmd_dump(args: argparse.Namespace) -> int:
    if (rc := _missing(args)) is not None:
        return rc
    wal_dir, _ = _dirs(Path(args.dir))
    # the replay (and any damage it finds) comes before the first byte out
    rows = _dump_rows(args, *_read_runs(wal_dir, "dump"))
    decode: Callable[[Entry], Any] | None = None
    if args.etcd:
        from .etcd_decode import decode_entry

        decode = decode_entry
    if args.json:
        # one JSON list, written an entry at a time
        out = sys.stdout
        out.write("[")
        for n, e in enumerate(rows):
            if decode is not None:
                item = decode(e).as_json() | {"data": (e.data or b"").hex()}
            else:
                item = {
                    "term": e.term,
                    "index": e.index,
                    "type": EntryType(e.type).name,
                    "data": (e.data or b"").hex(),
                }
            out.write((", " if n else "") + json.dumps(item))
        out.write("]\n")
        return 0
    for e in rows:
        if decode is not None:
            d = decode(e)
            print(f"{d.term:>6} {d.index:>10} {d.type:<18} {d.summary}")
        else:
            data = e.data or b""
            shown = data[:48].hex() + ("..." if len(data) > 48 else "")
            print(f"{e.term:>6} {e.index:>10} {EntryType(e.type).name:<18} {len(data):>7} {shown}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    if (rc := _missing(args)) is not None:
        return rc
    wal_dir, snap_dir = _dirs(Path(args.dir))
    check = _check(wal_dir, snap_dir)
    hs = check.hard_state
    data = {
        "healthy": not check.problems,
        "problems": check.problems,
        "hard_state": None
        if hs is None
        else {"term": hs.term, "vote": hs.vote, "commit": hs.commit},
        "from_snapshot": {"index": check.start.index, "term": check.start.term},
    }
    human = "healthy" if not check.problems else "\n".join(check.problems)
    _emit(args, f"{wal_dir}: {human}", data)
    return 0 if not check.problems else 1


def cmd_repair(args: argparse.Namespace) -> int:
    if (rc := _missing(args)) is not None:
        return rc
    wal_dir, snap_dir = _dirs(Path(args.dir))
    data: dict[str, Any]
    if args.mode == "salvage":
        rep = salvage(wal_dir)
        data = dataclasses.asdict(rep)
        if not rep.changed:
            human = f"{wal_dir}: no damage found, nothing cut (last index {rep.last_kept_index})"
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
        before = {p.name for p in wal_dir.iterdir()} if wal_dir.is_dir() else set()
        ok = repair(wal_dir)
        broken = sorted({p.name for p in wal_dir.iterdir()} - before) if wal_dir.is_dir() else []
        data = {"repaired": ok, "broken_copies": broken}
        if not ok:
            data |= {"healthy": False, "problems": [f"no WAL segment in {wal_dir}"]}
            _emit(args, f"{wal_dir}: nothing to repair: no WAL segment", data)
            return 1
        human = f"{wal_dir}: " + (
            "no damage found, nothing to truncate"
            if not broken
            else f"torn tail truncated; kept {', '.join(broken)}"
        )
    # What the repair left must pass the strict check; what it could not
    # repair (a .snap file, say) is reported and the exit status says so.
    check = _check(wal_dir, snap_dir)
    data |= {"healthy": not check.problems, "problems": check.problems}
    if check.problems:
        human += "\nstill damaged:\n" + "\n".join(check.problems)
    _emit(args, human, data)
    return 0 if not check.problems else 1


# --- diskcheck, bench ---------------------------------------------------------------------


def cmd_diskcheck(args: argparse.Namespace) -> int:
    from .diskcheck import render, run_check

    bar = Progress("measuring", args.seconds)
    started = time.monotonic()
    report = run_check(
        Path(args.dir),
        args.seconds,
        block=args.block_size,
        include_wal=not args.no_wal,
        progress=lambda detail: bar.update(time.monotonic() - started, detail),
    )
    bar.close()
    _emit(args, render(report), report)
    return 0 if report["verdict"]["ok"] else 1


def cmd_bench(argv: Sequence[str]) -> int:
    """``raftwal bench``: the comparison in :mod:`raftwal.cli.bench`, imported only now."""
    import importlib

    try:
        bench = importlib.import_module("raftwal.cli.bench")
    except ImportError as exc:
        print(
            "raftwal bench: the benchmark module raftwal.cli.bench is not available "
            f"({exc}); install a raftwal build that ships it",
            file=sys.stderr,
        )
        return 2
    parser = argparse.ArgumentParser(
        prog="raftwal bench",
        description="side-by-side speed comparison of raftwal with other durable logs",
    )
    bench.add_arguments(parser)
    args = parser.parse_args(list(argv))
    return int(bench.run(args))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="raftwal", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--json", action="store_true", help="machine-readable output")
        return sp

    d = add("demo", "durable appends, snapshots, a SIGKILLed writer, recovery and a report")
    d.add_argument("--data-dir", help="use this directory instead of a temporary one")
    d.add_argument("--seconds", type=float, default=5.0, help="how long the writer runs")
    d.add_argument("--entry-size", type=int, default=100)
    d.add_argument("--in-flight", type=int, default=256, help="saves in flight (group commit)")
    d.add_argument("--snapshot-count", type=int, default=20000)
    d.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    d.add_argument(
        "--cluster",
        type=int,
        metavar="N",
        help="instead: N PySyncObj nodes (N >= 3) persisting their raft log through raftwal; "
        "commit writes, SIGKILL the leader, restart it, check nothing committed is lost, "
        "then compare throughput with PySyncObj's own FileJournal (needs pysyncobj)",
    )
    d.add_argument(
        "--compare-seconds",
        type=float,
        default=2.0,
        help="with --cluster: seconds of load per journal in the comparison (0 skips it)",
    )
    d.set_defaults(func=cmd_demo)

    for name, fn, help in [
        ("inspect", cmd_inspect, "segments, snapshots, HardState, metadata and index ranges"),
        ("verify", cmd_verify, "strict check of the WAL and the snapshot files"),
        ("repair", cmd_repair, "cut away damage at the end of the log, keeping .broken copies"),
    ]:
        sp = add(name, help)
        sp.add_argument("dir", help="data dir, etcd member dir or WAL dir")
        if name == "repair":
            sp.add_argument(
                "--mode",
                choices=["tail", "salvage"],
                default="tail",
                help="tail: truncate a torn last record (etcd's repair, the default); "
                "salvage: keep the longest verified prefix whatever the damage",
            )
        sp.set_defaults(func=fn)

    dump = add("dump", "print entries")
    dump.add_argument("dir")
    dump.add_argument("--start", type=int, help="first index")
    dump.add_argument("--end", type=int, help="last index")
    dump.add_argument("--type", choices=["normal", "confchange", "confchangev2"])
    dump.add_argument(
        "--etcd",
        action="store_true",
        help="decode etcd's entry data (puts, deletes, txns, leases, auth, v2 requests, "
        "conf changes) as etcd-dump-logs does; passwords and tokens are redacted",
    )
    dump.set_defaults(func=cmd_dump)

    dc = add(
        "diskcheck",
        "is this disk good enough for a Raft log? etcd's fio recipe (2300-byte writes, "
        "each followed by fdatasync), measured natively; exit 1 when p99 fdatasync >= 10 ms",
    )
    dc.add_argument(
        "dir", nargs="?", default=".", help="a directory on the disk to check (default: .)"
    )
    dc.add_argument("--seconds", type=float, default=3.0, help="how long to measure (about)")
    dc.add_argument("--block-size", type=int, default=2300, help="bytes per write")
    dc.add_argument("--no-wal", action="store_true", help="skip the raftwal WAL.save row")
    dc.set_defaults(func=cmd_diskcheck)

    # Parsed by raftwal.cli.bench itself (see main); listed here for --help.
    sub.add_parser(
        "bench",
        add_help=False,
        help="side-by-side speed comparison (raftwal bench --help for its options)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_demo-writer"]:
        d, size, in_flight, snap_count = argv[1:5]
        return _writer(d, int(size), int(in_flight), int(snap_count))
    if argv[:1] == ["_pysyncobj-node"]:
        from .pysyncobj_cluster import run_node

        return run_node(argv[1:])
    if argv[:1] == ["bench"]:
        return cmd_bench(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        rc: int = args.func(args)
    except (Error, OSError) as exc:
        # damage (a raftwal.Error) is 1; an operating-system failure is 2
        rc = 1 if isinstance(exc, Error) else 2
        msg = f"raftwal {args.command}: {type(exc).__name__}: {exc}"
        if getattr(args, "json", False):
            err = {"type": type(exc).__name__, "message": str(exc)}
            for attr in ("path", "offset"):
                if getattr(exc, attr, None) is not None:
                    err[attr] = getattr(exc, attr)
            _emit(args, "", {"healthy": False, "error": err})
        print(msg, file=sys.stderr)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())

"""``raftwal inspect`` (what a directory holds) and ``raftwal dump`` (its
entries). Both only read: they rename, delete, truncate and lock nothing."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._native import LogRuns
from ..errors import Error
from ..messages import Entry, EntryType, MemberMetadata
from ..snap import Snapshotter
from ..wal import valid_snapshot_entries
from .logruns import read_runs, recovered_range
from .output import document, emit, hard_state, hex_id, problem
from .paths import read_runs_from, replay, wal_dirs
from .verify_repair import check

__all__ = ["cmd_dump", "cmd_inspect"]


def _metadata_info(md: bytes) -> dict[str, Any]:
    info: dict[str, Any] = {"hex": md.hex(), "length": len(md)}
    try:
        m = MemberMetadata.FromString(md)
        if m.SerializeToString() == md and md:
            info["etcd_member_id"] = hex_id(m.node_id)
            info["etcd_cluster_id"] = hex_id(m.cluster_id)
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
    wal_dir, snap_dir = wal_dirs(args.command, args.dir)
    segs = _segment_sizes(wal_dir)
    # the log is kept as runs of entries and of terms: memory independent
    # of its length
    first, (md, hs, log) = replay(wal_dir, "inspect", read_runs)
    log.close()
    n = len(log)
    found = check(wal_dir, snap_dir)
    data: dict[str, Any] = {
        "wal_dir": str(wal_dir),
        "segments": [{"name": name, "size": size} for name, size in segs],
        "metadata": _metadata_info(md),
        "hard_state": hard_state(hs),
        "entries": n,
        "first_index": first if n else None,
        "last_index": first + n - 1 if n else None,
        "terms": log.terms(),
        "wal_snapshots": [[s.index, s.term] for s in valid_snapshot_entries(wal_dir)],
        "healthy": not found.problems,
        "problems": found.problems,
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
                        "voters": [hex_id(v) for v in s.metadata.conf_state.voters],
                        "learners": [hex_id(v) for v in s.metadata.conf_state.learners],
                        "data_len": len(s.data),
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
    lines.append("  healthy" if not found.problems else "  damage:")
    lines.extend(f"    {p}" for p in found.problems)
    emit(args, "\n".join(lines), data)
    return 0 if not found.problems else 1


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
            "hard_state": hard_state(hs),
            "unreadable_snapshots": [name for name, _ in rep.broken_snapshots],
        }
    except Error as exc:
        return {"error": problem(exc)}


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
    wal_dir, _ = wal_dirs(args.command, args.dir)
    # the replay (and any damage it finds) comes before the first byte out
    rows = _dump_rows(args, *read_runs_from(wal_dir, "dump"))
    decode: Callable[[Entry], Any] | None = None
    if args.etcd:
        from .etcd_decode import decode_entry

        decode = decode_entry
    if args.json:
        # JSON Lines: one entry a line, each a document with its schema_version
        out = sys.stdout
        for e in rows:
            if decode is not None:
                item = decode(e).as_json() | {"data": e.data.hex()}
            else:
                item = {
                    "term": e.term,
                    "index": e.index,
                    "type": EntryType(e.type).name,
                    "data": e.data.hex(),
                }
            out.write(document(item, one_line=True) + "\n")
        return 0
    for e in rows:
        if decode is not None:
            d = decode(e)
            print(f"{d.term:>6} {d.index:>10} {d.type:<18} {d.summary}")
        else:
            data = e.data
            shown = data[:48].hex() + ("..." if len(data) > 48 else "")
            print(f"{e.term:>6} {e.index:>10} {EntryType(e.type).name:<18} {len(data):>7} {shown}")
    return 0

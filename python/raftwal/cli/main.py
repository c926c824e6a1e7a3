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
path, a path that is not a WAL directory or an operating-system failure;
141 (128 + SIGPIPE, as for ``cat``) when the reader of stdout went away.
With ``--json`` every subcommand prints one JSON document on stdout
(``dump``: one a line), on success and on failure, each with
``schema_version``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .. import __version__
from ..errors import Error
from .demo import cmd_demo, writer
from .inspect_dump import cmd_dump, cmd_inspect
from .output import CommandError, Progress, emit, emit_error
from .verify_repair import cmd_repair, cmd_verify

__all__ = ["build_parser", "main"]

SIGPIPE_STATUS = 141
"""The exit status when stdout's reader went away (``raftwal dump DIR |
head``): 128 + SIGPIPE, what a shell reports for ``cat`` in that place."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are a :class:`CommandError`
    (exit status 2), so that ``--json`` reports them as a document too."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (see {self.prog} --help)")


# --- diskcheck, bench ---------------------------------------------------------------------


def cmd_diskcheck(args: argparse.Namespace) -> int:
    from .diskcheck import render, run_check

    path = Path(args.dir)
    if not path.exists():
        raise CommandError(f"{args.dir}: no such file or directory", "FileNotFoundError")
    if not path.is_dir():
        raise CommandError(f"{args.dir}: not a directory", "NotADirectoryError")
    if args.seconds <= 0 or args.block_size <= 0:
        raise CommandError("--seconds and --block-size must be positive")

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
    emit(args, render(report), report)
    return 0 if report["verdict"]["ok"] else 1


def cmd_bench(argv: Sequence[str]) -> int:
    """``raftwal bench``: the comparison in :mod:`raftwal.cli.bench`, imported only now."""
    import importlib

    try:
        bench = importlib.import_module("raftwal.cli.bench")
    except ImportError as exc:
        raise CommandError(
            "the benchmark module raftwal.cli.bench is not available "
            f"({exc}); install a raftwal build that ships it",
            "MissingDependency",
        ) from exc
    parser = _Parser(
        prog="raftwal bench",
        description="side-by-side speed comparison of raftwal with other durable logs",
    )
    bench.add_arguments(parser)
    args = parser.parse_args(list(argv))
    return int(bench.run(args))


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="raftwal", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"raftwal {__version__}")
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


def _command(argv: Sequence[str]) -> str:
    return next((a for a in argv if not a.startswith("-")), "")


def _run(argv: list[str]) -> int:
    if argv[:1] == ["_demo-writer"]:
        d, size, in_flight, snap_count = argv[1:5]
        return writer(d, int(size), int(in_flight), int(snap_count))
    if argv[:1] == ["_pysyncobj-node"]:
        from .pysyncobj_cluster import run_node

        return run_node(argv[1:])
    if argv[:1] == ["bench"]:
        return cmd_bench(argv[1:])
    args = build_parser().parse_args(argv)
    rc: int = args.func(args)
    return rc


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns its exit status (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    json_out = "--json" in argv
    try:
        try:
            rc = _run(argv)
        except (CommandError, Error, OSError) as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            # damage (a raftwal.Error) is 1; an operating-system failure is 2
            if isinstance(exc, CommandError):
                rc = exc.status
            else:
                rc = 1 if isinstance(exc, Error) else 2
            emit_error(json_out, _command(argv), exc, rc)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        # the reader went away (``| head``): no traceback, no message; and
        # nothing more reaches the pipe, at exit either
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return SIGPIPE_STATUS
    return rc


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""raftwal against etcd's Go WAL, sqlite3, py-lmdb, the disk's own
write+fdatasync limit and a pure-Python encoder, side by side in one run.

Prints a table of ratios and writes BENCHMARKS.md (at the repository root)
and benches/throughput.png (durable entries/s against batch size):

    python3 benches/compare.py            # the full run, about 2 minutes
    python3 benches/compare.py --quick    # about 15 s
    python3 benches/compare.py --help

The work is done by ``raftwal.cli.bench`` (also ``raftwal bench``); this script
only points its report at the repository. Needs ``pip install -e '.[bench]'``
for the lmdb baseline and the chart, and ``go`` with Debian's
``golang-etcd-server-dev`` for the etcd baseline; whatever is missing is
skipped and named in the report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from raftwal.cli import bench

REPO = Path(__file__).resolve().parent.parent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benches/compare.py",
        description="raftwal against etcd Go, sqlite3, lmdb, the disk limit and a "
        "pure-Python encoder: a table of ratios, BENCHMARKS.md and a chart.",
    )
    bench.add_arguments(parser)
    parser.set_defaults(
        out=str(REPO / "BENCHMARKS.md"), png=str(REPO / "benches" / "throughput.png")
    )
    return bench.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

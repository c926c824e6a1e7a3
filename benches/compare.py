#!/usr/bin/env python3
"""raftwal against etcd's Go WAL, sqlite3, py-lmdb, the disk's own
write+fdatasync limit and a pure-Python encoder, side by side in one run.

Prints a table of ratios and writes BENCHMARKS.md (at the repository root)
and benches/throughput.png (durable entries/s against batch size):

    python3 benches/compare.py            # the full run, about 2 minutes
    python3 benches/compare.py --quick    # about 15 s
    python3 benches/compare.py --help

The work is done by ``raftwal.cli.bench`` (also ``raftwal bench``); this script
points its report at the repository and gives it the etcd Go baseline
(``tests/support/etcdref.py``, which builds ``tools/etcdref``). Needs ``pip install -e '.[bench]'``
for the lmdb baseline and the chart, and ``go`` with Debian's
``golang-etcd-server-dev`` for the etcd baseline; whatever is missing is
skipped and named in the report.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from raftwal.cli import bench

REPO = Path(__file__).resolve().parent.parent


def load_etcdref() -> tuple[Any | None, str]:
    """(EtcdRef instance or None, why not), from this checkout's
    ``tests/support/etcdref.py``, which builds ``tools/etcdref``."""
    mod = sys.modules.get("etcdref")
    if mod is None:
        path = REPO / "tests" / "support" / "etcdref.py"
        if not path.is_file():
            return None, "needs a raftwal source checkout (tests/support/etcdref.py, tools/etcdref)"
        spec = importlib.util.spec_from_file_location("etcdref", path)
        if spec is None or spec.loader is None:
            return None, f"cannot load {path}"
        mod = importlib.util.module_from_spec(spec)
        sys.modules["etcdref"] = mod
        try:
            spec.loader.exec_module(mod)
        except ImportError as e:
            del sys.modules["etcdref"]
            return None, f"{path} needs {e.name} (pip install 'raftwal[test]')"
    try:
        binary = mod.build_etcdref()
    except Exception as e:
        return None, f"building tools/etcdref failed: {e}"
    if binary is None:
        return None, f"missing {mod.missing_tools()}"
    return mod.EtcdRef(binary, timeout=300), ""


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
    return bench.run(parser.parse_args(argv), etcd_reference=load_etcdref)


if __name__ == "__main__":
    sys.exit(main())

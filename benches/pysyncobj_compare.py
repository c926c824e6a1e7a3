"""PySyncObj with raftwal's journal against PySyncObj's own FileJournal.

A fresh cluster of PySyncObj node processes on 127.0.0.1 for every
measurement; the leader keeps ``in_flight`` replicated writes outstanding
for ``--seconds`` and counts those acknowledged (committed and applied).
Rounds are interleaved across journals so a noisy disk slows them alike;
each figure is the median over rounds.

How each journal syncs (printed with the table):

* ``raftwal``: etcd's WAL format through raftwal, group commit; an fdatasync
  covers every entry, term and vote before any raft message leaves a node
  and before the leader applies (``raftwal.integrations.pysyncobj``).
* ``raftwal-sync``: the same journal with one fdatasync per appended entry.
* ``file``: PySyncObj's FileJournal, an mmap'd file that is never fsynced
  (a process kill loses nothing, a power cut can), term and vote written to
  a file renamed into place without fsync.

    python benches/pysyncobj_compare.py                  # about 2 minutes
    python benches/pysyncobj_compare.py --seconds 1 --rounds 1 --in-flight 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from raftwal.cli.pysyncobj_cluster import JOURNALS, throughput


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0, help="load per measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--in-flight", default="1,64", help="comma-separated writes in flight")
    p.add_argument("--journals", default="raftwal,raftwal-sync,file")
    p.add_argument("--value-bytes", type=int, default=100)
    p.add_argument("--json", help="write the samples here")
    a = p.parse_args(argv)
    journals = [j for j in a.journals.split(",") if j]
    unknown = [j for j in journals if j not in JOURNALS]
    if unknown:
        p.error(f"unknown journals {unknown}; choose from {sorted(JOURNALS)}")
    in_flights = [int(x) for x in a.in_flight.split(",") if x]
    samples: dict[str, dict[int, list[float]]] = {j: {f: [] for f in in_flights} for j in journals}
    with tempfile.TemporaryDirectory(prefix="raftwal-pysyncobj-bench-") as tmp:
        run = 0
        for r in range(a.rounds):
            for f in in_flights:
                order = journals[r % len(journals) :] + journals[: r % len(journals)]
                for j in order:
                    run += 1
                    res = throughput(
                        Path(tmp) / f"run{run}", j, a.seconds, f, a.value_bytes, a.nodes
                    )
                    samples[j][f].append(res["writes_per_second"])
                    print(
                        f"round {r + 1}/{a.rounds} in_flight={f:<4} {j:<13} "
                        f"{res['writes_per_second']:>9,.0f} writes/s",
                        file=sys.stderr,
                    )
    print(
        f"\nPySyncObj, {a.nodes} nodes on 127.0.0.1, {a.value_bytes}-byte values, "
        f"{a.seconds:g} s per run, median of {a.rounds} round(s): acknowledged writes/s\n"
    )
    header = f"{'journal':<14}" + "".join(f"{'in flight ' + str(f):>16}" for f in in_flights)
    print(header)
    table: dict[str, Any] = {}
    for j in journals:
        med = {f: statistics.median(samples[j][f]) for f in in_flights}
        table[j] = med
        print(f"{j:<14}" + "".join(f"{med[f]:>16,.0f}" for f in in_flights))
    print()
    for j in journals:
        print(f"{j}: {JOURNALS[j]}")
    if a.json:
        Path(a.json).write_text(
            json.dumps({"samples": samples, "median": table, "settings": vars(a)}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

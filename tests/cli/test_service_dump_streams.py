"""`raftwal dump` and `inspect` stream: a few entries out of a large log
are found, and the log summed up, without holding it in memory (peak RSS
far below the WAL's size); the output is the same as before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import raftwal
from raftwal import Entry, HardState

PEAK = (
    "import runpy, sys\n"
    "sys.argv = ['raftwal'] + sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module('raftwal', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "for line in open('/proc/self/status'):\n"
    "    if line.startswith('VmHWM:'):\n"
    "        print('PEAK_KIB', line.split()[1], file=sys.stderr)\n"
)


def _dump(*args: str) -> tuple[str, int]:
    return _run("dump", *args)


def _run(*args: str) -> tuple[str, int]:
    r = subprocess.run(
        [sys.executable, "-c", PEAK, *args], capture_output=True, text=True, timeout=300
    )
    peak = [int(x.split()[1]) for x in r.stderr.splitlines() if x.startswith("PEAK_KIB")]
    assert peak, r.stderr[-2000:]
    return r.stdout, peak[0]


def _large_log(d: Path, n: int = 60_000, size: int = 2000) -> int:
    """About n * size bytes of WAL, terms 1 then 2; returns its size."""
    with raftwal.open(d, segment_size=16_000_000) as s:
        for lo in range(1, n + 1, 1000):
            t = 1 if lo <= n // 2 else 2
            ents = [
                Entry(term=t, index=i, data=bytes([i % 251]) * size) for i in range(lo, lo + 1000)
            ]
            s.save(HardState(term=t, vote=1, commit=lo + 999), ents)
    return sum(p.stat().st_size for p in (d / "wal").glob("*.wal"))


def test_dump_of_a_few_entries_does_not_hold_the_log(tmp_path: Path) -> None:
    d = tmp_path / "data"
    size = 2000
    wal_bytes = _large_log(d, size=size)
    out, peak_kib = _dump("--start", "30000", "--end", "30004", "--json", str(d))
    rows = json.loads(out)
    assert [r["index"] for r in rows] == list(range(30000, 30005))
    assert rows[0]["data"] == (bytes([30000 % 251]) * size).hex()
    # the log stays on disk: peak memory well below its size
    assert peak_kib * 1024 < wal_bytes // 2, (peak_kib, wal_bytes)


def test_dump_output_of_the_whole_log(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with raftwal.open(d) as s:
        s.save(
            HardState(term=2, vote=1, commit=3),
            [
                Entry(term=1, index=1, data=b"a"),
                Entry(term=2, index=2, type=1),
                Entry(term=2, index=3),
            ],
        )
    out, _ = _dump("--json", str(d))
    assert json.loads(out) == [
        {"term": 1, "index": 1, "type": "EntryNormal", "data": "61"},
        {"term": 2, "index": 2, "type": "EntryConfChange", "data": ""},
        {"term": 2, "index": 3, "type": "EntryNormal", "data": ""},
    ]
    out, _ = _dump("--type", "confchange", str(d))
    assert [line.split()[1] for line in out.splitlines()] == ["2"]


def test_inspect_sums_up_a_large_log_without_holding_it(tmp_path: Path) -> None:
    d = tmp_path / "data"
    wal_bytes = _large_log(d)
    out, peak_kib = _run("inspect", "--json", str(d))
    rep = json.loads(out)
    assert (rep["entries"], rep["first_index"], rep["last_index"]) == (60_000, 1, 60_000)
    assert rep["terms"] == [1, 2]
    assert peak_kib * 1024 < wal_bytes // 2, (peak_kib, wal_bytes)

"""`raftwal dump` and `inspect` stream: a few entries out of a large log
are found, and the log summed up, without holding it in memory (peak RSS
far below the WAL's size); the output is the same as before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def _lines(out: str) -> list[dict[str, Any]]:
    """``dump --json`` output: JSON Lines, one entry a line."""
    return [json.loads(line) for line in out.splitlines()]


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
    rows = _lines(out)
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
    assert _lines(out) == [
        {"schema_version": 1, "term": 1, "index": 1, "type": "EntryNormal", "data": "61"},
        {"schema_version": 1, "term": 2, "index": 2, "type": "EntryConfChange", "data": ""},
        {"schema_version": 1, "term": 2, "index": 3, "type": "EntryNormal", "data": ""},
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


def _small_entries(d: Path, n: int) -> None:
    """n entries of 8 bytes (many entries, few bytes), terms 1 then 2."""
    w = raftwal.WAL.create(d / "wal", b"m")
    for lo in range(1, n + 1, 20_000):
        t = 1 if lo <= n // 2 else 2
        ents = [Entry(term=t, index=i, data=b"abcdefgh") for i in range(lo, lo + 20_000)]
        w.save(HardState(term=t, vote=1, commit=lo + 19_999), ents)
    w.close()


def test_memory_does_not_grow_with_the_number_of_entries(tmp_path: Path) -> None:
    """2,000,000 entries against 20,000: dump of a few entries and inspect
    take the same memory (an index of 12 bytes an entry would be 24 MB)."""
    small, large = tmp_path / "small", tmp_path / "large"
    _small_entries(small, 20_000)
    _small_entries(large, 2_000_000)
    for args in (["dump", "--start", "1500000", "--end", "1500004"], ["inspect", "--json"]):
        _, base = _run(*args, str(small))
        out, peak = _run(*args, str(large))
        if args[0] == "dump":
            assert [line.split()[1] for line in out.splitlines()] == [
                str(i) for i in range(1_500_000, 1_500_005)
            ]
        else:
            assert (json.loads(out)["entries"], json.loads(out)["terms"]) == (2_000_000, [1, 2])
        assert peak - base < 8 * 1024, (args[0], base, peak)


def test_dump_streams_only_the_entries_that_survived(tmp_path: Path) -> None:
    """Overwrites (a newer term, and the same entries written again, which
    drops what followed them), a snapshot and segment cuts: dump shows what
    a restart recovers, in any window."""
    d = tmp_path / "wal"
    w = raftwal.WAL.create(d, b"m", segment_size=32 * 1024)

    def save(term: int, lo: int, hi: int, tag: bytes) -> None:
        ents = [Entry(term=term, index=i, data=tag + bytes([i % 251]) * 200) for i in range(lo, hi)]
        w.save(HardState(term=term, vote=1, commit=0), ents)

    save(1, 1, 300, b"a")
    save(2, 150, 400, b"b")
    save(2, 200, 220, b"c")  # same term again: 220.. of the last write go
    for i in range(220, 500, 7):
        save(2, i, i + 7, b"d")
    w.save_snapshot(raftwal.WalSnapshot(index=100, term=1))
    save(3, 480, 520, b"e")
    w.close()
    with raftwal.WAL.open_for_read(d) as r:
        _, _, want = r.read_all()
    rows = lambda o: [(x["term"], x["index"], x["data"]) for x in _lines(o)]  # noqa: E731
    expect = [(e.term, e.index, e.data.hex()) for e in want]
    assert [e.index for e in want] == list(range(1, 520))
    out, _ = _dump("--json", str(d))
    assert rows(out) == expect
    for lo, hi in ((1, 1), (149, 152), (199, 221), (300, 480), (470, 519), (518, 600)):
        out, _ = _dump("--json", "--start", str(lo), "--end", str(hi), str(d))
        assert rows(out) == [x for x in expect if lo <= x[1] <= hi], (lo, hi)

"""benches/compare.py at a tiny size, so the comparison stays runnable: every
scenario runs, the report, JSON and chart are written, and the pure-Python
baseline really writes etcd's WAL format."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import raftwal
from raftwal.cli import bench

HERE = Path(__file__).resolve().parent
TINY = [
    "--rounds", "2",
    "--seconds", "0.02",
    "--batches", "1,100,1000",
    "--recovery-entries", "2000",
    "--decode-mib", "1",
]  # fmt: skip


def _compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare", HERE / "compare.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _etcd() -> Any | None:
    return _compare().load_etcdref()[0]


def test_compare_tiny(tmp_path: Path) -> None:
    out, png, raw = tmp_path / "BENCHMARKS.md", tmp_path / "chart.png", tmp_path / "r.json"
    work = tmp_path / "work"
    argv = [
        *TINY,
        "--dir",
        str(work),
        "--out",
        str(out),
        "--png",
        str(png),
        "--samples-json",
        str(raw),
    ]
    assert _compare().main(argv) == 0

    text = out.read_text()
    assert text.startswith("# raftwal benchmarks")
    assert "| scenario | measure | raftwal | baseline | ratio | target | met? |" in text
    for heading in ("## Throughput vs batch size", "## Machine", "## Command"):
        assert heading in text
    assert list(work.iterdir()) == []  # the scratch directory is removed

    result = json.loads(raw.read_text())
    rows = {(r["scenario"], r["measure"]): r for r in result["rows"]}
    assert all(r["value"] > 0 for r in rows.values())
    scenarios = {s for s, _ in rows}
    assert any(s.startswith("durable save, 1 x") for s in scenarios)
    assert any(s.startswith("durable save, 100 x") for s in scenarios)
    assert any(s.startswith("durable save, 1000 x") for s in scenarios)
    assert any(s.startswith("save_async, 1 entry per call, 1024 in flight") for s in scenarios)
    assert any(s.startswith("save_async, 100 x 100 B per call, 64 in flight") for s in scenarios)
    assert any(s.startswith("recovery") for s in scenarios)
    assert any(s.startswith("peak RSS of that open") for s in scenarios)
    assert any(s.startswith("CRC32C") for s in scenarios)
    assert any(s.startswith("decode") for s in scenarios)
    expected = {"raftwal", "raftwal_datas", "sqlite", "raw", "rawfalloc", "purepy"}
    if _has("lmdb"):
        expected.add("lmdb")
    etcd_available = _etcd() is not None
    if etcd_available:
        expected.add("etcd")
    assert set(result["sweep"]) == expected
    for per in result["sweep"].values():
        assert set(per) == {"1", "100", "1000"}
    etcd_rows = [r for (_, m), r in rows.items() if "etcd Go" in m]
    # 1, 100 and 1000 x 100 B (save and save_entries), recovery, decoding in
    # Rust and into Python entries
    assert len(etcd_rows) == 9
    assert all((r["ratio"] is not None) == etcd_available for r in etcd_rows)
    targets = {(s, r["target"]) for (s, m), r in rows.items() if r["target"]}
    assert ("durable save, 1000 x 100 B per save", ">= 1x") in targets

    # the new rows have both sides measured in every round
    (batched,) = [r for (s, _), r in rows.items() if s.startswith("save_async, 100 x")]
    assert batched["baseline"] > 0 and batched["ratio"] is not None
    assert batched["target"] == ">= 0.9x"
    assert len(result["async_batch_bytes_per_fsync"]) == 2  # --rounds 2
    assert all(b > 0 for b in result["async_batch_bytes_per_fsync"])
    (rss,) = [r for (s, _), r in rows.items() if s.startswith("peak RSS")]
    assert rss["unit"] == "B" and rss["target"] == "<= 1.5x" and rss["ratio"] is not None
    memory = result["memory"]
    assert rss["baseline"] == memory["wal_bytes"]
    # 2,000 entries of 100 B: at least their payload, and not the preallocated segment
    assert 2000 * 100 < memory["wal_bytes"] < 2000 * 200
    pairs = zip(memory["imported_rss_bytes"], memory["peak_rss_bytes"], strict=True)
    assert all(0 < i <= p for i, p in pairs)
    assert len(memory["peak_rss_bytes"]) == 2  # --rounds 2
    assert "interpreter with raftwal imported" in text

    if _has("matplotlib"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "![durable entries/s vs batch size](chart.png)" in text


def test_compare_skips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "B.md"
    argv = [*TINY, "--batches", "1", "--dir", str(tmp_path), "--out", str(out)]
    argv += ["--no-etcd", "--no-sqlite", "--no-lmdb", "--no-chart", "--pure-crc", "table"]
    assert bench.main(argv) == 0
    table = capsys.readouterr().out
    assert "saves/s vs etcd Go Save loop" in table
    assert "| skipped |" in table
    assert "pure-Python encoder (table CRC)" in table
    assert not (tmp_path / "throughput.png").exists()
    assert "![" not in out.read_text()


def test_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--rounds", "0", "--seconds", "-1"]) == 2
    assert "must be positive" in capsys.readouterr().err


def test_pure_python_crc() -> None:
    data = os.urandom(1000)
    assert bench.crc32c_py(b"123456789") == 0xE3069283
    assert bench.crc32c_py(data[500:], bench.crc32c_py(data[:500])) == raftwal.crc32c(data)


def test_pure_python_encoder_writes_the_format(tmp_path: Path) -> None:
    bench.check_pure_python_encoder(tmp_path)  # raises if raftwal reads anything else
    ref = _etcd()
    if ref is None:
        pytest.skip("etcd's Go WAL (tools/etcdref) is not available")
    entries = [raftwal.Entry(term=3, index=i, data=bytes([i]) * i) for i in range(1, 40)]
    with bench.PyWal(tmp_path / "w", None, segment_size=1024) as w:
        for k in range(0, len(entries), 7):
            w.save(raftwal.HardState(3, 2, k), entries[k : k + 7])
    got = ref.readall(tmp_path / "w")
    assert got["error"] is None
    assert got["hard_state"] == (3, 2, 35)
    assert got["entries"] == [(e.term, e.index, 0, e.data) for e in entries]

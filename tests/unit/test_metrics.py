"""stats(), the Prometheus collector and logging events."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from walfile import frames, segments

import raftwal
from raftwal import WAL, ConfState, Entry, HardState
from raftwal.metrics import BUCKETS, PrometheusCollector


def test_wal_stats_count_what_happened(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "w", segment_size=2048) as w:
        before = w.stats()
        assert before["wal_saves_total"] == 0
        for i in range(1, 41):
            w.save(HardState(1, 1, i - 1), [Entry(term=1, index=i, data=b"v" * 100)])
        w.save(HardState(1, 1, 40), [])  # commit-only: no fsync
        st = w.stats()
    assert st["wal_saves_total"] == 41
    assert st["wal_entries_total"] == 40
    assert st["wal_cuts_total"] == len(segments(tmp_path / "w")) - 1 >= 1
    assert st["wal_write_bytes_total"] >= 40 * 100
    fs = st["wal_fsync_duration_seconds"]
    # one per syncing save, two per cut, one at create
    assert fs["count"] == st["wal_fsyncs_total"] >= 40
    bounds = [le for le, _ in fs["buckets"]]
    assert bounds[:-1] == list(BUCKETS) and bounds[-1] == float("inf")
    counts = [n for _, n in fs["buckets"]]
    assert counts == sorted(counts) and counts[-1] == fs["count"]
    assert fs["sum"] > 0
    assert st["wal_cut_duration_seconds"]["count"] == st["wal_cuts_total"]


def test_durable_storage_stats_and_prometheus(tmp_path: Path) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    with raftwal.open(tmp_path / "d", snapshot_count=10, max_snapshots=2) as s:
        for i in range(1, 60):
            s.save(HardState(1, 1, i), [Entry(term=1, index=i, data=b"x")])
            if s.needs_snapshot(i):
                s.create_snapshot(i, ConfState(voters=[1]), b"")
        st = s.stats()
        assert st["snapshots_total"] == 5
        assert st["snap_save_total_duration_seconds"]["count"] == 5
        assert st["recovery_duration_seconds"]["count"] == 1
        assert st["purged_files_total"] >= 3
        reg = prometheus_client.CollectorRegistry()
        reg.register(PrometheusCollector(s))
        text = prometheus_client.generate_latest(reg).decode()
    assert 'raftwal_wal_fsync_duration_seconds_bucket{le="0.001"}' in text
    assert "raftwal_wal_saves_total 59.0" in text
    assert "raftwal_snapshots_total 5.0" in text


def test_recovery_events_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "d"
    with raftwal.open(d) as s:
        for i in range(1, 10):
            s.save(HardState(1, 1, i - 1), [Entry(term=1, index=i, data=b"y" * 40)])
    tail = segments(d / "wal")[-1]
    last = [f for f in frames(tail) if f.type == 2][-1]
    os.truncate(tail, last.end - 2)
    with caplog.at_level(logging.INFO, logger="raftwal"):
        raftwal.open(d).close()
    warnings = [r for r in caplog.records if r.name == "raftwal" and r.levelno == logging.WARNING]
    assert warnings and "repair" in warnings[0].getMessage()


def test_several_storages_export_labelled_series_from_one_collector(tmp_path: Path) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    a = raftwal.open(tmp_path / "a")
    b = raftwal.open(tmp_path / "b")
    try:
        for i in range(1, 4):
            a.save(HardState(1, 1, i), [Entry(term=1, index=i)])
        b.save(HardState(1, 1, 1), [Entry(term=1, index=1)])
        reg = prometheus_client.CollectorRegistry(auto_describe=True)
        c = PrometheusCollector(a, labels={"shard": "a"})
        c.add(b, labels={"shard": "b"})
        reg.register(c)
        text = prometheus_client.generate_latest(reg).decode()
        assert 'raftwal_wal_saves_total{shard="a"} 3.0' in text
        assert 'raftwal_wal_saves_total{shard="b"} 1.0' in text
        assert 'raftwal_wal_fsync_duration_seconds_count{shard="b"}' in text
        # one family per metric, whatever the number of storages
        assert text.count("# TYPE raftwal_wal_saves_total counter") == 1
        names = {f.name for f in c.describe()}
        assert "raftwal_wal_saves" in names and all(not f.samples for f in c.describe())
        # a second collector with the same names is refused, not duplicated
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            reg.register(PrometheusCollector(b, labels={"shard": "c"}))
        with pytest.raises(ValueError, match="differ"):
            c.add(b, labels={"node": "b"})
        with pytest.raises(ValueError, match="exported already"):
            c.add(b, labels={"shard": "a"})
        with pytest.raises(TypeError):
            c.add(object())
        c.remove(b)
        text = prometheus_client.generate_latest(reg).decode()
        assert 'shard="b"' not in text and 'shard="a"' in text
    finally:
        a.close()
        b.close()

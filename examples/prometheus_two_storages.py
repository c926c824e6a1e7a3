"""Two storages in one process, exported to Prometheus as labelled series.

    python examples/prometheus_two_storages.py [DATA_DIR]

One :class:`raftwal.metrics.PrometheusCollector` carries both, told apart
by a ``shard`` label; the exposition text is printed (serve it with
``prometheus_client.start_http_server`` in a real service).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

import raftwal
from raftwal import Entry, HardState
from raftwal.metrics import PrometheusCollector


def main(data_dir: Path) -> None:
    registry = CollectorRegistry()
    with raftwal.open(data_dir / "a") as a, raftwal.open(data_dir / "b") as b:
        collector = PrometheusCollector(a, labels={"shard": "a"})
        collector.add(b, labels={"shard": "b"})
        registry.register(collector)
        for storage, n in ((a, 30), (b, 5)):
            for i in range(1, n + 1):
                storage.save(HardState(term=1, vote=1, commit=i), [Entry(term=1, index=i)])
        text = generate_latest(registry).decode()
    wanted = [
        'raftwal_wal_saves_total{shard="a"} 30.0',
        'raftwal_wal_saves_total{shard="b"} 5.0',
    ]
    for line in text.splitlines():
        if line.startswith(("raftwal_wal_saves_total", "raftwal_wal_fsync_duration_seconds_count")):
            print(line)
    assert all(w in text for w in wanted), text


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))

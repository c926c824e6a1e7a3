"""Metrics and events.

``WAL.stats()`` and ``DurableStorage.stats()`` return counters and latency
histograms named after etcd's (``wal_fsync_duration_seconds``,
``wal_write_bytes_total``, ``snap_save_total_duration_seconds``, ...), with
etcd's buckets (1 ms doubling to 8.192 s). :class:`PrometheusCollector`
exposes them to ``prometheus_client`` when it is installed. Events
(recovery, repairs, snapshots, purges, slow syncs) go to the standard
``logging`` module under the ``"raftwal"`` logger.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any, TypedDict

from . import _native

__all__ = [
    "BUCKETS",
    "DiskStorageStats",
    "DurableStorageStats",
    "Histogram",
    "HistogramValue",
    "PrometheusCollector",
    "WALStats",
    "logger",
]

logger = logging.getLogger("raftwal")

BUCKETS: tuple[float, ...] = tuple(_native.histogram_buckets)
"""Upper bounds (seconds) of every histogram's buckets; +Inf is implied."""


class HistogramValue(TypedDict):
    """A histogram as ``stats()`` reports it."""

    buckets: list[tuple[float, int]]  # (upper bound, cumulative count), +Inf last
    count: int
    sum: float


class WALStats(TypedDict):
    """What :meth:`raftwal.WAL.stats` returns: etcd's WAL metrics."""

    wal_fsync_duration_seconds: HistogramValue
    wal_write_duration_seconds: HistogramValue
    wal_cut_duration_seconds: HistogramValue
    wal_write_bytes_total: int
    wal_saves_total: int
    wal_entries_total: int
    wal_fsyncs_total: int
    wal_cuts_total: int


class DiskStorageStats(WALStats):
    """What :meth:`raftwal.DiskStorage.stats` returns: the WAL's metrics
    and the snapshot saves' latency."""

    snap_save_total_duration_seconds: HistogramValue


class DurableStorageStats(DiskStorageStats):
    """What :meth:`raftwal.DurableStorage.stats` returns."""

    recovery_duration_seconds: HistogramValue
    snapshots_total: int
    purged_files_total: int


def histogram_value(cumulative: list[int], count: int, total: float) -> HistogramValue:
    bounds = [*BUCKETS, float("inf")]
    return {"buckets": list(zip(bounds, cumulative, strict=True)), "count": count, "sum": total}


class Histogram:
    """A thread-safe latency histogram with etcd's buckets (Python side:
    snapshot saves, recovery)."""

    __slots__ = ("_counts", "_lock", "_sum")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = [0] * (len(BUCKETS) + 1)
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        """Count one observation of ``seconds``."""
        i = next((k for k, b in enumerate(BUCKETS) if seconds <= b), len(BUCKETS))
        with self._lock:
            self._counts[i] += 1
            self._sum += seconds

    def value(self) -> HistogramValue:
        """The histogram in ``stats()`` form."""
        with self._lock:
            cum, acc = [], 0
            for c in self._counts:
                acc += c
                cum.append(acc)
            return histogram_value(cum, acc, self._sum)


def wal_stats(native: _native.Wal) -> WALStats:
    """A native WAL's counters and histograms in ``stats()`` form."""
    raw = native.stats()

    def hist(name: str) -> HistogramValue:
        cum, count, total = raw[name]
        return histogram_value(list(cum), count, total)

    return {
        "wal_fsync_duration_seconds": hist("wal_fsync_duration_seconds"),
        "wal_write_duration_seconds": hist("wal_write_duration_seconds"),
        "wal_cut_duration_seconds": hist("wal_cut_duration_seconds"),
        "wal_write_bytes_total": raw["wal_write_bytes_total"],
        "wal_saves_total": raw["wal_saves_total"],
        "wal_entries_total": raw["wal_entries_total"],
        "wal_fsyncs_total": raw["wal_fsyncs_total"],
        "wal_cuts_total": raw["wal_cuts_total"],
    }


class PrometheusCollector:
    """A ``prometheus_client`` collector over the ``stats()`` of one or more
    WALs or DurableStorages; metric names get the ``raftwal_`` prefix::

        from prometheus_client import REGISTRY
        REGISTRY.register(PrometheusCollector(storage))

    Several storages in one process export one family per metric, told
    apart by their labels; give every source the same label names::

        c = PrometheusCollector(shard_a, labels={"shard": "a"})
        c.add(shard_b, labels={"shard": "b"})
        REGISTRY.register(c)

    (Registering a second collector with the same names in one registry
    raises ``ValueError``, as ``prometheus_client`` refuses duplicate
    series: one collector carries them all.)
    """

    def __init__(
        self,
        source: Any = None,
        prefix: str = "raftwal_",
        labels: Mapping[str, str] | None = None,
    ) -> None:
        try:
            import prometheus_client  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "PrometheusCollector needs prometheus_client: pip install 'raftwal[prometheus]'"
            ) from exc
        self._prefix = prefix
        self._lock = threading.Lock()
        self._label_names: tuple[str, ...] | None = None
        self._sources: list[tuple[Any, tuple[str, ...]]] = []
        if source is not None:
            self.add(source, labels)

    def add(self, source: Any, labels: Mapping[str, str] | None = None) -> None:
        """Export ``source.stats()`` too, with ``labels`` (the same label
        names as every other source; values that tell it apart)."""
        if not callable(getattr(source, "stats", None)):
            raise TypeError(f"source must have a stats() method, not {type(source).__name__}")
        labels = dict(labels or {})
        for k, v in labels.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("labels must map str to str")
        names = tuple(sorted(labels))
        values = tuple(labels[k] for k in names)
        with self._lock:
            if self._label_names is not None and names != self._label_names:
                raise ValueError(
                    f"labels {list(names)} differ from the other sources' {list(self._label_names)}"
                )
            if any(v == values for _, v in self._sources):
                raise ValueError(f"a source with labels {labels} is exported already")
            self._label_names = names
            self._sources.append((source, values))

    def remove(self, source: Any) -> None:
        """Stop exporting ``source`` (a storage that was closed, say)."""
        with self._lock:
            self._sources = [(s, v) for s, v in self._sources if s is not source]

    def describe(self) -> Iterator[Any]:
        """The metric families, without samples (for the registry's checks)."""
        yield from self._families(with_samples=False)

    def collect(self) -> Iterator[Any]:
        """One metric family per counter and histogram, a sample per source."""
        yield from self._families(with_samples=True)

    def _families(self, *, with_samples: bool) -> list[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        with self._lock:
            sources = list(self._sources)
            label_names = list(self._label_names or ())
        families: dict[str, CounterMetricFamily | HistogramMetricFamily] = {}
        for source, values in sources:
            for name, value in source.stats().items():
                full = self._prefix + name
                fam = families.get(name)
                if fam is None:
                    if isinstance(value, dict):
                        fam = HistogramMetricFamily(full, f"raftwal {name}", labels=label_names)
                    else:
                        base = full.removesuffix("_total")
                        fam = CounterMetricFamily(base, f"raftwal {name}", labels=label_names)
                    families[name] = fam
                if not with_samples:
                    continue
                if isinstance(fam, HistogramMetricFamily):
                    buckets = [
                        ("+Inf" if le == float("inf") else repr(le), n)
                        for le, n in value["buckets"]
                    ]
                    fam.add_metric(list(values), buckets, sum_value=value["sum"])
                else:
                    fam.add_metric(list(values), value)
            if not with_samples:
                break  # every source has the same names
        return list(families.values())

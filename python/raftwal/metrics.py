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
from collections.abc import Callable, Iterator
from typing import Any, TypedDict

from . import _native

__all__ = ["BUCKETS", "Histogram", "HistogramValue", "PrometheusCollector", "logger"]

logger = logging.getLogger("raftwal")

BUCKETS: tuple[float, ...] = tuple(_native.histogram_buckets)
"""Upper bounds (seconds) of every histogram's buckets; +Inf is implied."""


class HistogramValue(TypedDict):
    """A histogram as ``stats()`` reports it."""

    buckets: list[tuple[float, int]]  # (upper bound, cumulative count), +Inf last
    count: int
    sum: float


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


def wal_stats(native: _native.Wal) -> dict[str, Any]:
    """A native WAL's counters and histograms in ``stats()`` form."""
    out: dict[str, Any] = {}
    for name, value in native.stats().items():
        if isinstance(value, tuple):
            cum, count, total = value
            out[name] = histogram_value(list(cum), count, total)
        else:
            out[name] = value
    return out


class PrometheusCollector:
    """A ``prometheus_client`` collector over a WAL's or a DurableStorage's
    ``stats()``; metric names get the ``raftwal_`` prefix::

        from prometheus_client import REGISTRY
        REGISTRY.register(PrometheusCollector(storage))
    """

    def __init__(self, source: Any, prefix: str = "raftwal_") -> None:
        try:
            import prometheus_client  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "PrometheusCollector needs prometheus_client: pip install prometheus-client"
            ) from exc
        self._stats: Callable[[], dict[str, Any]] = source.stats
        self._prefix = prefix

    def collect(self) -> Iterator[Any]:
        """Yield one metric family per counter and histogram."""
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        for name, value in self._stats().items():
            full = self._prefix + name
            if isinstance(value, dict):
                buckets = [
                    ("+Inf" if le == float("inf") else repr(le), n) for le, n in value["buckets"]
                ]
                yield HistogramMetricFamily(
                    full, f"raftwal {name}", buckets=buckets, sum_value=value["sum"]
                )
            else:
                base = full.removesuffix("_total")
                yield CounterMetricFamily(base, f"raftwal {name}", value=value)

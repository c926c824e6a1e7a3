//! Counters and latency histograms of a WAL, named after etcd's metrics
//! (`wal_fsync_duration_seconds`, `wal_write_bytes_total`, ...). Lock-free:
//! updated from writer and syncing threads, read at any time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds: etcd's
/// `ExponentialBuckets(0.001, 2, 14)`, 1 ms to about 8 s (+Inf implied).
pub const BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192,
];

#[derive(Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket, the last one for +Inf.
    counts: [AtomicU64; 15],
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// (cumulative counts per bucket including +Inf, count, sum in seconds)
    pub fn read(&self) -> (Vec<u64>, u64, f64) {
        let mut acc = 0;
        let mut cum = Vec::with_capacity(self.counts.len());
        for c in &self.counts {
            acc += c.load(Ordering::Relaxed);
            cum.push(acc);
        }
        (cum, acc, self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9)
    }
}

#[derive(Default)]
pub struct WalStats {
    pub fsync: Histogram,
    pub write: Histogram,
    pub cut: Histogram,
    pub write_bytes: AtomicU64,
    pub saves: AtomicU64,
    pub entries: AtomicU64,
    pub fsyncs: AtomicU64,
    pub cuts: AtomicU64,
}

impl WalStats {
    pub fn add(&self, c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let (cum, n, sum) = h.read();
        assert_eq!(n, 3);
        assert_eq!(cum[0], 1); // <= 1 ms
        assert_eq!(cum[2], 2); // <= 4 ms
        assert_eq!(cum[13], 2); // <= 8.192 s
        assert_eq!(cum[14], 3); // +Inf
        assert!((sum - 20.0035).abs() < 1e-6);
    }
}

//! Latency histograms with fixed buckets, recorded with atomics (no lock on
//! the hot path) and read as Prometheus-style cumulative snapshots.
//!
//! ```
//! use std::time::Duration;
//! use twins::histogram::Histogram;
//!
//! let h = Histogram::default();
//! h.observe(Duration::from_millis(3));
//! h.observe(Duration::from_secs(60));
//! let s = h.snapshot();
//! assert_eq!(s.count(), 2);
//! // `le="0.005"` holds the 3 ms observation; only `+Inf` holds the minute.
//! assert_eq!(s.cumulative[2], 1);
//! assert_eq!(s.cumulative[s.bounds_us.len()], 2);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (inclusive, in microseconds) of the latency buckets: 1 ms
/// to 10 s in 1-2.5-5 steps. An implicit `+Inf` bucket follows.
pub const LATENCY_BOUNDS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// A latency histogram over [`LATENCY_BOUNDS_US`]. One observation costs two
/// relaxed atomic additions.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

/// The bucket an observation of `us` microseconds falls in: the first whose
/// upper bound is at least `us`, else the `+Inf` bucket.
pub fn bucket_of(us: u64) -> usize {
    LATENCY_BOUNDS_US.partition_point(|&b| b < us)
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        self.observe_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn observe_micros(&self, us: u64) {
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The counts so far, cumulative. Read while others observe, the sum may
    /// be off by the observations in flight; the buckets and the count always
    /// agree with each other.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = Vec::with_capacity(BUCKETS);
        let mut total = 0u64;
        for b in &self.buckets {
            total += b.load(Ordering::Relaxed);
            cumulative.push(total);
        }
        HistogramSnapshot {
            bounds_us: &LATENCY_BOUNDS_US,
            cumulative,
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// A histogram read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Upper bounds of the finite buckets, in microseconds.
    pub bounds_us: &'static [u64],
    /// Observations at most each bound, then the total (`+Inf`): one more
    /// entry than `bounds_us`, never decreasing.
    pub cumulative: Vec<u64>,
    /// Sum of all observations, in microseconds.
    pub sum_us: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        Histogram::default().snapshot()
    }
}

impl HistogramSnapshot {
    /// How many observations there were (the `+Inf` bucket).
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_beyond_the_last_is_inf() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1_000), 0);
        assert_eq!(bucket_of(1_001), 1);
        assert_eq!(bucket_of(2_500), 1);
        assert_eq!(bucket_of(9_999_999), 12);
        assert_eq!(bucket_of(10_000_000), 12);
        assert_eq!(bucket_of(10_000_001), 13);
        assert_eq!(bucket_of(u64::MAX), 13);
    }

    #[test]
    fn snapshots_are_cumulative_and_count_the_inf_bucket() {
        let h = Histogram::default();
        for us in [500, 1_000, 1_500, 30_000, 30_000, 20_000_000] {
            h.observe_micros(us);
        }
        let s = h.snapshot();
        assert_eq!(s.cumulative.len(), LATENCY_BOUNDS_US.len() + 1);
        assert_eq!(
            s.cumulative,
            vec![2, 3, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5, 6],
            "≤1ms: 2, ≤2.5ms: +1, ≤50ms: +2, +Inf: +1"
        );
        assert!(s.cumulative.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(s.count(), 6);
        assert_eq!(s.sum_us, 500 + 1_000 + 1_500 + 60_000 + 20_000_000);
        assert!((s.sum_seconds() - 20.063).abs() < 1e-9);
    }

    #[test]
    fn an_empty_histogram_has_zero_everywhere() {
        let s = HistogramSnapshot::default();
        assert_eq!(s.count(), 0);
        assert!(s.cumulative.iter().all(|&c| c == 0));
        assert_eq!(s.sum_us, 0);
    }
}

//! A lock-free log-bucket latency histogram (HDR-like, about 1.6 % relative precision).
//!
//! Values below 128 have a bucket each; above, every power of two is split into 64 equal
//! buckets. Recording is one `fetch_add` on a shared bucket, so every connection task of the
//! load tool records into the same histogram without a lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets below the first power-of-two range: one per value.
const LINEAR: u64 = 128;
/// Buckets per power of two above `LINEAR`.
const HALF: u64 = 64;
/// Bits of precision kept above `LINEAR` (`HALF` = 2^6).
const SUB_BITS: u32 = 7;
/// 128 linear buckets, then 64 for each of the 57 powers of two from 2^7 to 2^63.
const BUCKETS: usize = (LINEAR + 57 * HALF) as usize;

/// Concurrent histogram of `u64` values (the load tool records nanoseconds).
#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

fn index(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros();
    let shift = msb - (SUB_BITS - 1);
    (LINEAR + (shift as u64 - 1) * HALF + ((value >> shift) - HALF)) as usize
}

/// Lowest value of a bucket and its width.
fn bucket_range(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < LINEAR {
        return (index, 1);
    }
    let k = index - LINEAR;
    let shift = k / HALF + 1;
    ((k % HALF + HALF) << shift, 1 << shift)
}

impl Histogram {
    /// Record one value.
    #[inline]
    pub fn record(&self, value: u64) {
        self.buckets[index(value)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Largest value recorded (exact), 0 if none.
    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// The value at quantile `q` (0.0..=1.0): the middle of the bucket holding it, never
    /// above the maximum. 0 if nothing was recorded.
    pub fn quantile(&self, q: f64) -> u64 {
        let total: u64 = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                let (low, width) = bucket_range(i);
                return (low + width / 2).min(self.max());
            }
        }
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_the_bucket_whose_range_holds_it() {
        let mut samples: Vec<u64> = (0..5000).collect();
        samples.extend((0..64).map(|s| 1u64 << s));
        samples.extend((1..64).map(|s| (1u64 << s) - 1));
        samples.push(u64::MAX);
        for v in samples {
            let i = index(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            let (low, width) = bucket_range(i);
            assert!(low <= v && v - low < width, "{v} not in [{low}, +{width})");
        }
    }

    #[test]
    fn quantiles_are_within_two_percent() {
        let h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for (q, exact) in [
            (0.5, 50_000_000f64),
            (0.9, 90_000_000.0),
            (0.99, 99_000_000.0),
        ] {
            let got = h.quantile(q) as f64;
            assert!((got - exact).abs() / exact < 0.02, "q{q}: {got} vs {exact}");
        }
        assert_eq!(h.max(), 100_000_000);
        assert_eq!(h.quantile(1.0), 100_000_000);
        assert_eq!(h.count(), 100_000);
    }

    #[test]
    fn an_empty_histogram_reports_zero() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.99), 0);
        assert_eq!(h.max(), 0);
    }
}

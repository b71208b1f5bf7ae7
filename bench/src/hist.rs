//! A latency histogram in microseconds: exact below 128 µs, then 64
//! buckets per power of two (under 1.6 % error), so that millions of
//! deliveries cost a few KiB and histograms from several processes merge.

use serde::{Deserialize, Serialize};

use crate::report::Cell;

const LINEAR: u64 = 128;
const SUB_BITS: u32 = 6;
/// Up to 2^40 µs, twelve days: any latency a run can see.
const BUCKETS: usize = 128 + 34 * 64;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hist {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Hist { counts: vec![0; BUCKETS], total: 0, max: 0 }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let bits = 63 - v.leading_zeros(); // >= 7
    let sub = (v >> (bits - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    (LINEAR as usize + (bits as usize - 7) * 64 + sub as usize).min(BUCKETS - 1)
}

/// The middle of a bucket.
fn value(i: usize) -> u64 {
    if (i as u64) < LINEAR {
        return i as u64;
    }
    let k = i - LINEAR as usize;
    let bits = (k / 64) as u32 + 7;
    let width = 1u64 << (bits - SUB_BITS);
    (1u64 << bits) + (k % 64) as u64 * width + width / 2
}

/// Percentiles in milliseconds, for reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    pub fn cells(&self) -> [String; 4] {
        [self.p50, self.p95, self.p99, self.max].map(|ms| ms.cell())
    }
}

impl Hist {
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, other: &Hist) {
        self.counts.iter_mut().zip(&other.counts).for_each(|(a, b)| *a += b);
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The q-quantile (0..=1), in microseconds; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total.max(1));
        if rank >= self.total {
            return self.max;
        }
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value(i).min(self.max);
            }
        }
        self.max
    }

    pub fn ms(&self) -> Latency {
        let ms = |q| (self.quantile(q) as f64 / 10.0).round() / 100.0;
        let [p50, p95, p99, max] = [0.50, 0.95, 0.99, 1.0].map(ms);
        Latency { p50, p95, p99, max }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_close() {
        for v in [0u64, 1, 127, 128, 129, 1000, 12_345, 1_000_000, 60_000_000] {
            let m = value(index(v));
            let err = (m as f64 - v as f64).abs() / (v.max(1) as f64);
            assert!(err < 0.02, "{v} -> {m}");
        }
    }

    #[test]
    fn quantiles_survive_the_pipe_and_merge() {
        let (mut a, mut b) = (Hist::default(), Hist::default());
        for v in 1..=1000u64 {
            [&mut a, &mut b][v as usize % 2].record(v * 100);
        }
        let sent = serde_json::to_string(&a).unwrap();
        let mut m: Hist = serde_json::from_str(&sent).unwrap();
        m.merge(&b);
        assert_eq!(m.total, 1000);
        let p50 = m.quantile(0.5) as f64;
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.02, "{p50}");
        assert_eq!((m.quantile(1.0), m.max), (100_000, 100_000));
        assert_eq!(Hist::default().quantile(0.5), 0);
    }
}

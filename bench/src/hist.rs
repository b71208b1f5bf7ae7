//! A latency histogram in microseconds: exact below 128 µs, then 64
//! buckets per power of two (under 1.6 % error), so that millions of
//! deliveries cost a few KiB and histograms from several processes merge.

use serde::{Deserialize, Serialize};

use crate::results::LatencySummary;

const LINEAR: u64 = 128;
const SUB_BITS: u32 = 6;
const BUCKETS: usize = 128 + 58 * 64;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "SparseHist", from = "SparseHist")]
pub struct Hist {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
            sum: 0,
        }
    }
}

/// A histogram as subscriber processes send it: only the buckets that
/// counted something, as `[index, count]` pairs.
#[derive(Serialize, Deserialize)]
struct SparseHist {
    buckets: Vec<(usize, u64)>,
    max: u64,
    /// JSON numbers are not wide enough for a u128; the mean needs no more.
    sum: f64,
}

impl From<Hist> for SparseHist {
    fn from(h: Hist) -> SparseHist {
        SparseHist {
            buckets: h
                .counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i, *c))
                .collect(),
            max: h.max,
            sum: h.sum as f64,
        }
    }
}

impl From<SparseHist> for Hist {
    fn from(sparse: SparseHist) -> Hist {
        let mut h = Hist::default();
        for (i, c) in sparse.buckets {
            if i < BUCKETS {
                h.counts[i] += c;
                h.total += c;
            }
        }
        h.max = sparse.max;
        h.sum = sparse.sum as u128;
        h
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
    let sub = (k % 64) as u64;
    let width = 1u64 << (bits - SUB_BITS);
    (1u64 << bits) + sub * width + width / 2
}

impl Hist {
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
        self.sum += v as u128;
    }

    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The q-quantile (0..=1), in microseconds; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        if rank == self.total {
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

    /// p50/p95/p99/max in milliseconds, for reports.
    pub fn summary_ms(&self) -> LatencySummary {
        let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
        LatencySummary {
            count: self.total,
            p50_ms: ms(self.quantile(0.50)),
            p95_ms: ms(self.quantile(0.95)),
            p99_ms: ms(self.quantile(0.99)),
            max_ms: ms(self.max),
            mean_ms: (self.mean() / 10.0).round() / 100.0,
        }
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
    fn quantiles_and_merge() {
        let mut a = Hist::default();
        let mut b = Hist::default();
        for v in 1..=1000u64 {
            if v % 2 == 0 {
                a.record(v * 100)
            } else {
                b.record(v * 100)
            }
        }
        let sent = serde_json::to_string(&a).unwrap();
        let mut m: Hist = serde_json::from_str(&sent).unwrap();
        m.merge(&b);
        assert_eq!(m.count(), 1000);
        let p50 = m.quantile(0.5) as f64;
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.02, "{p50}");
        assert_eq!(m.max(), 100_000);
        assert_eq!(m.quantile(1.0), 100_000);
    }
}

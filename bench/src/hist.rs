//! Latencies in microseconds, in an HDR histogram (two significant digits:
//! under 1 % error; an hour at most, longer counting as an hour), so that
//! millions of deliveries cost a few KiB. A
//! subscriber process sends its histogram as the (value, count) pairs it
//! recorded; the coordinator merges them.

use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::report::Cell;

#[derive(Debug, Clone)]
pub struct Hist(Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        Hist(Histogram::new_with_max(3_600_000_000, 2).expect("an hour in µs is in range"))
    }
}

impl Serialize for Hist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(u64, u64)> =
            self.0.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
        pairs.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hist, D::Error> {
        let mut hist = Hist::default();
        for (value, count) in Vec::<(u64, u64)>::deserialize(d)? {
            hist.0.saturating_record_n(value, count);
        }
        Ok(hist)
    }
}

impl Hist {
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us);
    }

    pub fn merge(&mut self, other: &Hist) {
        self.0.add(&other.0).expect("histograms of the same range add");
    }

    /// Percentiles in milliseconds, to two decimals; 0 when empty.
    pub fn ms(&self) -> Latency {
        let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
        let [p50, p95, p99] = [0.50, 0.95, 0.99].map(|q| ms(self.0.value_at_quantile(q)));
        Latency { p50, p95, p99, max: ms(self.0.max()) }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_survive_the_pipe_and_merge() {
        let (mut a, mut b) = (Hist::default(), Hist::default());
        for v in 1..=1000u64 {
            [&mut a, &mut b][v as usize % 2].record(v * 100);
        }
        let mut merged: Hist = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        merged.merge(&b);
        let l = merged.ms();
        assert!((l.p50 - 50.0).abs() < 0.5 && (l.p99 - 99.0).abs() < 1.0 && (l.max - 100.0).abs() < 1.0, "{l:?}");
        assert_eq!(Hist::default().ms().max, 0.0);
    }
}

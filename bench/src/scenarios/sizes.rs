//! How many streams, events and seconds each scenario uses: a full run's
//! and the quick smoke run's.

use std::time::Duration;

pub struct Sizes {
    pub idle_streams: Vec<usize>,
    pub idle_channels: usize,
    pub idle_settle: Duration,
    pub idle_window: Duration,
    /// (subscribers, events, interval)
    pub broadcast: Vec<(usize, u64, Duration)>,
    pub fanout_streams: usize,
    pub fanout_channels: usize,
    pub fanout_rates: Vec<u64>,
    pub fanout_step: Duration,
    pub avalanche_streams: usize,
    pub publisher_seconds: f64,
    pub sources: usize,
    /// How long to wait for other processes to calm down before each measurement.
    pub quiet_wait: Duration,
}

impl Sizes {
    pub fn full() -> Sizes {
        Sizes {
            idle_streams: vec![10_000, 19_000],
            idle_channels: 1000,
            idle_settle: Duration::from_secs(3),
            idle_window: Duration::from_secs(5),
            broadcast: vec![
                (1000, 50, Duration::from_millis(20)),
                (10_000, 50, Duration::from_millis(250)),
            ],
            fanout_streams: 1000,
            fanout_channels: 10,
            fanout_rates: vec![
                500, 1000, 2000, 3000, 4000, 6000, 8000, 12_000, 16_000, 24_000, 32_000,
            ],
            fanout_step: Duration::from_secs(10),
            avalanche_streams: 15_000,
            publisher_seconds: 5.0,
            sources: 40,
            quiet_wait: Duration::from_secs(300),
        }
    }

    pub fn quick() -> Sizes {
        Sizes {
            idle_streams: vec![200],
            idle_channels: 100,
            idle_settle: Duration::from_millis(300),
            idle_window: Duration::from_secs(1),
            broadcast: vec![(200, 20, Duration::from_millis(20))],
            fanout_streams: 200,
            fanout_channels: 10,
            fanout_rates: vec![500, 1000],
            fanout_step: Duration::from_secs(1),
            avalanche_streams: 300,
            publisher_seconds: 1.0,
            sources: 4,
            quiet_wait: Duration::ZERO,
        }
    }
}

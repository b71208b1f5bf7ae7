//! How many streams, events and seconds each scenario uses: a full run's
//! and the quick smoke run's.

use std::time::Duration;

/// How many streams a fleet case opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetSize {
    Streams(usize),
    /// As many as the servers take together (their --max-streams), less
    /// what round-robin may put on one server more than on another.
    Full,
}

pub struct Sizes {
    pub idle_streams: Vec<usize>,
    pub idle_channels: usize,
    /// Streams of the case whose requests carry a session cookie, and its size.
    pub cookie_streams: usize,
    pub cookie_bytes: usize,
    /// Seconds between heartbeats (redisse) and pings (nchan) in the idle
    /// scenario, short to make their cost visible.
    pub idle_heartbeat: u32,
    pub idle_settle: Duration,
    pub idle_window: Duration,
    /// (subscribers, events, interval)
    pub broadcast: Vec<(usize, u64, Duration)>,
    pub fanout_streams: usize,
    pub fanout_channels: usize,
    pub fanout_rates: Vec<u64>,
    pub fanout_step: Duration,
    /// The fan-out at saturation: streams, channels, events in flight per
    /// channel, and how long it publishes.
    pub saturation_streams: usize,
    pub saturation_channels: usize,
    pub saturation_window: u64,
    pub saturation_time: Duration,
    pub avalanche_streams: usize,
    pub publisher_seconds: f64,
    /// Fleet: the cases' sizes, redisse servers behind nginx, and the
    /// broadcast's events and their interval.
    pub fleet_sizes: Vec<FleetSize>,
    pub fleet_servers: usize,
    pub fleet_events: u64,
    pub fleet_interval: Duration,
    /// Deploy: reconnecting streams over 3 servers, on so many channels;
    /// events per second, for how long, when one server is restarted, and
    /// the `--drain` of the case that drains.
    pub deploy_streams: usize,
    pub deploy_channels: usize,
    pub deploy_rate: f64,
    pub deploy_time: Duration,
    pub deploy_restart_at: Duration,
    pub deploy_drain: u64,
    /// Source addresses the subscribers connect from.
    pub sources: usize,
    /// How long to wait for other processes to calm down before each case.
    pub quiet_wait: Duration,
}

impl Sizes {
    pub fn full() -> Sizes {
        Sizes {
            idle_streams: vec![10_000, 19_000],
            idle_channels: 1000,
            cookie_streams: 10_000,
            cookie_bytes: 6 * 1024,
            idle_heartbeat: 1,
            idle_settle: Duration::from_secs(3),
            idle_window: Duration::from_secs(5),
            broadcast: vec![(1000, 50, Duration::from_millis(20)), (10_000, 50, Duration::from_millis(250))],
            fanout_streams: 1000,
            fanout_channels: 10,
            fanout_rates: vec![500, 1000, 2000, 3000, 4000, 6000, 8000, 12_000, 16_000, 24_000, 32_000],
            fanout_step: Duration::from_secs(10),
            saturation_streams: 10_000,
            saturation_channels: 10,
            // One: each channel's next event waits for the previous one, the
            // plainest closed loop. More lets the servers batch their writes
            // (--saturation-window), for throughput at the cost of latency.
            saturation_window: 1,
            saturation_time: Duration::from_secs(10),
            avalanche_streams: 15_000,
            publisher_seconds: 5.0,
            fleet_sizes: vec![FleetSize::Streams(50_000), FleetSize::Full],
            fleet_servers: 3,
            fleet_events: 10,
            // Longer than one event takes to reach 50,000 streams here (2 s
            // or so): events that overlap would measure a growing queue.
            fleet_interval: Duration::from_millis(3000),
            deploy_streams: 15_000,
            deploy_channels: 10,
            deploy_rate: 50.0,
            deploy_time: Duration::from_secs(30),
            deploy_restart_at: Duration::from_secs(5),
            deploy_drain: 10,
            sources: 40,
            quiet_wait: Duration::from_secs(300),
        }
    }

    /// Small counts, about a minute in all: checks that the harness works.
    pub fn quick() -> Sizes {
        Sizes {
            idle_streams: vec![200],
            idle_channels: 100,
            cookie_streams: 200,
            idle_settle: Duration::from_millis(300),
            idle_window: Duration::from_secs(1),
            broadcast: vec![(200, 20, Duration::from_millis(20))],
            fanout_streams: 200,
            fanout_rates: vec![500, 1000],
            fanout_step: Duration::from_secs(1),
            saturation_streams: 300,
            saturation_time: Duration::from_secs(2),
            avalanche_streams: 300,
            publisher_seconds: 1.0,
            fleet_sizes: vec![FleetSize::Streams(600)],
            fleet_events: 5,
            fleet_interval: Duration::from_millis(100),
            deploy_streams: 600,
            deploy_time: Duration::from_secs(8),
            deploy_restart_at: Duration::from_secs(1),
            deploy_drain: 2,
            sources: 4,
            quiet_wait: Duration::ZERO,
            ..Sizes::full()
        }
    }
}

//! What the server counts: the 0.4 stats (as JSON, unchanged), and more
//! for Prometheus (`GET /metrics`) and health checks (`GET /health`).
//!
//! Counters are plain atomics, bumped where things happen; the text for
//! Prometheus is made from them at each scrape (with `prometheus-client`,
//! in its OpenMetrics text format). No metric has a per-channel label:
//! their number stays the same whatever the channels.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::protocol::stats::Stats;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub struct Metrics {
    /// `connected`, `events`, `served`, `missing`: the stats of 0.4.
    pub stats: Stats,
    /// Streams whose connection was closed because their client fell behind.
    pub dropped_slow: AtomicU64,
    /// 503 answers, whatever the reason.
    pub unavailable: AtomicU64,
    /// Requests refused for their token.
    pub tokens_refused: AtomicU64,
    /// Requests whose client left before they were answered (while the
    /// application picked their channels, say).
    pub abandoned: AtomicU64,
    pub pubsub_reconnects: AtomicU64,
    pub commands_reconnects: AtomicU64,
    /// Channels subscribed in Redis now.
    pub channels: AtomicU64,
    /// Reads of the counter and histories that streams asked for, and the
    /// commands Redis got for them: merged reads make far fewer commands.
    pub history_requests: AtomicU64,
    pub history_commands: AtomicU64,
    /// How long reading a stream's history (and the counter) took.
    pub history_reads: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            stats: Stats::default(),
            dropped_slow: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            tokens_refused: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            pubsub_reconnects: AtomicU64::new(0),
            commands_reconnects: AtomicU64::new(0),
            channels: AtomicU64::new(0),
            history_requests: AtomicU64::new(0),
            history_commands: AtomicU64::new(0),
            // From 100 µs to about 3 s.
            history_reads: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
        }
    }
}

/// Whether each Redis connection is up, as the server sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisLinks {
    pub pubsub: bool,
    pub commands: bool,
}

impl Metrics {
    /// The Prometheus text of every metric.
    pub fn encode(&self, links: RedisLinks) -> String {
        let stats = &self.stats;
        let gauges: [(&str, &str, u64); 4] = [
            (
                "streams_connected",
                "Event streams open now",
                stats.connected.load(Relaxed),
            ),
            (
                "redis_pubsub_up",
                "Whether the Redis pub/sub connection is up",
                links.pubsub.into(),
            ),
            (
                "redis_commands_up",
                "Whether the Redis command connection is up",
                links.commands.into(),
            ),
            (
                "channels_subscribed",
                "Channels subscribed in Redis",
                self.channels.load(Relaxed),
            ),
        ];
        let counters: [(&str, &str, &AtomicU64); 11] = [
            (
                "streams_served",
                "Event streams that have ended",
                &stats.served,
            ),
            (
                "events_sent",
                "Events written to clients (history, lastEventId and missedevents included)",
                &stats.events,
            ),
            (
                "streams_missed_events",
                "Streams that started with a missedevents event",
                &stats.missing,
            ),
            (
                "streams_dropped_slow",
                "Streams closed because their client fell too far behind",
                &self.dropped_slow,
            ),
            (
                "responses_unavailable",
                "Requests answered 503 (Redis down, full, stopping, channels too slow)",
                &self.unavailable,
            ),
            (
                "tokens_refused",
                "Stream requests refused for a missing, bad or expired token",
                &self.tokens_refused,
            ),
            (
                "requests_abandoned",
                "Requests whose client left before they were answered",
                &self.abandoned,
            ),
            (
                "history_requests",
                "Reads of the counter and histories that opening streams asked for",
                &self.history_requests,
            ),
            (
                "history_commands",
                "Commands sent to Redis for those reads (merged reads share them)",
                &self.history_commands,
            ),
            (
                "redis_pubsub_reconnects",
                "Pub/sub connections made again after one was lost",
                &self.pubsub_reconnects,
            ),
            (
                "redis_commands_reconnects",
                "Command connections made again after one failed",
                &self.commands_reconnects,
            ),
        ];
        let mut registry = Registry::with_prefix("redisse");
        for (name, help, value) in gauges {
            let value: ConstGauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            registry.register(name, help, value);
        }
        for (name, help, value) in counters {
            registry.register(name, help, ConstCounter::new(value.load(Relaxed)));
        }
        registry.register(
            "history_read_seconds",
            "Time to read a stream's history (its count: histories read)",
            self.history_reads.clone(),
        );
        let mut text = String::new();
        encode(&mut text, &registry).expect("a String takes any text");
        text
    }
}

/// Tracks whether a connection is up, and counts its comebacks.
#[derive(Debug, Default)]
pub struct LinkHealth {
    up: AtomicBool,
    /// Went down at least once since it was last up.
    failed: AtomicBool,
}

impl LinkHealth {
    pub fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }

    /// It worked; `true` if it had failed before (a reconnection).
    pub fn worked(&self) -> bool {
        self.up.store(true, Relaxed);
        self.failed.swap(false, Relaxed)
    }

    pub fn failed(&self) {
        if self.up.swap(false, Relaxed) {
            self.failed.store(true, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_in_the_text() {
        let metrics = Metrics::default();
        metrics.stats.served.store(3, Relaxed);
        metrics.history_reads.observe(0.002);
        let text = metrics.encode(RedisLinks {
            pubsub: true,
            commands: false,
        });
        for line in [
            "redisse_streams_connected 0",
            "redisse_streams_served_total 3",
            "redisse_events_sent_total 0",
            "redisse_streams_missed_events_total 0",
            "redisse_streams_dropped_slow_total 0",
            "redisse_responses_unavailable_total 0",
            "redisse_requests_abandoned_total 0",
            "redisse_redis_pubsub_up 1",
            "redisse_redis_commands_up 0",
            "redisse_redis_pubsub_reconnects_total 0",
            "redisse_channels_subscribed 0",
            "redisse_history_read_seconds_count 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_link_counts_its_comebacks() {
        let link = LinkHealth::default();
        assert!(!link.is_up());
        assert!(!link.worked(), "the first connection is no comeback");
        link.failed();
        assert!(!link.is_up());
        assert!(link.worked());
        assert!(!link.worked());
    }
}

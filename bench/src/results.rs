//! What a run writes into results.json, and what the report is made of:
//! one typed record per measured case, so that the run and the report
//! agree on every field name at compile time.
//!
//! The file is also read back by `redisse-bench report`, so the field names
//! are the file format: renaming one makes older results.json unreadable.

use std::collections::BTreeMap;

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::servers::Kind;

/// The whole of results.json.
#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
    pub quick: bool,
    pub meta: Meta,
    pub records: Vec<Record>,
    /// One line per case that could not run, as the report lists them.
    pub failures: Vec<String>,
}

/// About the run as a whole: where and when it ran, on what.
#[derive(Debug, Serialize, Deserialize)]
pub struct Meta {
    pub quick: bool,
    pub date: String,
    pub commit: String,
    pub machine: String,
    pub versions: String,
    /// Seconds between heartbeats in the idle scenario.
    pub heartbeat: u32,
    /// The subscribers' source addresses, e.g. `127.0.0.2-127.0.0.41`.
    pub sources: String,
    pub duration_s: f64,
}

/// One line of results: a measured case, or a case that could not run.
// A run has a few dozen records: boxing the measurements would save nothing worth the noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Record {
    Measured(Measurement),
    Failed(FailedRecord),
}

/// A failed case carries its scenario's name like a measurement does but
/// none of its figures, so it is told apart by its `error` field; looking
/// first lets a damaged measurement say which field it lacks.
impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Record, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let record = if value.get("error").is_some() {
            FailedRecord::deserialize(value).map(Record::Failed)
        } else {
            Measurement::deserialize(value).map(Record::Measured)
        };
        record.map_err(D::Error::custom)
    }
}

/// A case that could not run at all (a server that did not start, no
/// stream opened, no delivery).
#[derive(Debug, Serialize, Deserialize)]
pub struct FailedRecord {
    pub scenario: String,
    /// A server's name, or `-` for the publisher, which runs without one.
    pub server: String,
    pub error: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "scenario", rename_all = "lowercase")]
pub enum Measurement {
    Idle(IdleRecord),
    Broadcast(BroadcastRecord),
    Fanout(FanoutRecord),
    Avalanche(AvalancheRecord),
    Publisher(PublisherRecord),
    Profile(ProfileRecord),
    Fleet(FleetRecord),
}

/// Percent of one core used by each party over a measured window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CpuShare {
    pub server_cpu_pct: f64,
    /// The load generator: the coordinator and its subscriber processes.
    pub client_cpu_pct: f64,
    pub redis_cpu_pct: f64,
    /// Everything else on the machine (other processes, interrupts): high
    /// values mean the figures were disturbed.
    pub other_cpu_pct: f64,
    pub window_s: f64,
}

/// More than a quarter of a core went to other processes during the measurement.
const DISTURBED_PCT: f64 = 25.0;

impl CpuShare {
    pub fn disturbed(&self) -> bool {
        self.other_cpu_pct > DISTURBED_PCT
    }
}

/// Delivery latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// Error kinds and how often each happened, e.g. `{"timeout": 3}`.
pub type Counts = BTreeMap<String, u64>;

/// Memory and CPU of a server holding many quiet streams.
#[derive(Debug, Serialize, Deserialize)]
pub struct IdleRecord {
    pub server: Kind,
    pub streams: usize,
    pub channels: usize,
    pub client_processes: usize,
    pub opened: u64,
    pub failed: u64,
    pub errors: Counts,
    pub open_s: f64,
    pub closed: u64,
    pub rss_before_kib: u64,
    pub rss_with_kib: u64,
    pub kib_per_stream: f64,
    pub fds_before: usize,
    pub fds_with: usize,
    pub heartbeat_s: u32,
    pub heartbeat_bytes_per_s: f64,
    /// The streams redisse itself counts (its stats page); none for nchan.
    pub server_connected: Option<u64>,
    pub server_alive: bool,
    #[serde(flatten)]
    pub cpu: CpuShare,
    pub attempt: u32,
}

/// Events published at a fixed pace to subscribers all on one channel.
#[derive(Debug, Serialize, Deserialize)]
pub struct BroadcastRecord {
    pub server: Kind,
    /// The case in words, e.g. `10k subscribers, 50 events 250 ms apart`.
    pub case: String,
    pub subscribers: usize,
    pub events: u64,
    pub interval_ms: u64,
    pub opened: u64,
    pub failed: u64,
    pub errors: Counts,
    pub published: u64,
    pub publish_failed: u64,
    pub publish_errors: Counts,
    pub expected: u64,
    pub received: u64,
    pub missing: u64,
    pub closed: u64,
    pub close_reasons: Counts,
    pub latency: LatencySummary,
    pub server_alive: bool,
    #[serde(flatten)]
    pub cpu: CpuShare,
    pub attempt: u32,
}

/// One offered rate of the fan-out: publishes spread over a few channels.
#[derive(Debug, Serialize, Deserialize)]
pub struct FanoutRecord {
    pub server: Kind,
    pub streams: usize,
    pub channels: usize,
    pub opened: u64,
    pub offered_per_s: u64,
    pub publishes_per_s: f64,
    pub publish_failed: u64,
    pub publish_errors: Counts,
    pub deliveries_per_s: f64,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub closed: u64,
    pub close_reasons: Counts,
    pub latency: LatencySummary,
    /// No loss, p99 under 100 ms and at least 95 % of the offered rate published.
    pub sustained: bool,
    pub attempt: u32,
    #[serde(flatten)]
    pub cpu: CpuShare,
}

/// Every stream opened at once.
#[derive(Debug, Serialize, Deserialize)]
pub struct AvalancheRecord {
    pub server: Kind,
    pub streams: usize,
    pub client_processes: usize,
    pub opened: u64,
    pub failed: u64,
    pub errors: Counts,
    pub connect_p50_ms: f64,
    pub connect_p95_ms: f64,
    pub connect_p99_ms: f64,
    pub connect_max_ms: f64,
    pub all_opened_s: f64,
    /// From every client closing at once until the server is back to its
    /// idle descriptors; none if not within 60 s.
    pub all_closed_s: Option<f64>,
    /// Opening one stream right after: what the closing left to do.
    pub next_stream_ms: Option<f64>,
    pub rss_with_kib: u64,
    /// The server's accept-queue length; unknown when `ss` could not tell.
    pub listen_backlog: Option<u64>,
    pub listen_overflows: u64,
    pub listen_drops: u64,
    pub server_alive: bool,
    #[serde(flatten)]
    pub cpu: CpuShare,
    pub attempt: u32,
}

/// Several redisse servers behind one nginx, every stream on one channel:
/// how many streams the fleet holds, and a broadcast to all of them.
#[derive(Debug, Serialize, Deserialize)]
pub struct FleetRecord {
    pub streams: usize,
    /// The case that fills the servers: as many streams as they take together.
    pub servers_full: bool,
    pub nginx_workers: usize,
    pub worker_connections: usize,
    pub client_processes: usize,
    /// Source addresses the subscribers connect from.
    pub sources: usize,
    /// Source addresses nginx connects to the servers from (`proxy_bind`).
    pub upstream_sources: usize,
    /// Ports in net.ipv4.ip_local_port_range: connections one (source,
    /// destination) pair of addresses and ports can have.
    pub ephemeral_ports: u64,
    pub opened: u64,
    pub failed: u64,
    pub errors: Counts,
    pub open_s: f64,
    pub connect_p50_ms: f64,
    pub connect_p99_ms: f64,
    pub servers: Vec<FleetServer>,
    /// The sum of the servers' `connected`, when every one answered.
    pub connected_total: Option<u64>,
    pub workers: Vec<FleetProcess>,
    pub nginx_master_rss_kib: u64,
    /// All subscriber processes together.
    pub client_rss_kib: u64,
    /// The machine's TCP sockets once every stream was open, and the
    /// kernel memory their buffers held (/proc/net/sockstat).
    pub tcp_sockets: u64,
    pub tcp_mem_kib: u64,
    /// The machine's memory, and what was still available with every stream open.
    pub mem_total_kib: u64,
    pub mem_available_kib: u64,
    pub events: u64,
    pub interval_ms: u64,
    pub published: u64,
    pub publish_failed: u64,
    pub publish_errors: Counts,
    pub expected: u64,
    pub received: u64,
    pub missing: u64,
    pub closed: u64,
    pub close_reasons: Counts,
    pub latency: LatencySummary,
    pub nginx_alive: bool,
    /// The servers' and the nginx workers' parts of `server_cpu_pct`.
    pub redisse_cpu_pct: f64,
    pub nginx_cpu_pct: f64,
    #[serde(flatten)]
    pub cpu: CpuShare,
    pub attempt: u32,
}

/// One redisse server of a fleet, as its own stats page and /proc tell.
#[derive(Debug, Serialize, Deserialize)]
pub struct FleetServer {
    pub port: u16,
    /// Its stats' `connected` once every stream was open.
    pub connected: Option<u64>,
    /// How much its stats' `events` rose over the broadcast: the events it wrote.
    pub events_sent: Option<u64>,
    /// The most streams it takes at once (its --max-streams default).
    pub max_streams: Option<u64>,
    #[serde(flatten)]
    pub process: FleetProcess,
    pub alive: bool,
}

/// Memory and descriptors of one process of a fleet, once every stream was open.
#[derive(Debug, Serialize, Deserialize)]
pub struct FleetProcess {
    pub rss_kib: u64,
    pub fds: usize,
}

/// Publishes per second from Ruby, `Redisse.publish` (new) against the 0.4
/// gem's way (old), with 1 and with 8 threads: the JSON line that
/// bench/publisher.rb prints.
#[derive(Debug, Serialize, Deserialize)]
pub struct PublisherRecord {
    pub seconds: f64,
    pub redis_rb: Option<String>,
    pub ruby: Option<String>,
    pub new_1: u64,
    pub old_1: u64,
    pub ratio_1: f64,
    pub new_8: u64,
    pub old_8: u64,
    pub ratio_8: f64,
}

/// Where redisse spends its time under fan-out (`perf`, full runs with --profile).
#[derive(Debug, Serialize, Deserialize)]
pub struct ProfileRecord {
    pub server: Kind,
    pub rate: u64,
    pub published: u64,
    pub received: u64,
    pub latency: LatencySummary,
    /// `perf report` lines, the busiest symbol first.
    pub top: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"{"scenario":"profile","server":"nchan+redis","rate":3000,"published":1,"received":2,"latency":{"count":2,"p50_ms":0.5,"p95_ms":1.0,"p99_ms":1.0,"max_ms":1.25,"mean_ms":0.6},"top":["12.5%  write"]}"#;

    #[test]
    fn a_record_reads_back_as_written() {
        let record: Record = serde_json::from_str(PROFILE).unwrap();
        assert!(
            matches!(&record, Record::Measured(Measurement::Profile(p)) if p.server == Kind::NchanRedis)
        );
        let again = serde_json::to_value(&record).unwrap();
        assert_eq!(again, serde_json::from_str::<Value>(PROFILE).unwrap());
    }

    #[test]
    fn a_failed_case_is_told_by_its_error() {
        let line = r#"{"scenario":"idle","server":"nchan","error":"no stream opened"}"#;
        let record: Record = serde_json::from_str(line).unwrap();
        assert!(matches!(record, Record::Failed(f) if f.scenario == "idle" && f.server == "nchan"));
    }

    #[test]
    fn a_missing_field_is_named() {
        let line = PROFILE.replace(r#""published":1,"#, "");
        let error = serde_json::from_str::<Record>(&line).unwrap_err();
        assert!(error.to_string().contains("`published`"), "{error}");
    }
}

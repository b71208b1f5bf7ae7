//! The scenarios, each run against every server in turn with the same
//! client: one file per scenario, numbered as in the report. Every result
//! is one record of results.json; a scenario that cannot run at all (a
//! server that does not start, no stream opened, no delivery) is a failed
//! record.

mod avalanche;
mod broadcast;
mod fanout;
mod fleet;
mod idle;
mod measure;
mod publisher;
mod sizes;

use std::path::PathBuf;
use std::time::Duration;

pub use sizes::{FleetSize, Sizes};

use crate::fleet::{Fleet, Opened, Spec};
use crate::publish::Publisher;
use crate::results::{FailedRecord, Measurement, Record};
use crate::servers::{Env, Kind, Server};
use crate::sys;

/// Streams connecting at a time per subscriber process when a scenario
/// sets up its streams (the avalanche opens all at once instead).
const OPEN_CONCURRENCY: usize = 100;

/// A run: what to measure against which servers, and the records so far.
pub struct Bench {
    pub env: Env,
    pub exe: PathBuf,
    pub root: PathBuf,
    pub sizes: Sizes,
    pub targets: Vec<Kind>,
    pub redis_pid: u32,
    pub profile: bool,
    pub run_id: u32,
    tag: u32,
    pub records: Vec<Record>,
    pub failures: Vec<String>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Bench {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        env: Env,
        exe: PathBuf,
        root: PathBuf,
        sizes: Sizes,
        targets: Vec<Kind>,
        redis_pid: u32,
        profile: bool,
    ) -> Bench {
        let run_id = (sys::now_us() / 1_000_000 % 100_000) as u32;
        Bench {
            env,
            exe,
            root,
            sizes,
            targets,
            redis_pid,
            profile,
            run_id,
            tag: run_id * 1000,
            records: Vec::new(),
            failures: Vec::new(),
        }
    }

    fn next_tag(&mut self) -> u32 {
        self.tag += 1;
        self.tag
    }

    fn prefix(&self, scenario: &str) -> String {
        format!("b{}{}", self.run_id, scenario)
    }

    /// Starts subscriber processes and opens their streams, some at a time;
    /// an error if none opened.
    async fn open_fleet(
        &self,
        server: &Server,
        channel_prefix: &str,
        channels: usize,
        streams: usize,
    ) -> Result<(Fleet, Opened), String> {
        let spec = self.fleet_spec(
            server,
            channel_prefix,
            channels,
            streams,
            OPEN_CONCURRENCY,
            Duration::from_secs(30),
        );
        let mut fleet = Fleet::spawn(&spec).await?;
        let opened = fleet.open(Duration::from_secs(180)).await?;
        if opened.ok == 0 {
            return Err(format!("no stream opened: {:?}", opened.errors));
        }
        Ok((fleet, opened))
    }

    fn fleet_spec(
        &self,
        server: &Server,
        channel_prefix: &str,
        channels: usize,
        streams: usize,
        concurrency: usize,
        connect_timeout: Duration,
    ) -> Spec {
        Spec {
            exe: self.exe.clone(),
            server: server.addr,
            path_template: server.kind.stream_path(&format!("{channel_prefix}_{{c}}")),
            channels,
            streams,
            concurrency,
            connect_timeout,
            max_seconds: 1800.0,
            sources: self.sizes.sources,
        }
    }

    fn fail(&mut self, scenario: &str, server: Option<Kind>, error: String) {
        let name = server.map_or("-", Kind::name);
        eprintln!("bench: {scenario} / {name}: FAILED: {error}");
        self.failures.push(format!("{scenario} / {name}: {error}"));
        self.records.push(Record::Failed(FailedRecord {
            scenario: scenario.to_string(),
            server: name.to_string(),
            error,
        }));
    }

    fn record(&mut self, measurement: Measurement) {
        let record = Record::Measured(measurement);
        eprintln!(
            "bench: {}",
            serde_json::to_string(&record).unwrap_or_default()
        );
        self.records.push(record);
    }

    async fn publisher_for(&self, server: &Server) -> Result<Publisher, String> {
        match server.kind {
            Kind::Redisse => Publisher::redis(&self.env.redis_url()).await,
            _ => Ok(Publisher::http(server.addr)),
        }
    }
}

/// A count as case names and chart labels give it: `10k`, `1500`.
pub fn thousands(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

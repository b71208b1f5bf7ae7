//! The scenarios, each run against every server in turn with the same
//! client. A scenario is one module: it measures its cases into
//! [`Results`] and builds its section of the report, tables and all, from
//! them. Adding one (a `deploy` scenario, say) is a module, a [`Scenario`]
//! value, a field of [`Results`] and a line in `Bench::run` and
//! `Bench::sections` (as `deploy` was).

mod avalanche;
mod broadcast;
mod deploy;
mod fanout;
mod fleet;
mod idle;
mod publisher;
mod sizes;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use deploy::COMMANDS_PER_LONE_READ;
pub use sizes::{FleetSize, Sizes};

use crate::hist::Latency;
use crate::publish::{Published, Publisher};
use crate::report::{Cell, Meta, Section};
use crate::servers::{Env, Kind, Server};
use crate::subscribe::{Counters, Opened};
use crate::subscribers::{Spec, Subscribers};
use crate::sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Idle,
    Broadcast,
    Fanout,
    Avalanche,
    Publisher,
    Fleet,
    Deploy,
}

/// What the scenarios measured, in the order the cases ran.
#[derive(Default)]
pub struct Results {
    pub idle: Vec<idle::Idle>,
    /// Idle streams whose requests carried a session cookie.
    pub cookie: Vec<idle::Idle>,
    pub broadcast: Vec<broadcast::Broadcast>,
    pub fanout: Vec<fanout::Step>,
    pub saturation: Vec<fanout::Saturation>,
    pub profile: Option<fanout::Profile>,
    pub avalanche: Vec<avalanche::Avalanche>,
    pub publisher: Option<publisher::Rates>,
    pub fleet: Vec<fleet::FleetCase>,
    pub deploy: Vec<deploy::Deploy>,
    /// One line per case that could not run.
    pub failures: Vec<String>,
}

/// A run: what to measure against which servers, and the results so far.
pub struct Bench {
    pub env: Env,
    /// This program, run again as subscriber processes.
    pub exe: PathBuf,
    pub root: PathBuf,
    pub sizes: Sizes,
    pub servers: Vec<Kind>,
    pub redis_pid: u32,
    pub profile: bool,
    /// Names this run's channels: runs never share one.
    pub run_id: u32,
    /// The last tag given to a phase's events.
    pub tag: u32,
    pub results: Results,
}

/// A case's record, which `Bench::measure` takes again while other
/// processes disturbed it.
trait Case {
    fn cpu(&self) -> &Cpu;
}

/// More than a quarter of a core went to other processes during a case.
const DISTURBED_PCT: f64 = 25.0;

/// Streams connecting at a time per subscriber process when a scenario
/// sets up its streams (the avalanche opens all at once instead).
const OPEN_CONCURRENCY: usize = 100;

impl Bench {
    pub async fn run(&mut self, scenario: Scenario) {
        match scenario {
            Scenario::Idle => self.idle().await,
            Scenario::Broadcast => self.broadcast().await,
            Scenario::Fanout => self.fanout().await,
            Scenario::Avalanche => self.avalanche().await,
            Scenario::Publisher => self.publisher().await,
            Scenario::Fleet => self.fleet().await,
            Scenario::Deploy => self.deploy().await,
        }
    }

    /// The scenarios' sections, for those that measured something.
    pub fn sections(&self, meta: &Meta) -> Vec<Section> {
        let r = &self.results;
        let all = [
            idle::section(r, meta),
            broadcast::section(r),
            fanout::section(r, meta),
            avalanche::section(r),
            publisher::section(r),
            fleet::section(r, meta),
            deploy::section(r),
        ];
        all.into_iter().flatten().collect()
    }

    fn next_tag(&mut self) -> u32 {
        self.tag += 1;
        self.tag
    }

    /// Channel names of this run and scenario.
    fn prefix(&self, scenario: &str) -> String {
        format!("b{}{scenario}", self.run_id)
    }

    /// Streams on `channels` channels of `prefix`, 100 opening at a time per process.
    fn spec(&self, server: &Server, prefix: &str, channels: usize, streams: usize) -> Spec {
        Spec {
            exe: self.exe.clone(),
            server: server.addr,
            path: server.kind.stream_path(&format!("{prefix}_{{c}}")),
            channels,
            streams,
            concurrency: OPEN_CONCURRENCY,
            sources: self.sizes.sources,
            cookie_bytes: 0,
            reconnect: false,
        }
    }

    /// Starts subscriber processes and opens their streams; an error if none opened.
    async fn open(&self, spec: &Spec) -> Result<(Subscribers, Opened), String> {
        let mut subscribers = Subscribers::spawn(spec).await?;
        let opened = subscribers.open(Duration::from_secs(300)).await?;
        if opened.ok == 0 {
            return Err(format!("no stream opened: {:?}", opened.errors));
        }
        Ok((subscribers, opened))
    }

    fn fail(&mut self, what: &str, server: Option<Kind>, error: String) {
        let line = format!("{what} / {}: {error}", server.map_or("-", Kind::name));
        eprintln!("bench: FAILED: {line}");
        self.results.failures.push(line);
    }

    async fn publisher_for(&self, server: &Server) -> Result<Publisher, String> {
        match server.kind {
            Kind::Redisse => Publisher::redis(&self.env.redis_url()).await,
            _ => Ok(Publisher::Http {
                server: server.addr,
            }),
        }
    }

    fn cpu_mark(&self, server_pids: &[u32], subscribers: &Subscribers) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            server: sys::cpu_seconds_of(server_pids),
            client: sys::self_cpu_seconds() + subscribers.cpu_s(),
            redis: sys::cpu_seconds(self.redis_pid).unwrap_or(0.0),
            machine: sys::machine_busy_seconds(),
        }
    }

    /// What each party used since `mark`.
    fn cpu_since(&self, mark: &CpuMark, server_pids: &[u32], subscribers: &Subscribers) -> Cpu {
        let now = self.cpu_mark(server_pids, subscribers);
        let (server, client, redis) = (
            now.server - mark.server,
            now.client - mark.client,
            now.redis - mark.redis,
        );
        let other = (now.machine - mark.machine - server - client - redis).max(0.0);
        let window = now.at.duration_since(mark.at).as_secs_f64();
        Cpu {
            server,
            client,
            redis,
            other,
            window,
        }
    }

    /// Waits for `expected` deliveries of what was `published` (until none
    /// came for `quiet`, at most ten times that), then tells what the
    /// subscribers received and what CPU each party used since `mark`.
    async fn delivered(
        &self,
        subscribers: &mut Subscribers,
        published: &Published,
        expected: u64,
        quiet: Duration,
        (mark, pids): (CpuMark, &[u32]),
    ) -> Result<(Counters, Latency, Cpu), String> {
        subscribers.wait_for(expected, quiet, quiet * 10).await?;
        let cpu = self.cpu_since(&mark, pids, subscribers);
        let (tally, latency) = subscribers.report().await?;
        if tally.received == 0 {
            return Err(format!(
                "no event delivered ({} published, errors {:?})",
                published.ok, published.errors
            ));
        }
        Ok((tally, latency.ms(), cpu))
    }

    /// Waits until the rest of the machine is quiet (under 20 % of a core
    /// busy over a second), for at most `quiet_wait`: the machine may be
    /// shared, and a build or a test suite running beside the benchmark
    /// would show up as the servers' latency.
    async fn wait_quiet(&self) {
        let started = Instant::now();
        let redis = || sys::cpu_seconds(self.redis_pid).unwrap_or(0.0);
        while started.elapsed() < self.sizes.quiet_wait {
            let (machine, redis_before) = (sys::machine_busy_seconds(), redis());
            tokio::time::sleep(Duration::from_secs(1)).await;
            if (sys::machine_busy_seconds() - machine) - (redis() - redis_before) < 0.2 {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(2) {
            eprintln!(
                "bench: waited {:.0} s for the machine to be quiet",
                started.elapsed().as_secs_f64()
            );
        }
    }

    /// Runs a case on a quiet machine, again once if other processes
    /// disturbed it (full runs only), and stores the less disturbed into
    /// `store`; a case that cannot run at all is a failure. True if stored.
    async fn measure<C: Case>(
        &mut self,
        what: String,
        kind: Kind,
        store: fn(&mut Results) -> &mut Vec<C>,
        mut run: impl AsyncFnMut(&mut Self) -> Result<C, String>,
    ) -> bool {
        eprintln!("bench: {what} / {}", kind.name());
        let (mut best, attempts): (Option<C>, u32) = (
            None,
            if self.sizes.quiet_wait.is_zero() {
                1
            } else {
                2
            },
        );
        for attempt in 1..=attempts {
            self.wait_quiet().await;
            match run(self).await {
                Ok(c) if best.as_ref().is_none_or(|b| c.cpu().other < b.cpu().other) => {
                    best = Some(c)
                }
                Ok(_) => {}
                Err(e) => {
                    self.fail(&what, Some(kind), e);
                    return false;
                }
            }
            let other = best.as_ref().map_or(0.0, |b| b.cpu().pct(b.cpu().other));
            if other <= DISTURBED_PCT || attempt == attempts {
                break;
            }
            eprintln!("bench: {what} was disturbed by other processes ({other} % of a core): measuring it again");
        }
        best.map(|c| store(&mut self.results).push(c)).is_some()
    }
}

/// CPU seconds of the server, the client (this process and its subscriber
/// processes) and Redis at one moment.
struct CpuMark {
    at: Instant,
    server: f64,
    client: f64,
    redis: f64,
    machine: f64,
}

/// CPU seconds each party used over a measured window: *other* is the
/// rest of the machine (other processes, interrupts).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub server: f64,
    pub client: f64,
    pub redis: f64,
    pub other: f64,
    pub window: f64,
}

impl Cpu {
    /// Percent of one core over the window.
    pub fn pct(&self, seconds: f64) -> f64 {
        (seconds / self.window.max(1e-3) * 1000.0).round() / 10.0
    }

    /// The server's CPU µs per delivery.
    pub fn server_us(&self, deliveries: u64) -> Option<f64> {
        (deliveries > 0).then(|| (self.server * 1e7 / deliveries as f64).round() / 10.0)
    }

    /// Server, client, Redis and other CPU %, as table cells.
    pub fn cells(&self) -> Vec<String> {
        [self.server, self.client, self.redis, self.other]
            .map(|s| self.pct(s).cell())
            .into()
    }
}

/// The column names of `Cpu::cells`.
pub const CPU_COLUMNS: &str = "server CPU % | client CPU % | redis CPU % | other CPU %";

/// A count as case names give it: `10k`, `1500`.
pub fn thousands(n: usize) -> String {
    match n {
        n if n >= 1000 && n.is_multiple_of(1000) => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

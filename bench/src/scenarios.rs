//! The scenarios, each run against every server in turn with the same
//! client. A scenario is one module: it measures its cases into
//! [`Results`] and builds its section of the report, tables and all, from
//! them. Adding one is a module, a [`Scenario`] value, a field of
//! [`Results`] and a line in `Bench::run` and `Bench::sections`.

mod avalanche;
mod broadcast;
mod deploy;
mod fanout;
mod fleet;
mod idle;
mod ruby_publishing;
mod sizes;

use std::time::{Duration, Instant};

pub use deploy::COMMANDS_PER_LONE_READ;
pub use sizes::Sizes;

use crate::hist::Latency;
use crate::publish::{Published, Publisher};
use crate::report::{of, Cell, Meta, Section};
use crate::servers::{Env, Kind, Server, DEFAULT_HEARTBEAT};
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
    pub publisher: Option<ruby_publishing::Rates>,
    pub fleet: Vec<fleet::FleetCase>,
    pub deploy: Vec<deploy::Deploy>,
    /// One line per case that could not run.
    pub failures: Vec<String>,
}

/// A run: what to measure against which servers, and the results so far.
pub struct Bench {
    pub env: Env,
    pub sizes: Sizes,
    pub servers: Vec<Kind>,
    pub redis_pid: u32,
    pub profile: bool,
    /// Names this run's channels: runs never share one.
    pub run_id: u32,
    /// The last tag given to a phase's events.
    pub tag: u32,
    pub results: Results,
    /// The most of a core other processes took in a measured window of the
    /// case under way (%): `measure` runs a disturbed case again.
    pub disturbed: std::cell::Cell<f64>,
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
            idle::section(r, &self.sizes),
            broadcast::section(r),
            fanout::section(r, meta),
            avalanche::section(r),
            ruby_publishing::section(r),
            fleet::section(r, &self.sizes, meta),
            deploy::section(r, &self.sizes),
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

    /// A fresh server of `kind` with `streams` streams over `channels`
    /// channels named after `label`, a publisher to it, half a second to settle.
    async fn setup(&mut self, kind: Kind, label: &str, channels: usize, streams: usize) -> Result<Setup, String> {
        let server = Server::start(kind, &self.env, label, DEFAULT_HEARTBEAT).await?;
        let prefix = self.prefix(label);
        let (subscribers, opened) = self.open(&self.spec(&server, &prefix, channels, streams)).await?;
        let publisher = match kind {
            Kind::Redisse => Publisher::redis(&self.env.redis_url()).await?,
            _ => Publisher::Http { server: server.addr },
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let channels = (0..channels).map(|c| format!("{prefix}_{c}")).collect();
        Ok(Setup { server, subscribers, opened, publisher, channels, streams })
    }

    fn fail(&mut self, what: &str, server: Option<Kind>, error: String) {
        let line = format!("{what} / {}: {error}", server.map_or("-", Kind::name));
        eprintln!("bench: FAILED: {line}");
        self.results.failures.push(line);
    }

    /// The CPU seconds of `pids` (the servers), the client and Redis now.
    fn cpu_mark(&self, pids: &[u32], subscribers: &Subscribers) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            pids: pids.to_vec(),
            server: sys::cpu_seconds_of(pids),
            client: sys::cpu_seconds(std::process::id()).unwrap_or(0.0) + subscribers.cpu_s(),
            redis: sys::cpu_seconds(self.redis_pid).unwrap_or(0.0),
            machine: sys::machine_busy_seconds(),
        }
    }

    /// What each party used since `mark`.
    fn cpu_since(&self, mark: &CpuMark, subscribers: &Subscribers) -> Cpu {
        let now = self.cpu_mark(&mark.pids, subscribers);
        let (server, client) = (now.server - mark.server, now.client - mark.client);
        let redis = now.redis - mark.redis;
        let other = (now.machine - mark.machine - server - client - redis).max(0.0);
        let cpu = Cpu { server, client, redis, other, window: now.at.duration_since(mark.at).as_secs_f64() };
        self.disturbed.set(self.disturbed.get().max(cpu.pct(other)));
        cpu
    }

    /// Starts a phase: from now on the subscribers count only events with
    /// the tag it returns, and the mark is where its CPU counts from.
    async fn phase(&mut self, subscribers: &mut Subscribers, pids: &[u32]) -> Result<(u32, CpuMark), String> {
        let tag = self.next_tag();
        subscribers.phase(tag).await?;
        Ok((tag, self.cpu_mark(pids, subscribers)))
    }

    /// Waits for the deliveries `published` owes `streams` streams (until
    /// none came for `quiet`, at most ten times that), then tells what the
    /// subscribers received and what CPU each party used since `mark`.
    async fn delivered(
        &self,
        subscribers: &mut Subscribers,
        published: Published,
        streams: u64,
        quiet: Duration,
        mark: &CpuMark,
    ) -> Result<Delivered, String> {
        let expected = published.expected(streams);
        subscribers.wait_for(expected, quiet, quiet * 10).await?;
        let cpu = self.cpu_since(mark, subscribers);
        let (tally, latency) = subscribers.report().await?;
        if tally.received == 0 {
            let (ok, errors) = (published.ok, &published.errors);
            return Err(format!("no event delivered ({ok} published, errors {errors:?})"));
        }
        let latency = latency.ms();
        Ok(Delivered { published, expected, tally, latency, cpu })
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
        let waited = started.elapsed().as_secs_f64();
        if waited > 2.0 {
            eprintln!("bench: waited {waited:.0} s for the machine to be quiet");
        }
    }

    /// Runs a case on a quiet machine, again once if other processes
    /// disturbed it (full runs only), and stores the less disturbed into
    /// `store`; a case that cannot run at all is a failure. True if stored.
    async fn measure<C>(
        &mut self,
        what: String,
        kind: Kind,
        store: fn(&mut Results) -> &mut Vec<C>,
        mut run: impl AsyncFnMut(&mut Self) -> Result<C, String>,
    ) -> bool {
        eprintln!("bench: {what} / {}", kind.name());
        let attempts = if self.sizes.quiet_wait.is_zero() { 1 } else { 2 };
        let mut best: Option<(C, f64)> = None;
        for attempt in 1..=attempts {
            self.wait_quiet().await;
            self.disturbed.set(0.0);
            let other = match run(self).await {
                Err(e) => {
                    self.fail(&what, Some(kind), e);
                    return false;
                }
                Ok(c) => (c, self.disturbed.get()),
            };
            if best.as_ref().is_none_or(|b| other.1 < b.1) {
                best = Some(other);
            }
            let other = best.as_ref().map_or(0.0, |b| b.1);
            if other <= DISTURBED_PCT || attempt == attempts {
                break;
            }
            eprintln!("bench: {what} was disturbed by other processes ({other} % of a core): measuring it again");
        }
        best.map(|(c, _)| store(&mut self.results).push(c)).is_some()
    }
}

/// A fresh server with streams open on it, and what publishes to it.
struct Setup {
    server: Server,
    subscribers: Subscribers,
    opened: Opened,
    publisher: Publisher,
    /// Stream n listens to channel n % channels.len().
    channels: Vec<String>,
    /// The streams asked for.
    streams: usize,
}

impl Setup {
    /// Closes the streams and stops the server; false if it had died before.
    async fn close(self) -> bool {
        self.subscribers.quit().await;
        self.server.stop()
    }
}

/// CPU seconds of the servers (`pids`), the client (this process and its
/// subscriber processes), Redis and the whole machine at one moment.
struct CpuMark {
    at: Instant,
    pids: Vec<u32>,
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
    pub fn cells(&self) -> [String; 4] {
        [self.server, self.client, self.redis, self.other].map(|s| self.pct(s).cell())
    }
}

/// The column names of `Cpu::cells`.
pub const CPU_COLUMNS: &str = "server CPU % | client CPU % | redis CPU % | other CPU %";

/// What a phase's events did: published, owed to the streams, received,
/// how late, and the CPU it took.
pub struct Delivered {
    pub published: Published,
    pub expected: u64,
    pub tally: Counters,
    pub latency: Latency,
    pub cpu: Cpu,
}

impl Delivered {
    pub fn missing(&self) -> u64 {
        self.expected.saturating_sub(self.tally.received)
    }

    /// `received / expected`.
    pub fn received(&self) -> String {
        of(self.tally.received, self.expected)
    }

    pub fn server_us(&self) -> Option<f64> {
        self.cpu.server_us(self.tally.received)
    }
}

//! The scenarios, each run against every server in turn with the same
//! client. Every result is one record of results.json; a scenario that
//! cannot run at all (a server that does not start, no stream opened, no
//! delivery) is a failed record.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::fleet::{Fleet, Opened, Spec};
use crate::http::get_json;
use crate::publish::{paced, Publisher};
use crate::results::{
    AvalancheRecord, BroadcastRecord, CpuShare, FailedRecord, FanoutRecord, IdleRecord,
    Measurement, ProfileRecord, PublisherRecord, Record,
};
use crate::servers::{Env, Kind, Server, DEFAULT_HEARTBEAT};
use crate::sys;

/// Streams connecting at a time per subscriber process when a scenario
/// sets up its streams (the avalanche opens all at once instead).
const OPEN_CONCURRENCY: usize = 100;

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

/// CPU seconds of the server, the client (this process and its
/// subscriber processes) and Redis at one moment.
struct CpuMark {
    at: Instant,
    server: f64,
    client: f64,
    redis: f64,
    machine: f64,
}

impl CpuMark {
    fn take(server: &Server, fleet: &Fleet, redis_pid: u32) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            server: server.cpu_s(),
            client: sys::self_cpu_seconds() + fleet.cpu_s(),
            redis: sys::cpu_seconds(redis_pid, false).unwrap_or(0.0),
            machine: sys::machine_busy_seconds(),
        }
    }

    /// Percent of one core each used since `self`.
    fn since(&self, server: &Server, fleet: &Fleet, redis_pid: u32) -> CpuShare {
        let now = CpuMark::take(server, fleet, redis_pid);
        let secs = now.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let pct = |a: f64, b: f64| ((b - a) / secs * 1000.0).round() / 10.0;
        let (server, client, redis) = (
            pct(self.server, now.server),
            pct(self.client, now.client),
            pct(self.redis, now.redis),
        );
        CpuShare {
            server_cpu_pct: server,
            client_cpu_pct: client,
            redis_cpu_pct: redis,
            other_cpu_pct: (pct(self.machine, now.machine) - server - client - redis)
                .max(0.0)
                .round(),
            window_s: (secs * 100.0).round() / 100.0,
        }
    }
}

/// A scenario's record of one case, which `Bench::measure` takes again
/// while other processes disturb it.
trait Case {
    fn cpu(&self) -> &CpuShare;
    fn set_attempt(&mut self, attempt: u32);
    fn into_measurement(self) -> Measurement;
}

impl Case for IdleRecord {
    fn cpu(&self) -> &CpuShare {
        &self.cpu
    }
    fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt;
    }
    fn into_measurement(self) -> Measurement {
        Measurement::Idle(self)
    }
}

impl Case for BroadcastRecord {
    fn cpu(&self) -> &CpuShare {
        &self.cpu
    }
    fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt;
    }
    fn into_measurement(self) -> Measurement {
        Measurement::Broadcast(self)
    }
}

impl Case for AvalancheRecord {
    fn cpu(&self) -> &CpuShare {
        &self.cpu
    }
    fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt;
    }
    fn into_measurement(self) -> Measurement {
        Measurement::Avalanche(self)
    }
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

    /// Waits until the rest of the machine is quiet (under 20 % of a core
    /// busy over a second), for at most `quiet_wait`: the machine may be
    /// shared, and a build or a test suite running beside the benchmark
    /// would show up as the servers' latency.
    async fn wait_quiet(&self) {
        if self.sizes.quiet_wait.is_zero() {
            return;
        }
        let started = Instant::now();
        loop {
            let (m0, r0) = (
                sys::machine_busy_seconds(),
                sys::cpu_seconds(self.redis_pid, false).unwrap_or(0.0),
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (m1, r1) = (
                sys::machine_busy_seconds(),
                sys::cpu_seconds(self.redis_pid, false).unwrap_or(0.0),
            );
            let busy = ((m1 - m0) - (r1 - r0)) * 100.0;
            if busy < 20.0 {
                if started.elapsed() > Duration::from_secs(2) {
                    eprintln!(
                        "bench: waited {:.0} s for the machine to be quiet",
                        started.elapsed().as_secs_f64()
                    );
                }
                return;
            }
            if started.elapsed() > self.sizes.quiet_wait {
                eprintln!("bench: the machine is still busy ({busy:.0} % of a core used by other processes): measuring anyway");
                return;
            }
        }
    }

    /// Measurements per case: a measurement that other processes disturbed
    /// is taken again once (full runs only).
    fn attempts(&self) -> u32 {
        if self.sizes.quiet_wait.is_zero() {
            1
        } else {
            2
        }
    }

    fn keep_less_disturbed<C: Case>(
        &self,
        best: Option<C>,
        mut r: C,
        attempt: u32,
        scenario: &str,
        kind: Kind,
    ) -> C {
        r.set_attempt(attempt);
        if r.cpu().disturbed() && attempt < self.attempts() {
            eprintln!("bench: {scenario} / {} was disturbed by other processes ({} % of a core): measuring it again", kind.name(), r.cpu().other_cpu_pct);
        }
        match best {
            Some(b) if b.cpu().other_cpu_pct <= r.cpu().other_cpu_pct => b,
            _ => r,
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

    /// Runs one case, again while other processes disturbed it (up to
    /// `attempts`), and records the least disturbed run; a case that
    /// cannot run at all is recorded as a failure.
    async fn measure<C: Case>(
        &mut self,
        scenario: &str,
        kind: Kind,
        mut run: impl AsyncFnMut(&mut Self) -> Result<C, String>,
    ) {
        let mut best: Option<C> = None;
        for attempt in 1..=self.attempts() {
            match run(self).await {
                Ok(r) => best = Some(self.keep_less_disturbed(best, r, attempt, scenario, kind)),
                Err(e) => return self.fail(scenario, Some(kind), e),
            }
            if !best.as_ref().is_some_and(|b| b.cpu().disturbed()) {
                break;
            }
        }
        if let Some(r) = best {
            self.record(r.into_measurement());
        }
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

    // ---- 1. idle capacity ----

    pub async fn idle(&mut self) {
        for n in self.sizes.idle_streams.clone() {
            for kind in self.targets.clone() {
                eprintln!("bench: idle {n} streams / {}", kind.name());
                self.measure("idle", kind, async |bench: &mut Self| {
                    bench.idle_one(kind, n).await
                })
                .await;
            }
        }
    }

    async fn idle_one(&mut self, kind: Kind, n: usize) -> Result<IdleRecord, String> {
        self.wait_quiet().await;
        let mut server =
            Server::start(kind, &self.env, &format!("idle{n}"), self.env.heartbeat).await?;
        let rss_before = server.rss_kib();
        let fds_before = server.fds();
        let channels = self.sizes.idle_channels;
        let (mut fleet, opened) = self
            .open_fleet(&server, &self.prefix(&format!("idle{n}")), channels, n)
            .await?;
        tokio::time::sleep(self.sizes.idle_settle).await;
        let rss_with = server.rss_kib();
        let fds_with = server.fds();
        let before = fleet.stats().await?;
        let mark = CpuMark::take(&server, &fleet, self.redis_pid);
        tokio::time::sleep(self.sizes.idle_window).await;
        let cpu = mark.since(&server, &fleet, self.redis_pid);
        let after = fleet.stats().await?;
        let window = cpu.window_s;
        let connected = if kind == Kind::Redisse {
            redisse_connected(&server).await
        } else {
            None
        };
        let processes = fleet.processes();
        fleet.quit().await;
        let alive = server.alive();
        server.stop();
        Ok(IdleRecord {
            server: kind,
            streams: n,
            channels,
            client_processes: processes,
            opened: opened.ok,
            failed: opened.failed,
            errors: opened.errors,
            open_s: round2(opened.elapsed.as_secs_f64()),
            closed: after.closed,
            rss_before_kib: rss_before,
            rss_with_kib: rss_with,
            kib_per_stream: round2((rss_with as f64 - rss_before as f64) / opened.ok.max(1) as f64),
            fds_before,
            fds_with,
            heartbeat_s: self.env.heartbeat,
            heartbeat_bytes_per_s: ((after.bytes.saturating_sub(before.bytes)) as f64 / window)
                .round(),
            server_connected: connected,
            server_alive: alive,
            cpu,
            attempt: 1,
        })
    }

    // ---- 2. broadcast ----

    pub async fn broadcast(&mut self) {
        for (subscribers, events, interval) in self.sizes.broadcast.clone() {
            for kind in self.targets.clone() {
                eprintln!(
                    "bench: broadcast {subscribers} x {events} / {}",
                    kind.name()
                );
                self.measure("broadcast", kind, async |bench: &mut Self| {
                    bench
                        .broadcast_one(kind, subscribers, events, interval)
                        .await
                })
                .await;
            }
        }
    }

    async fn broadcast_one(
        &mut self,
        kind: Kind,
        subscribers: usize,
        events: u64,
        interval: Duration,
    ) -> Result<BroadcastRecord, String> {
        self.wait_quiet().await;
        let mut server = Server::start(
            kind,
            &self.env,
            &format!("broadcast{subscribers}"),
            DEFAULT_HEARTBEAT,
        )
        .await?;
        let prefix = self.prefix(&format!("bc{subscribers}"));
        let (mut fleet, opened) = self.open_fleet(&server, &prefix, 1, subscribers).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let tag = self.next_tag();
        fleet.phase(tag).await?;
        let publisher = self.publisher_for(&server).await?;
        let mark = CpuMark::take(&server, &fleet, self.redis_pid);
        let rate = 1.0 / interval.as_secs_f64();
        let limit = interval * events as u32 + Duration::from_secs(30);
        let published = paced(
            &publisher,
            &[format!("{prefix}_0")],
            rate,
            events,
            tag,
            limit,
        )
        .await;
        let expected = published.ok * opened.ok;
        fleet
            .wait_for(expected, Duration::from_secs(3), Duration::from_secs(20))
            .await?;
        let cpu = mark.since(&server, &fleet, self.redis_pid);
        let tally = fleet.report().await?;
        fleet.quit().await;
        let alive = server.alive();
        server.stop();
        if tally.received == 0 {
            return Err(format!(
                "no event delivered ({} published, errors {:?})",
                published.ok, published.errors
            ));
        }
        Ok(BroadcastRecord {
            server: kind,
            case: format!(
                "{} subscribers, {events} events {} ms apart",
                thousands(subscribers),
                interval.as_millis()
            ),
            subscribers,
            events,
            interval_ms: interval.as_millis() as u64,
            opened: opened.ok,
            failed: opened.failed,
            errors: opened.errors,
            published: published.ok,
            publish_failed: published.failed,
            publish_errors: published.errors,
            expected,
            received: tally.received,
            missing: expected.saturating_sub(tally.received),
            closed: tally.closed,
            close_reasons: tally.close_reasons,
            latency: tally.latency.summary_ms(),
            server_alive: alive,
            cpu,
            attempt: 1,
        })
    }

    // ---- 3. fan-out throughput ----

    pub async fn fanout(&mut self) {
        for kind in self.targets.clone() {
            eprintln!("bench: fan-out / {}", kind.name());
            if let Err(e) = self.fanout_one(kind).await {
                self.fail("fanout", Some(kind), e);
            }
        }
    }

    async fn fanout_one(&mut self, kind: Kind) -> Result<(), String> {
        self.wait_quiet().await;
        let mut server = Server::start(kind, &self.env, "fanout", DEFAULT_HEARTBEAT).await?;
        let (streams, channels) = (self.sizes.fanout_streams, self.sizes.fanout_channels);
        let prefix = self.prefix("fan");
        let (mut fleet, opened) = self.open_fleet(&server, &prefix, channels, streams).await?;
        // Stream n listens to channel n % channels.
        let subscribers: Vec<u64> = (0..channels)
            .map(|c| ((streams + channels - 1 - c) / channels) as u64)
            .collect();
        let names: Vec<String> = (0..channels).map(|c| format!("{prefix}_{c}")).collect();
        let publisher = self.publisher_for(&server).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let step = self.sizes.fanout_step;
        let mut any_delivered = false;
        if self.profile && kind == Kind::Redisse {
            // Profiled at the target rate, before the scan can overload anything.
            match self
                .profile_step(&server, &mut fleet, &publisher, &names, 3000)
                .await
            {
                Ok(r) => self.record(Measurement::Profile(r)),
                Err(e) => self.fail("profile", Some(kind), e),
            }
        }
        'rates: for rate in self.sizes.fanout_rates.clone() {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let tag = self.next_tag();
                fleet.phase(tag).await?;
                let count = (rate as f64 * step.as_secs_f64()).round() as u64;
                let mark = CpuMark::take(&server, &fleet, self.redis_pid);
                let published = paced(
                    &publisher,
                    &names,
                    rate as f64,
                    count,
                    tag,
                    step + Duration::from_secs(10),
                )
                .await;
                let expected: u64 = published
                    .per_channel
                    .iter()
                    .zip(&subscribers)
                    .map(|(p, s)| p * s)
                    .sum();
                fleet
                    .wait_for(expected, Duration::from_secs(2), Duration::from_secs(15))
                    .await?;
                let cpu = mark.since(&server, &fleet, self.redis_pid);
                let tally = fleet.report().await?;
                any_delivered |= tally.received > 0;
                let lost = expected.saturating_sub(tally.received);
                let p99_ms = tally.latency.quantile(0.99) as f64 / 1000.0;
                let achieved = published.rate();
                let secs = published
                    .elapsed
                    .as_secs_f64()
                    .max(published.scheduled.as_secs_f64())
                    .max(1e-3);
                let kept_up = achieved >= 0.95 * rate as f64;
                let ok = lost == 0 && p99_ms < 100.0 && kept_up && published.failed == 0;
                let r = FanoutRecord {
                    server: kind,
                    streams,
                    channels,
                    opened: opened.ok,
                    offered_per_s: rate,
                    publishes_per_s: achieved.round(),
                    publish_failed: published.failed,
                    publish_errors: published.errors,
                    deliveries_per_s: (tally.received as f64 / secs).round(),
                    expected,
                    received: tally.received,
                    lost,
                    closed: tally.closed,
                    close_reasons: tally.close_reasons,
                    latency: tally.latency.summary_ms(),
                    sustained: ok,
                    attempt,
                    cpu,
                };
                if r.cpu.disturbed() && attempt < self.attempts() && server.alive() {
                    eprintln!("bench: fan-out step {rate}/s was disturbed by other processes ({} % of a core): measuring it again", r.cpu.other_cpu_pct);
                    self.wait_quiet().await;
                    continue;
                }
                self.record(Measurement::Fanout(r));
                if lost > 0
                    || p99_ms > 100.0
                    || achieved < 0.8 * rate as f64
                    || !server.alive()
                    || tally.open == 0
                {
                    break 'rates;
                }
                break;
            }
        }
        fleet.quit().await;
        let alive = server.alive();
        server.stop();
        if !alive {
            return Err("the server died during the fan-out".into());
        }
        if !any_delivered {
            return Err("no event delivered".into());
        }
        Ok(())
    }

    async fn profile_step(
        &mut self,
        server: &Server,
        fleet: &mut Fleet,
        publisher: &Publisher,
        names: &[String],
        rate: u64,
    ) -> Result<ProfileRecord, String> {
        let data = self.env.work.join("perf.data");
        let step = self.sizes.fanout_step;
        let tag = self.next_tag();
        fleet.phase(tag).await?;
        let mut perf = tokio::process::Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F", "999", "-g", "-o"])
            .arg(&data)
            .args([
                "-p",
                &server.pid.to_string(),
                "--",
                "sleep",
                &step.as_secs_f64().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run perf: {e}"))?;
        let count = (rate as f64 * step.as_secs_f64()) as u64;
        let published = paced(
            publisher,
            names,
            rate as f64,
            count,
            tag,
            step + Duration::from_secs(10),
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(30), perf.wait()).await;
        let tally = fleet.report().await?;
        let report = tokio::process::Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--sort",
                "symbol",
                "-g",
                "none",
                "--percent-limit",
                "0.7",
                "-i",
            ])
            .arg(&data)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        let output = tokio::time::timeout(Duration::from_secs(120), report)
            .await
            .map_err(|_| "perf report took too long".to_string())?
            .map_err(|e| format!("cannot run perf report: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let top: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .take(25)
            .map(|l| {
                let mut l = l.trim_end();
                while let Some(rest) = l.strip_suffix('-') {
                    l = rest.trim_end();
                }
                l.trim_start().to_string()
            })
            .collect();
        if top.is_empty() {
            return Err("perf recorded no samples".into());
        }
        Ok(ProfileRecord {
            server: server.kind,
            rate,
            published: published.ok,
            received: tally.received,
            latency: tally.latency.summary_ms(),
            top,
        })
    }

    // ---- 4. connection avalanche ----

    pub async fn avalanche(&mut self) {
        for kind in self.targets.clone() {
            eprintln!("bench: avalanche / {}", kind.name());
            self.measure("avalanche", kind, async |bench: &mut Self| {
                bench.avalanche_one(kind).await
            })
            .await;
        }
    }

    async fn avalanche_one(&mut self, kind: Kind) -> Result<AvalancheRecord, String> {
        self.wait_quiet().await;
        let mut server = Server::start(kind, &self.env, "avalanche", DEFAULT_HEARTBEAT).await?;
        let n = self.sizes.avalanche_streams;
        let spec = self.fleet_spec(
            &server,
            &self.prefix("ava"),
            1000,
            n,
            0,
            Duration::from_secs(30),
        );
        let mut fleet = Fleet::spawn(&spec).await?;
        let backlog = sys::listen_backlog(server.addr.port());
        let drops_before = sys::listen_drops();
        let mark = CpuMark::take(&server, &fleet, self.redis_pid);
        let opened = fleet.open(Duration::from_secs(120)).await?;
        let cpu = mark.since(&server, &fleet, self.redis_pid);
        let drops_after = sys::listen_drops();
        let rss = server.rss_kib();
        let processes = fleet.processes();
        fleet.quit().await;
        let alive = server.alive();
        server.stop();
        if opened.ok == 0 {
            return Err(format!("no stream opened: {:?}", opened.errors));
        }
        let connect = &opened.connect;
        let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
        Ok(AvalancheRecord {
            server: kind,
            streams: n,
            client_processes: processes,
            opened: opened.ok,
            failed: opened.failed,
            errors: opened.errors,
            connect_p50_ms: ms(connect.quantile(0.5)),
            connect_p95_ms: ms(connect.quantile(0.95)),
            connect_p99_ms: ms(connect.quantile(0.99)),
            connect_max_ms: ms(connect.max()),
            all_opened_s: round2(opened.elapsed.as_secs_f64()),
            rss_with_kib: rss,
            listen_backlog: backlog,
            listen_overflows: drops_after.0.saturating_sub(drops_before.0),
            listen_drops: drops_after.1.saturating_sub(drops_before.1),
            server_alive: alive,
            cpu,
            attempt: 1,
        })
    }

    // ---- 5. publisher ----

    pub async fn publisher(&mut self) {
        eprintln!("bench: publisher (Ruby)");
        match self.publisher_run().await {
            Ok(r) => self.record(Measurement::Publisher(r)),
            Err(e) => self.fail("publisher", None, e),
        }
    }

    async fn publisher_run(&mut self) -> Result<PublisherRecord, String> {
        self.wait_quiet().await;
        let seconds = self.sizes.publisher_seconds;
        let script = self.root.join("bench/publisher.rb");
        let run = tokio::process::Command::new("ruby")
            .arg("-I")
            .arg(self.root.join("lib"))
            .arg(&script)
            .args([
                "--redis",
                &self.env.redis_url(),
                "--seconds",
                &seconds.to_string(),
            ])
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs_f64(seconds * 8.0 + 60.0), run)
            .await
            .map_err(|_| "bench/publisher.rb did not finish in time".to_string())?
            .map_err(|e| format!("cannot run ruby: {e}"))?;
        if !output.status.success() {
            return Err(format!("bench/publisher.rb failed ({})", output.status));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .ok_or("bench/publisher.rb printed no JSON line")?;
        serde_json::from_str(line).map_err(|e| format!("bench/publisher.rb: {e}"))
    }
}

/// The part of redisse's stats page (`GET /` as JSON) the idle scenario reports.
#[derive(Deserialize)]
struct RedisseStats {
    connected: u64,
}

/// The streams redisse counts, if its stats page answers.
async fn redisse_connected(server: &Server) -> Option<u64> {
    match tokio::time::timeout(Duration::from_secs(5), get_json(server.addr)).await {
        Ok(Ok(body)) => serde_json::from_str::<RedisseStats>(&body)
            .ok()
            .map(|stats| stats.connected),
        _ => None,
    }
}

pub fn thousands(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

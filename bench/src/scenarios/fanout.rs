//! Fan-out: publishes spread over a few channels. First at rising offered
//! rates, until a server cannot keep up; then at saturation, publishing as
//! fast as the streams take the events; and, when asked, a profile of
//! redisse at saturation.

use std::process::Stdio;
use std::time::{Duration, Instant};

use sse_client::{Item, Read};
use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Bench, CpuMark, Delivered, Results, Setup, CPU_COLUMNS};
use crate::publish::{closed_loop, paced, Payload, Published};
use crate::report::{ratio, with_counts, Cell, Meta, Section, Table};
use crate::servers::{Kind, Server};
use crate::subscribe::open_stream;

/// A step is sustained with no loss, a p99 under this, and 95 % of the
/// offered rate published.
const SUSTAINED_P99_MS: f64 = 100.0;

/// What a fan-out run delivered, at a paced rate or at saturation.
pub struct Run {
    pub server: Kind,
    pub streams: usize,
    pub channels: usize,
    pub d: Delivered,
}

impl Run {
    pub fn publishes_per_s(&self) -> f64 {
        self.d.published.rate().round()
    }

    pub fn deliveries_per_s(&self) -> f64 {
        let seconds = self.d.published.elapsed.as_secs_f64().max(1e-3);
        (self.d.tally.received as f64 / seconds).round()
    }

    /// Publishes per second, with the publishing errors.
    fn publishes(&self) -> String {
        with_counts(self.publishes_per_s(), &self.d.published.errors)
    }

    /// Latencies, CPU µs per delivery and CPU shares, as table cells.
    fn cells(&self) -> impl Iterator<Item = String> {
        let l = &self.d.latency;
        let figures = [l.p50, l.p99, l.max, self.d.server_us().unwrap_or(f64::NAN)];
        figures.map(|x| x.cell()).into_iter().chain(self.d.cpu.cells())
    }
}

/// One offered rate of the scan.
pub struct Step {
    pub offered: u64,
    pub sustained: bool,
    pub run: Run,
}

pub struct Saturation {
    /// Events in flight per channel at most.
    pub window: u64,
    pub run: Run,
}

/// Where redisse spends its time at saturation.
pub struct Profile {
    pub deliveries_per_s: f64,
    pub p99: f64,
    /// `perf report` lines, the busiest symbol first.
    pub top: Vec<String>,
}

impl Bench {
    pub(super) async fn fanout(&mut self) {
        for kind in self.servers.clone() {
            if let Err(e) = self.scan(kind).await {
                self.fail("fanout", Some(kind), e);
            }
        }
        for kind in self.servers.clone() {
            let run = async |b: &mut Self| b.saturation(kind).await;
            let what = "fanout at saturation".into();
            self.measure(what, kind, |r| &mut r.saturation, run).await;
        }
    }

    /// Offered rates in steps, up to the first one the server cannot sustain.
    async fn scan(&mut self, kind: Kind) -> Result<(), String> {
        let (streams, channels) = (self.sizes.fanout_streams, self.sizes.fanout_channels);
        let mut f = self.setup(kind, "fan", channels, streams).await?;
        let step = self.sizes.fanout_step;
        for rate in self.sizes.fanout_rates.clone() {
            let run = async |b: &mut Self| {
                let (tag, mark) = b.phase(&mut f.subscribers, &[f.server.pid]).await?;
                let count = (rate as f64 * step.as_secs_f64()).round() as u64;
                let limit = step + Duration::from_secs(10);
                let published = paced(&f.publisher, &f.channels, rate as f64, count, tag, limit).await;
                let run = b.fanout_run(&mut f, published, mark).await?;
                let d = &run.d;
                let kept_up = run.publishes_per_s() >= 0.95 * rate as f64 && d.published.errors.is_empty();
                let sustained = d.missing() == 0 && d.latency.p99 < SUSTAINED_P99_MS && kept_up;
                Ok(Step { offered: rate, sustained, run })
            };
            if !self.measure(format!("fanout {rate}/s"), kind, |r| &mut r.fanout, run).await {
                break;
            }
            let open = f.subscribers.stats().await?.open;
            let run = &self.results.fanout.last().expect("a step").run;
            let (lost, p99, achieved) = (run.d.missing(), run.d.latency.p99, run.publishes_per_s());
            let stop = lost > 0 || p99 > SUSTAINED_P99_MS || achieved < 0.8 * rate as f64;
            if stop || !f.server.alive() || open == 0 {
                break;
            }
        }
        match f.close().await {
            true => Ok(()),
            false => Err("the server died during the fan-out".into()),
        }
    }

    /// What `published` delivered.
    async fn fanout_run(&mut self, f: &mut Setup, published: Published, mark: CpuMark) -> Result<Run, String> {
        let (streams, quiet) = (f.streams, Duration::from_secs(2));
        let d = self.delivered(&mut f.subscribers, published, streams as u64, quiet, &mark).await?;
        let (server, channels) = (f.server.kind, f.channels.len());
        Ok(Run { server, streams, channels, d })
    }

    /// As many events as the streams take, for `saturation_time`; then, when
    /// asked, the same again for redisse under `perf record`.
    async fn saturation(&mut self, kind: Kind) -> Result<Saturation, String> {
        let (streams, channels) = (self.sizes.saturation_streams, self.sizes.saturation_channels);
        let mut f = self.setup(kind, "sat", channels, streams).await?;
        let run = self.saturate(&mut f).await;
        if run.is_ok() && self.profile && kind == Kind::Redisse {
            match self.profile_saturation(&mut f).await {
                Ok(p) => self.results.profile = Some(p),
                Err(e) => self.fail("profile", Some(kind), e),
            }
        }
        f.close().await;
        Ok(Saturation { window: self.sizes.saturation_window, run: run? })
    }

    async fn saturate(&mut self, f: &mut Setup) -> Result<Run, String> {
        let tag = self.next_tag();
        f.subscribers.phase(tag).await?;
        let (mut probes, mut seen) = (Vec::new(), Vec::new());
        for channel in &f.channels {
            let (task, receiver) = probe(&f.server, channel, tag).await?;
            probes.push(task);
            seen.push(receiver);
        }
        let mark = self.cpu_mark(&[f.server.pid], &f.subscribers);
        let (window, time) = (self.sizes.saturation_window, self.sizes.saturation_time);
        let published = closed_loop(&f.publisher, &f.channels, seen, window, tag, time).await;
        let run = self.fanout_run(f, published, mark).await;
        probes.iter().for_each(JoinHandle::abort);
        run
    }

    async fn profile_saturation(&mut self, f: &mut Setup) -> Result<Profile, String> {
        let data = self.env.work.join("perf.data");
        let seconds = self.sizes.saturation_time.as_secs_f64().to_string();
        let mut perf = Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F", "999", "-g", "-o"])
            .arg(&data)
            .args(["-p", &f.server.pid.to_string(), "--", "sleep", &seconds])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run perf: {e}"))?;
        let run = self.saturate(f).await?;
        let _ = tokio::time::timeout(Duration::from_secs(30), perf.wait()).await;
        let mut report = Command::new("perf");
        report.args("report --stdio --no-children --sort symbol -g none".split(' '));
        report.args(["--percent-limit", "0.7", "-i"]).arg(&data);
        let report = report.stdin(Stdio::null()).stderr(Stdio::null()).output();
        let output = tokio::time::timeout(Duration::from_secs(120), report)
            .await
            .map_err(|_| "perf report took too long".to_string())?
            .map_err(|e| format!("cannot run perf report: {e}"))?;
        let top: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .take(25)
            .map(|l| l.trim().trim_end_matches(['-', ' ']).to_string())
            .collect();
        if top.is_empty() {
            return Err("perf recorded no samples".into());
        }
        let (deliveries_per_s, p99) = (run.deliveries_per_s(), run.d.latency.p99);
        Ok(Profile { deliveries_per_s, p99, top })
    }
}

/// A stream on `channel` that tells the highest event number tagged `tag`
/// it received, so that the publisher knows what was delivered.
async fn probe(server: &Server, channel: &str, tag: u32) -> Result<(JoinHandle<()>, watch::Receiver<u64>), String> {
    let path = server.kind.stream_path(channel);
    let opening = open_stream(server.addr, None, &path, &[], Duration::from_secs(10)).await;
    let mut stream = opening.map_err(|e| format!("probe stream: {e}"))?;
    let (seen, receiver) = watch::channel(0);
    let until = Instant::now() + Duration::from_secs(600);
    let task = tokio::spawn(async move {
        let mut on = |item: Item<'_>| {
            if let Item::Event(e) = item {
                if let Some(p) = Payload::parse(e.data).filter(|p| p.tag == tag) {
                    seen.send_modify(|s| *s = p.seq.max(*s));
                }
            }
        };
        while let Ok(Ok(Read::Data(_))) = tokio::time::timeout_at(until.into(), stream.read(&mut on)).await {}
    });
    Ok((task, receiver))
}

pub fn section(r: &Results, meta: &Meta) -> Option<Section> {
    if r.fanout.is_empty() && r.saturation.is_empty() {
        return None;
    }
    let mut s = Section::new("Fan-out");
    if let Some(first) = r.fanout.first() {
        s.text(format!(
            "{} streams over {} channels; publishes spread evenly over the channels at each offered rate, up to the \
             first step that loses events, passes {SUSTAINED_P99_MS} ms p99, or cannot publish at 80 % of the offered \
             rate. *sustained*: no loss, p99 < {SUSTAINED_P99_MS} ms and at least 95 % of the offered rate published.",
            first.run.streams.cell(),
            first.run.channels.cell(),
        ));
    }
    let head = "server | offered /s | publishes /s | deliveries /s | lost | closed | p50 ms | p99 ms | max ms";
    let mut t = Table::new(1, &format!("{head} | CPU µs / delivery | {CPU_COLUMNS} | sustained"));
    for step in &r.fanout {
        let run = &step.run;
        let closed = with_counts(run.d.tally.closed, &run.d.tally.close_reasons);
        let (name, missing) = (run.server.name(), run.d.missing());
        let row = t.row(&[&name, &step.offered, &run.publishes(), &run.deliveries_per_s(), &missing, &closed]);
        row.extend(run.cells().chain([step.sustained.cell()]));
    }
    s.table(&t);
    let best = |k: Kind| {
        let sustained = r.fanout.iter().filter(|f| f.run.server == k && f.sustained);
        sustained.map(|f| f.offered as f64).reduce(f64::max)
    };
    let mut t = Table::new(1, "server | highest sustained publishes /s | redisse ÷ this");
    for k in Kind::ALL.into_iter().filter(|&k| r.fanout.iter().any(|f| f.run.server == k)) {
        let highest = best(k).map_or("none".into(), |b| b.cell());
        t.row(&[&k.name(), &highest, &ratio(best(Kind::Redisse), best(k))]);
    }
    s.table(&t);
    if let Some(sat) = r.saturation.first() {
        s.part("At saturation").text(format!(
            "{} streams over {} channels, published to in a closed loop: each channel's publisher sends its next event \
             as soon as fewer than {} of its events are in flight, an event being in flight until a probe stream on \
             the channel (opened after the others, not counted) received it. A server may reach the probe before \
             other streams of the channel, so it may hold more events than that.",
            sat.run.streams.cell(),
            sat.run.channels.cell(),
            sat.window.cell(),
        ));
        let nchan = r.saturation.iter().map(|s| &s.run).find(|run| run.server == Kind::Nchan);
        let head = "server | publishes /s | deliveries /s | lost | p50 ms | p99 ms | max ms | CPU µs / delivery";
        let ratios = "deliveries ÷ nchan's | CPU / delivery ÷ nchan's";
        let mut t = Table::new(1, &format!("{head} | {CPU_COLUMNS} | {ratios}"));
        for run in r.saturation.iter().map(|s| &s.run) {
            let row = t.row(&[&run.server.name(), &run.publishes(), &run.deliveries_per_s(), &run.d.missing()]);
            row.extend(run.cells());
            row.push(ratio(Some(run.deliveries_per_s()), nchan.map(Run::deliveries_per_s)));
            row.push(ratio(run.d.server_us(), nchan.and_then(|n| n.d.server_us())));
        }
        s.table(&t);
    }
    let mut notes = Vec::new();
    for (i, step) in r.fanout.iter().enumerate() {
        let (run, all) = (&step.run, meta.cores as f64 * 100.0);
        let busy = run.d.cpu.pct(run.d.cpu.server + run.d.cpu.client + run.d.cpu.redis);
        if !r.fanout[i + 1..].iter().any(|f| f.run.server == run.server) && busy > 0.85 * all {
            notes.push(format!(
                "{} at {}/s (its last step): server, client and Redis together used {busy:.0} % of the machine's \
                 {all:.0} %, so this step measures the shared machine as much as the server.",
                run.server.name(),
                step.offered.cell()
            ));
        }
    }
    notes.push(
        "nchan writes events to its subscriber sockets without TCP_NODELAY, so when two events go to a stream within \
         one round trip the second can wait for the client's delayed ACK (up to 40 ms): its tail latencies vary from \
         run to run for that reason. redisse sets TCP_NODELAY on every connection."
            .into(),
    );
    s.list(&notes);
    if let Some(p) = &r.profile {
        s.part("Profile of redisse at saturation").text(format!(
            "`perf record -e cpu-clock -g` on the server during a second run at saturation ({} deliveries/s, p99 {} ms \
             while profiled); self time by symbol:",
            p.deliveries_per_s.cell(),
            p.p99.cell()
        ));
        s.text(format!("```\n{}\n```", p.top.join("\n")));
    }
    Some(s)
}

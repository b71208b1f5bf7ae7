//! Scenario 3, fan-out throughput: publishes spread over a few channels at
//! rising rates, until a server cannot keep up; and, when asked, a profile
//! of redisse at the target rate.

use std::process::Stdio;
use std::time::Duration;

use super::measure::CpuMark;
use super::Bench;
use crate::fleet::Fleet;
use crate::publish::{paced, Publisher};
use crate::results::{FanoutRecord, Measurement, ProfileRecord};
use crate::servers::{Kind, Server, DEFAULT_HEARTBEAT};

impl Bench {
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
}

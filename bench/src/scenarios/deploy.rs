//! Deploy: three redisse servers behind nginx hold reconnecting streams
//! (as browsers' EventSources do) while events are published; one server
//! is restarted under load, once as 0.4 did (every stream ends at once)
//! and once with `--drain`. What a deploy costs: events lost or doubled,
//! how long until every stream is back, the reconnection storm, and what
//! the reconnections ask of Redis.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use super::{Bench, Delivered, Results, Sizes};
use crate::publish::{paced, Publisher};
use crate::report::{Cell, Section, Table};
use crate::servers::{Kind, Server, DEFAULT_HEARTBEAT};
use crate::sys;

/// Commands a stream's reconnection costs Redis when it reads alone:
/// GET of the last id, then one ZRANGEBYSCORE for its one channel.
pub const COMMANDS_PER_LONE_READ: f64 = 2.0;

pub struct Deploy {
    /// The restarted server's `--drain` seconds; none: 0.4's way.
    pub drain: Option<u64>,
    pub streams: usize,
    pub opened: u64,
    pub d: Delivered,
    /// Seconds from the SIGTERM until every stream was open again, and
    /// until the new server took streams.
    pub back_after: Option<f64>,
    pub restarted_after: Option<f64>,
    pub peak_reconnects: f64,
    /// The history reads' commands (GET, ZRANGEBYSCORE) Redis ran for the servers.
    pub history_commands: u64,
    /// Redis's busiest second, % of one core.
    pub redis_peak: f64,
}

impl Deploy {
    pub fn commands_per_reconnect(&self) -> Option<f64> {
        let r = self.d.tally.reconnects;
        (r > 0).then(|| self.history_commands as f64 / r as f64)
    }
}

/// What the harness saw at one moment of a case.
struct Sample {
    at: f64,
    open: u64,
    reconnects: u64,
    redis_cpu: f64,
}

/// The highest rise per second of `value` over any second of `samples`.
fn peak(samples: &[Sample], value: impl Fn(&Sample) -> f64) -> f64 {
    let mut best: f64 = 0.0;
    for (i, a) in samples.iter().enumerate() {
        if let Some(b) = samples[i..].iter().find(|b| b.at - a.at >= 1.0) {
            best = best.max((value(b) - value(a)) / (b.at - a.at));
        }
    }
    best
}

/// The history reads' commands (GET, ZRANGEBYSCORE) Redis ran so far, from
/// one INFO commandstats. The publish script GETs the counter too: one per
/// EVALSHA, taken off (read in the same INFO, so no publish falls between).
async fn history_commands(redis: &mut MultiplexedConnection) -> i64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(redis).await.unwrap_or_default();
    let calls = info.lines().filter_map(|line| {
        let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
        let calls: i64 = rest.strip_prefix("calls=")?.split(',').next()?.parse().ok()?;
        match name {
            "get" | "zrangebyscore" => Some(calls),
            "evalsha" => Some(-calls),
            _ => None,
        }
    });
    calls.sum()
}

impl Bench {
    pub(super) async fn deploy(&mut self) {
        if !self.servers.contains(&Kind::Redisse) {
            return eprintln!("bench: deploy: skipped, redisse is not among --servers");
        }
        for drain in [None, Some(self.sizes.deploy_drain)] {
            let what = drain
                .map_or("deploy, a restart without --drain".into(), |s| format!("deploy, a restart with --drain {s}"));
            let run = async |b: &mut Self| b.deploy_one(drain).await;
            self.measure(what, Kind::Redisse, |r| &mut r.deploy, run).await;
        }
    }

    async fn deploy_one(&mut self, drain: Option<u64>) -> Result<Deploy, String> {
        let options: Vec<String> = drain.map(|s| vec!["--drain".into(), s.to_string()]).unwrap_or_default();
        let (streams, channels) = (self.sizes.deploy_streams, self.sizes.deploy_channels);
        let servers = self.redisse_servers("deploy", 3, &options).await?;
        let mut f = self.behind_nginx(servers, "deploy", channels, streams, true).await?;
        let url = self.env.redis_url();
        let mut redis = redis::Client::open(url.as_str())
            .map_err(|e| e.to_string())?
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("cannot connect to Redis: {e}"))?;
        let publisher = Publisher::redis(&url).await?;
        let history0 = history_commands(&mut redis).await;
        // The first server is replaced midway by a new process: the others' CPU is what counts.
        let pids: Vec<u32> = f.servers[1..].iter().map(|s| s.pid).chain(f.workers.iter().copied()).collect();
        let (tag, mark) = self.phase(&mut f.subscribers, &pids).await?;

        let (rate, time) = (self.sizes.deploy_rate, self.sizes.deploy_time);
        let names: Vec<String> = (0..channels).map(|c| format!("{}_{c}", f.prefix)).collect();
        let publishing = paced(&publisher, &names, rate, (rate * time.as_secs_f64()) as u64, tag, time * 2);
        let (started, restart_at) = (Instant::now(), self.sizes.deploy_restart_at);
        let (env, redis_pid, all) = (&self.env, self.redis_pid, f.opened.ok);
        let (mut samples, mut terminated, mut restarted) = (Vec::new(), None, None);
        let (subscribers, servers) = (&mut f.subscribers, &mut f.servers);
        let watching = async {
            // A tenth of a second apart, until publishing is over and every
            // stream is back, for twice the publishing time at most.
            while started.elapsed() < time * 2 {
                let at = started.elapsed().as_secs_f64();
                let c = subscribers.stats().await?;
                let redis_cpu = sys::cpu_seconds(redis_pid).unwrap_or(0.0);
                samples.push(Sample { at, open: c.open, reconnects: c.reconnects, redis_cpu });
                if terminated.is_none() && started.elapsed() >= restart_at {
                    servers[0].terminate();
                    terminated = Some(at);
                } else if terminated.is_some() && restarted.is_none() && !servers[0].alive() {
                    let port = servers[0].addr.port();
                    let kind = Kind::Redisse;
                    servers[0] = Server::start_on(kind, env, "deploy1-new", DEFAULT_HEARTBEAT, port, &options).await?;
                    restarted = Some(started.elapsed().as_secs_f64());
                } else if restarted.is_some() && started.elapsed() >= time && c.open == all {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok::<_, String>(())
        };
        let (published, watched) = tokio::join!(publishing, watching);
        watched?;
        let history_commands = (history_commands(&mut redis).await - history0).max(0) as u64;
        let d = self.delivered(&mut f.subscribers, published, streams as u64, Duration::from_secs(5), &mark).await;
        f.subscribers.quit().await;
        for server in f.servers {
            server.stop();
        }
        let terminated = terminated.ok_or("the publishing ended before the restart")?;
        // Back once no later sample is short of a stream.
        let back_after = match samples.iter().rposition(|s| s.open < all) {
            Some(i) => samples.get(i + 1).map(|s| s.at - terminated),
            None => Some(0.0),
        };
        Ok(Deploy {
            drain,
            streams,
            opened: all,
            d: d?,
            back_after,
            restarted_after: restarted.map(|at| at - terminated),
            peak_reconnects: peak(&samples, |s| s.reconnects as f64),
            history_commands,
            redis_peak: peak(&samples, |s| s.redis_cpu) * 100.0,
        })
    }
}

pub fn section(r: &Results, sizes: &Sizes) -> Option<Section> {
    let first = r.deploy.first()?;
    let mut s = Section::new("Deploy: a restart under load");
    s.text(format!(
        "3 redisse servers behind nginx (the fleet's configuration), {} streams on {} channels opened through it, \
         each reconnecting as a browser's EventSource does: after the server's `retry:` (else 3 s, Chrome's \
         default), with the last id it saw as `Last-Event-Id`. {} events/s are published round-robin on the channels \
         for {} s; after {} s one server gets SIGTERM and, once it has exited, is started again on its port. *Lost*: \
         deliveries expected (each event × the streams of its channel) and never received; *duplicated*: events a \
         stream received again; *back after*: from the SIGTERM until every stream is open again; *history commands*: \
         the GETs and ZRANGEBYSCOREs Redis ran for the servers (INFO commandstats, less the publish script's GET of \
         the counter), {COMMANDS_PER_LONE_READ} for a reconnection that reads alone.",
        first.streams.cell(),
        sizes.deploy_channels.cell(),
        sizes.deploy_rate.cell(),
        sizes.deploy_time.as_secs().cell(),
        sizes.deploy_restart_at.as_secs().cell(),
    ));
    let head = "restart | opened | published | received / expected | lost | duplicated | reconnects | back after s";
    let tail = "history commands | per reconnect | redis CPU % at peak | p50 ms | p99 ms";
    let mut t = Table::new(1, &format!("{head} | new server up after s | peak reconnects/s | {tail}"));
    for x in &r.deploy {
        let (d, tally) = (&x.d, &x.d.tally);
        let restart = x.drain.map_or("no drain (0.4's way)".into(), |s| format!("`--drain {s}`"));
        let row = t.row(&[&restart, &x.opened, &d.published.ok, &d.received(), &d.missing(), &tally.duplicates]);
        row.extend([tally.reconnects.cell(), x.back_after.cell(), x.restarted_after.cell()]);
        row.extend([x.peak_reconnects.round().cell(), x.history_commands.cell()]);
        row.extend([x.commands_per_reconnect().cell(), x.redis_peak.round().cell()]);
        row.extend([d.latency.p50.cell(), d.latency.p99.cell()]);
    }
    s.table(&t);
    s.text(
        "The latencies include the events a stream missed while it reconnected and got from the history: they wait \
         for the reconnection. Streams that reconnect within the same burst share their reads (a server gathers them \
         for up to 20 ms): without a drain they come back together and share; drained, they come back a few at a \
         time over the window and each reads nearly alone.",
    );
    Some(s)
}

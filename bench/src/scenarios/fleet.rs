//! Scenario 6, fleet: the most streams this machine holds through a
//! deployment of several redisse servers behind one nginx (several
//! workers, round-robin), then a broadcast to every one of them.

use std::net::SocketAddr;
use std::time::Duration;

use super::idle::{redisse_stats, RedisseStats};
use super::measure::{Case, CpuMark};
use super::{round2, Bench, FleetSize, OPEN_CONCURRENCY};
use crate::fleet::{Fleet, Spec};
use crate::front::{workers_for, Front, UPSTREAM_SOURCES, WORKER_CONNECTIONS};
use crate::publish::{paced, Publisher};
use crate::results::{CpuShare, FleetProcess, FleetRecord, FleetServer, Measurement};
use crate::servers::{Kind, Server, DEFAULT_HEARTBEAT};
use crate::sys;

impl Bench {
    pub async fn fleet(&mut self) {
        if !self.targets.contains(&Kind::Redisse) {
            eprintln!("bench: fleet: skipped, redisse is not among --servers");
            return;
        }
        for size in self.sizes.fleet_sizes.clone() {
            eprintln!(
                "bench: fleet: {size}, {} servers behind nginx",
                self.sizes.fleet_servers
            );
            self.measure("fleet", Kind::Redisse, async |bench: &mut Self| {
                bench.fleet_one(size).await
            })
            .await;
        }
    }

    async fn fleet_one(&mut self, size: FleetSize) -> Result<FleetRecord, String> {
        self.wait_quiet().await;
        let mut servers = Vec::new();
        for i in 1..=self.sizes.fleet_servers {
            let label = format!("fleet{i}");
            servers.push(Server::start(Kind::Redisse, &self.env, &label, DEFAULT_HEARTBEAT).await?);
        }
        let (streams, workers) = match size {
            FleetSize::Streams(n) => (n, workers_for(n)),
            FleetSize::Full => {
                let capacity: usize = servers
                    .iter()
                    .map(|s| s.max_streams().map(|m| m as usize))
                    .sum::<Option<usize>>()
                    .ok_or("a server did not say how many streams it takes")?;
                // Each worker round-robins on its own, so one server may get
                // up to one stream per worker more than the average.
                let workers = workers_for(capacity);
                let streams = capacity.saturating_sub(servers.len() * workers);
                (streams, workers_for(streams))
            }
        };
        let upstreams: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
        let mut front =
            Front::start(&self.env.fleet_conf, &self.env.work, &upstreams, workers).await?;
        let prefix = self.prefix("fleet");
        let channel = format!("{prefix}_0");
        let spec = Spec {
            exe: self.exe.clone(),
            server: front.addr,
            path_template: format!("/?{channel}"),
            channels: 1,
            streams,
            concurrency: OPEN_CONCURRENCY,
            connect_timeout: Duration::from_secs(30),
            max_seconds: 1800.0,
            sources: self.sizes.sources,
        };
        let mut fleet = Fleet::spawn(&spec).await?;
        let opened = fleet.open(Duration::from_secs(300)).await?;
        if opened.ok == 0 {
            return Err(format!("no stream opened: {:?}", opened.errors));
        }
        eprintln!(
            "bench: fleet: {} streams open, {} failed {:?}, in {:.1} s",
            opened.ok,
            opened.failed,
            opened.errors,
            opened.elapsed.as_secs_f64()
        );
        // The last streams' openings (their lastEventId events) settle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = stats_of(&servers).await;
        let process = |pid: u32| FleetProcess {
            rss_kib: sys::rss_kib(pid).unwrap_or(0),
            fds: sys::fd_count(pid).unwrap_or(0),
        };
        let server_procs: Vec<FleetProcess> = servers.iter().map(|s| process(s.pid)).collect();
        let worker_procs: Vec<FleetProcess> = front.workers.iter().map(|&p| process(p)).collect();
        let master_rss = sys::rss_kib(front.master_pid()).unwrap_or(0);
        let client_rss = fleet.rss_kib();
        let (tcp_sockets, tcp_mem_kib) = sys::tcp_sockets();
        let (mem_total_kib, mem_available_kib) = sys::memory_kib();

        let tag = self.next_tag();
        fleet.phase(tag).await?;
        let publisher = Publisher::redis(&self.env.redis_url()).await?;
        let redisse_pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
        let all_pids: Vec<u32> = redisse_pids.iter().chain(&front.workers).copied().collect();
        let mark = CpuMark::of(&all_pids, &fleet, self.redis_pid);
        let (redisse0, nginx0) = (cpu_of(&redisse_pids), cpu_of(&front.workers));
        let (events, interval) = (self.sizes.fleet_events, self.sizes.fleet_interval);
        let limit = interval * events as u32 + Duration::from_secs(30);
        let published = paced(
            &publisher,
            &[channel],
            1.0 / interval.as_secs_f64(),
            events,
            tag,
            limit,
        )
        .await;
        let expected = published.ok * opened.ok;
        fleet
            .wait_for(expected, Duration::from_secs(5), Duration::from_secs(60))
            .await?;
        let cpu = mark.since_of(&all_pids, &fleet, self.redis_pid);
        let pct = |a: f64, b: f64| ((b - a) / cpu.window_s.max(1e-3) * 1000.0).round() / 10.0;
        let (redisse_cpu, nginx_cpu) = (
            pct(redisse0, cpu_of(&redisse_pids)),
            pct(nginx0, cpu_of(&front.workers)),
        );
        let tally = fleet.report().await?;
        let after = stats_of(&servers).await;
        let processes = fleet.processes();
        fleet.quit().await;

        let nginx_alive = front.alive();
        front.stop();
        let mut fleet_servers = Vec::new();
        for (((mut server, proc), before), after) in
            servers.into_iter().zip(server_procs).zip(before).zip(after)
        {
            fleet_servers.push(FleetServer {
                port: server.addr.port(),
                connected: before.as_ref().map(|s| s.connected),
                events_sent: before
                    .zip(after)
                    .map(|(b, a)| a.events.saturating_sub(b.events)),
                max_streams: server.max_streams(),
                process: proc,
                alive: server.alive(),
            });
            server.stop();
        }
        if tally.received == 0 {
            return Err(format!(
                "no event delivered ({} published, errors {:?})",
                published.ok, published.errors
            ));
        }
        let connected_total = fleet_servers
            .iter()
            .map(|s| s.connected)
            .sum::<Option<u64>>();
        let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
        Ok(FleetRecord {
            streams,
            servers_full: size == FleetSize::Full,
            nginx_workers: workers,
            worker_connections: WORKER_CONNECTIONS,
            client_processes: processes,
            sources: self.sizes.sources,
            upstream_sources: UPSTREAM_SOURCES,
            ephemeral_ports: sys::ephemeral_ports(),
            opened: opened.ok,
            failed: opened.failed,
            errors: opened.errors,
            open_s: round2(opened.elapsed.as_secs_f64()),
            connect_p50_ms: ms(opened.connect.quantile(0.5)),
            connect_p99_ms: ms(opened.connect.quantile(0.99)),
            servers: fleet_servers,
            connected_total,
            workers: worker_procs,
            nginx_master_rss_kib: master_rss,
            client_rss_kib: client_rss,
            tcp_sockets,
            tcp_mem_kib,
            mem_total_kib,
            mem_available_kib,
            events,
            interval_ms: interval.as_millis() as u64,
            published: published.ok,
            publish_failed: published.failed,
            publish_errors: published.errors,
            expected,
            received: tally.received,
            missing: expected.saturating_sub(tally.received),
            closed: tally.closed,
            close_reasons: tally.close_reasons,
            latency: tally.latency.summary_ms(),
            nginx_alive,
            redisse_cpu_pct: redisse_cpu,
            nginx_cpu_pct: nginx_cpu,
            cpu,
            attempt: 1, // renumbered by `measure`
        })
    }
}

/// Each server's own stats, in the servers' order.
async fn stats_of(servers: &[Server]) -> Vec<Option<RedisseStats>> {
    let mut out = Vec::new();
    for s in servers {
        out.push(redisse_stats(s.addr).await);
    }
    out
}

fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|&p| sys::cpu_seconds(p, false))
        .sum()
}

impl Case for FleetRecord {
    fn cpu(&self) -> &CpuShare {
        &self.cpu
    }
    fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt;
    }
    fn into_measurement(self) -> Measurement {
        Measurement::Fleet(self)
    }
}

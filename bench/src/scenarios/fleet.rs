//! Fleet: the most streams this machine holds through a deployment of
//! several redisse servers behind one nginx with several workers
//! (bench/fleet/nginx.conf, round-robin), then a broadcast to all of them.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{Bench, Case, Cpu, FleetSize, Results};
use crate::hist::Latency;
use crate::publish::{paced, Published, Publisher};
use crate::report::{mib, with_counts, Cell, Meta, Section, Table};
use crate::servers::{free_port, Kind, Proc, Server, DEFAULT_HEARTBEAT};
use crate::subscribe::{Counters, Opened};
use crate::sys;

/// The open files every process here may have (nginx's workers included).
const FD_LIMIT: u64 = 20_000;

/// Connections per nginx worker: under its 20,000 open files, with room
/// for its listening socket, logs and the connections it is closing.
const WORKER_CONNECTIONS: u64 = 19_000;

/// Streams a worker is sized for. Each costs it two descriptors (client
/// and upstream), and the kernel spreads connections over the workers'
/// sockets by hash, not by load: 13,000 descriptors leave room for that.
const STREAMS_PER_WORKER: usize = 6_500;

/// Source addresses nginx connects to the servers from (127.0.1.1 and
/// up): with 50,000 streams over three servers, about 2,100 connections
/// per (source, server) pair, under a tenth of the ephemeral range.
const UPSTREAM_SOURCES: u64 = 8;

pub struct FleetCase {
    pub streams: usize,
    /// The case that fills the servers: as many streams as they take together.
    pub full: bool,
    pub opened: Opened,
    pub tally: Counters,
    pub published: Published,
    pub expected: u64,
    pub latency: Latency,
    pub servers: Vec<FleetServer>,
    /// RSS (KiB) and descriptors of each nginx worker.
    pub workers: Vec<(u64, usize)>,
    pub master_rss_kib: u64,
    /// The subscriber processes, and their RSS together.
    pub clients: (usize, u64),
    /// The machine's TCP sockets and the kernel memory their buffers held (KiB).
    pub tcp: (u64, u64),
    /// The machine's memory and what was still available, in KiB.
    pub memory: (u64, u64),
    /// The servers' and the nginx workers' CPU seconds.
    pub redisse_cpu: f64,
    pub nginx_cpu: f64,
    pub cpu: Cpu,
    /// Events of the broadcast, ms between them, clients' source addresses.
    pub broadcast: (u64, u64, usize),
}

/// One redisse server of a fleet, as its stats page and /proc tell.
pub struct FleetServer {
    pub port: u16,
    /// Its stats' `connected` once every stream was open.
    pub connected: Option<u64>,
    /// How much its stats' `events` rose over the broadcast.
    pub events_sent: Option<u64>,
    /// The most streams it takes at once (its --max-streams default).
    pub max_streams: Option<u64>,
    pub rss_kib: u64,
    pub fds: usize,
}

impl Case for FleetCase {
    fn cpu(&self) -> &Cpu {
        &self.cpu
    }
}

/// nginx workers for `streams`: at least two, so that the spread over
/// workers is exercised even in a quick run.
pub(super) fn workers_for(streams: usize) -> usize {
    streams.div_ceil(STREAMS_PER_WORKER).clamp(2, 32)
}

/// The configuration: `template` with its fields filled in.
fn render(template: &str, port: u16, workers: usize, upstreams: &[SocketAddr]) -> String {
    let servers: Vec<String> = upstreams
        .iter()
        .map(|a| format!("        server {a} max_fails=0;"))
        .collect();
    let share = 100.0 / UPSTREAM_SOURCES as f64;
    let sources: Vec<String> = (1..=UPSTREAM_SOURCES)
        .map(|i| match i {
            UPSTREAM_SOURCES => format!("        * 127.0.1.{i};"),
            _ => format!("        {share:.2}% 127.0.1.{i};"),
        })
        .collect();
    // The lists replace the lines that are only @UPSTREAMS@ and @SOURCES@;
    // the template's comments name them too.
    let lines: Vec<String> = template
        .lines()
        .map(|line| match line.trim() {
            "@UPSTREAMS@" => servers.join("\n"),
            "@SOURCES@" => sources.join("\n"),
            _ => line
                .replace("@PORT@", &port.to_string())
                .replace("@WORKERS@", &workers.to_string())
                .replace("@CONNECTIONS@", &WORKER_CONNECTIONS.to_string()),
        })
        .collect();
    lines.join("\n") + "\n"
}

impl Bench {
    pub(super) async fn fleet(&mut self) {
        if !self.servers.contains(&Kind::Redisse) {
            return eprintln!("bench: fleet: skipped, redisse is not among --servers");
        }
        for size in self.sizes.fleet_sizes.clone() {
            let streams = match size {
                FleetSize::Streams(n) => format!("{n} streams"),
                FleetSize::Full => "as many streams as they take".into(),
            };
            let servers = self.sizes.fleet_servers;
            let what = format!("fleet of {servers} servers behind nginx, {streams}");
            let run = async |b: &mut Self| b.fleet_one(size).await;
            self.measure(what, Kind::Redisse, |r| &mut r.fleet, run)
                .await;
        }
    }

    /// Starts nginx in front of `upstreams` and waits for every worker.
    pub(super) async fn front(
        &self,
        upstreams: &[SocketAddr],
        workers: usize,
    ) -> Result<(Proc, SocketAddr, Vec<u32>), String> {
        let port = free_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let template = std::fs::read_to_string(&self.env.fleet_conf)
            .map_err(|e| format!("cannot read {}: {e}", self.env.fleet_conf.display()))?;
        let conf = render(&template, port, workers, upstreams);
        let mut proc = Proc::nginx("nginx (fleet)", &conf, self.env.work.join("fleet-nginx"))?;
        proc.wait_for_stream(addr, "/?bench_probe").await?;
        // A stream answered, so one worker forked; the others follow within moments.
        for _ in 0..50 {
            let found = sys::children_of(proc.pid());
            if found.len() == workers {
                // Let the probe's close settle so the baseline is quiet.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return Ok((proc, addr, found));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("nginx did not start its {workers} workers"))
    }

    async fn fleet_one(&mut self, size: FleetSize) -> Result<FleetCase, String> {
        let mut servers = Vec::new();
        for i in 1..=self.sizes.fleet_servers {
            servers.push(
                Server::start(
                    Kind::Redisse,
                    &self.env,
                    &format!("fleet{i}"),
                    DEFAULT_HEARTBEAT,
                )
                .await?,
            );
        }
        let streams = match size {
            FleetSize::Streams(n) => n,
            FleetSize::Full => {
                let capacity: usize = servers
                    .iter()
                    .map(|s| s.max_streams().map(|m| m as usize))
                    .sum::<Option<usize>>()
                    .ok_or("a server did not say how many streams it takes")?;
                // Each worker round-robins on its own, so one server may get
                // up to one stream per worker more than the average.
                capacity.saturating_sub(servers.len() * workers_for(capacity))
            }
        };
        let upstreams: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
        let (mut front, front_addr, workers) = self.front(&upstreams, workers_for(streams)).await?;
        let prefix = self.prefix("fleet");
        let mut spec = self.spec(&servers[0], &prefix, 1, streams);
        spec.server = front_addr;
        let (mut subscribers, opened) = self.open(&spec).await?;
        eprintln!(
            "bench: fleet: {} streams open, {} failed, in {:.1} s",
            opened.ok, opened.failed, opened.elapsed_s
        );
        // The last streams' openings (their lastEventId events) settle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut before = Vec::new();
        for s in &servers {
            before.push((redisse_stats(s.addr).await, s.rss_kib(), s.fds()));
        }
        let worker_use: Vec<(u64, usize)> = workers
            .iter()
            .map(|&p| (sys::rss_kib(p).unwrap_or(0), sys::fd_count(p).unwrap_or(0)))
            .collect();
        let (tcp, memory) = (sys::tcp_sockets(), sys::memory_kib());
        let (master_rss_kib, client_rss) = (
            sys::rss_kib(front.pid()).unwrap_or(0),
            subscribers.rss_kib(),
        );

        let tag = self.next_tag();
        subscribers.phase(tag).await?;
        let publisher = Publisher::redis(&self.env.redis_url()).await?;
        let redisse_pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
        let all_pids: Vec<u32> = redisse_pids.iter().chain(&workers).copied().collect();
        let mark = self.cpu_mark(&all_pids, &subscribers);
        let (redisse0, nginx0) = (
            sys::cpu_seconds_of(&redisse_pids),
            sys::cpu_seconds_of(&workers),
        );
        let (events, interval) = (self.sizes.fleet_events, self.sizes.fleet_interval);
        let limit = interval * events as u32 + Duration::from_secs(30);
        let channel = [format!("{prefix}_0")];
        let published = paced(
            &publisher,
            &channel,
            1.0 / interval.as_secs_f64(),
            events,
            tag,
            limit,
        )
        .await;
        let expected = published.ok * opened.ok;
        let quiet = Duration::from_secs(5);
        let delivered = self
            .delivered(
                &mut subscribers,
                &published,
                expected,
                quiet,
                (mark, &all_pids),
            )
            .await;
        let redisse_cpu = sys::cpu_seconds_of(&redisse_pids) - redisse0;
        let nginx_cpu = sys::cpu_seconds_of(&workers) - nginx0;
        let clients = (subscribers.count(), client_rss);
        subscribers.quit().await;
        front.stop(Duration::from_secs(10));
        let mut fleet_servers = Vec::new();
        for (server, (stats, rss_kib, fds)) in servers.into_iter().zip(before) {
            let after = redisse_stats(server.addr).await;
            fleet_servers.push(FleetServer {
                port: server.addr.port(),
                connected: stats.as_ref().map(|s| s.connected),
                events_sent: stats
                    .zip(after)
                    .map(|(b, a)| a.events.saturating_sub(b.events)),
                max_streams: server.max_streams(),
                rss_kib,
                fds,
            });
            server.stop();
        }
        let (tally, latency, cpu) = delivered?;
        let broadcast = (events, interval.as_millis() as u64, self.sizes.sources);
        Ok(FleetCase {
            streams,
            full: size == FleetSize::Full,
            opened,
            tally,
            published,
            expected,
            latency,
            servers: fleet_servers,
            workers: worker_use,
            master_rss_kib,
            clients,
            tcp,
            memory,
            redisse_cpu,
            nginx_cpu,
            cpu,
            broadcast,
        })
    }
}

/// redisse's stats page (`GET /` as JSON): each server counts only its own
/// streams and events.
#[derive(Deserialize)]
struct RedisseStats {
    connected: u64,
    events: u64,
}

async fn redisse_stats(addr: SocketAddr) -> Option<RedisseStats> {
    let get = async {
        let mut socket = sse_client::connect(addr, None).await.ok()?;
        let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        let head = sse_client::read_head(&mut socket, &mut buf).await.ok()?;
        let body = sse_client::read_body(&mut socket, &head, &mut buf)
            .await
            .ok()?;
        serde_json::from_slice(&body).ok()
    };
    tokio::time::timeout(Duration::from_secs(5), get)
        .await
        .ok()
        .flatten()
}

pub fn section(r: &Results, meta: &Meta) -> Option<Section> {
    // The details are the biggest case's.
    let big = r.fleet.iter().max_by_key(|f| f.streams)?;
    let (n, (events, interval_ms, sources)) = (big.servers.len(), big.broadcast);
    let mut s = Section::new(format!("Fleet: {n} servers behind nginx"));
    s.text(format!(
        "{n} redisse servers (each on its own port, one Redis) behind one nginx with several workers \
         (`bench/fleet/nginx.conf`: round-robin, `proxy_buffering off`, `listen ... reuseport`, \
         `worker_connections {}`, `proxy_bind` over {UPSTREAM_SOURCES} source addresses). The streams, all on one \
         channel, are opened through nginx (`GET /?<channel>`) from {sources} source addresses, 100 at a time per \
         subscriber process; then {events} events are published {} ms apart to that channel. The capacity case, if \
         run, fills the servers: as many streams as they take together, less one per nginx worker and server (each \
         worker round-robins on its own, so one server may get that many more than another).",
        WORKER_CONNECTIONS.cell(),
        interval_ms.cell(),
    ));
    let mut t = Table::new(
        "streams | nginx workers | opened | failed | closed | all open in s | connect p50 / p99 ms",
    )
    .columns("received / expected | missing | p50 ms | p95 ms | p99 ms | max ms")
    .columns("redisse CPU % | nginx CPU % | client CPU % | redis CPU % | other CPU %");
    for f in &r.fleet {
        let (o, l, c, connect) = (&f.opened, &f.latency, &f.cpu, f.opened.connect.ms());
        let streams = f.streams.cell()
            + if f.full {
                " (the servers' capacity)"
            } else {
                ""
            };
        let failed = with_counts(o.failed, &o.errors);
        let connect = format!("{} / {}", connect.p50.cell(), connect.p99.cell());
        let row = t.row(&[
            &streams,
            &f.workers.len(),
            &o.ok,
            &failed,
            &f.tally.closed,
            &o.elapsed_s,
            &connect,
        ]);
        row.push(format!(
            "{} / {}",
            f.tally.received.cell(),
            f.expected.cell()
        ));
        row.push(f.expected.saturating_sub(f.tally.received).cell());
        row.extend([l.p50, l.p95, l.p99, l.max].map(|x| x.cell()));
        row.extend(
            [f.redisse_cpu, f.nginx_cpu, c.client, c.redis, c.other].map(|x| c.pct(x).cell()),
        );
    }
    s.table(&t);
    processes(&mut s, big);
    limits(&mut s, big, meta);
    Some(s)
}

/// Who holds what once every stream is open.
fn processes(s: &mut Section, f: &FleetCase) {
    let opened = f.opened.ok;
    s.text(format!(
        "The {} streams once every one was open (a worker's streams are half its descriptors, a client and an \
         upstream socket each):",
        opened.cell()
    ));
    let mut t = Table::new("process | streams | RSS (MiB) | fds | events written in the broadcast");
    for server in &f.servers {
        let name = format!("redisse :{}", server.port);
        t.row(&[
            &name,
            &server.connected,
            &mib(server.rss_kib),
            &server.fds,
            &server.events_sent,
        ]);
    }
    let server_rss: u64 = f.servers.iter().map(|s| s.rss_kib).sum();
    let connected: Option<u64> = f.servers.iter().map(|s| s.connected).sum();
    let events: Option<u64> = f.servers.iter().map(|s| s.events_sent).sum();
    let bold = |c: &dyn Cell| format!("**{}**", c.cell());
    let all = format!("redisse, all {}", f.servers.len());
    t.row(&[
        &bold(&all),
        &bold(&connected),
        &bold(&mib(server_rss)),
        &"",
        &bold(&events),
    ]);
    for (i, (rss, fds)) in f.workers.iter().enumerate() {
        t.row(&[
            &format!("nginx worker {}", i + 1),
            &format!("~{}", (fds / 2).cell()),
            &mib(*rss),
            fds,
            &"",
        ]);
    }
    let nginx_rss = f.workers.iter().map(|w| w.0).sum::<u64>() + f.master_rss_kib;
    let nginx = format!("nginx, {} workers and the master", f.workers.len());
    t.row(&[&bold(&nginx), &"", &bold(&mib(nginx_rss)), &"", &""]);
    let clients = format!("subscriber processes ({})", f.clients.0);
    t.row(&[&clients, &opened, &mib(f.clients.1), &"", &""]);
    s.table(&t);
    let per = |kib: u64| kib as f64 / opened.max(1) as f64;
    s.text(format!(
        "Per stream: {:.1} KiB in the servers, {:.1} KiB in nginx, {:.1} KiB in the clients; the kernel held {} TCP \
         sockets with {} MiB of buffers (/proc/net/sockstat). Each server's stats (`GET /` with `Accept: \
         application/json`) count its own streams and events only, so the fleet's are their sum, asked server by \
         server: {} streams for the {} the clients held, {} events written for the {} the clients received.",
        per(server_rss),
        per(nginx_rss),
        per(f.clients.1),
        f.tcp.0.cell(),
        mib(f.tcp.1),
        connected.cell(),
        opened.cell(),
        events.cell(),
        f.tally.received.cell(),
    ));
}

/// What bounds the fleet's size here: each limit as a ceiling on streams.
fn limits(s: &mut Section, f: &FleetCase, meta: &Meta) {
    let (n, workers, sources) = (
        f.servers.len() as u64,
        f.workers.len() as u64,
        f.broadcast.2 as u64,
    );
    let max_streams = f.servers.iter().filter_map(|s| s.max_streams).min();
    let busiest = f.servers.iter().filter_map(|s| s.connected).max();
    let worker_streams = FD_LIMIT.min(WORKER_CONNECTIONS) / 2;
    let ports = sys::ephemeral_ports();
    let rss: u64 = f
        .servers
        .iter()
        .map(|s| s.rss_kib)
        .chain(f.workers.iter().map(|w| w.0))
        .sum();
    let held = rss + f.master_rss_kib + f.clients.1 + f.tcp.1;
    let per_stream = held as f64 / f.opened.ok.max(1) as f64;
    let gib = |kib: u64| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0);
    let fullest_worker = f.workers.iter().map(|w| w.1).max().unwrap_or(0);
    let mut ceilings = [
        (
            format!(
                "each server's descriptors: `--max-streams` {} × {n} servers",
                max_streams.cell()
            ),
            max_streams.map_or(u64::MAX, |m| m * n),
            format!("{} in the busiest server", busiest.cell()),
        ),
        (
            format!(
                "nginx's descriptors: two per stream, {} per worker × {workers}",
                worker_streams.cell()
            ),
            worker_streams * workers,
            format!("{} fds in the fullest worker", fullest_worker.cell()),
        ),
        (
            format!(
                "the clients' ports: {} per pair × {sources} source addresses",
                ports.cell()
            ),
            ports * sources,
            format!(
                "{} per address",
                f.opened.ok.div_ceil(sources.max(1)).cell()
            ),
        ),
        (
            format!(
                "nginx's ports to the servers: {} × {UPSTREAM_SOURCES} addresses × {n} servers",
                ports.cell()
            ),
            ports * UPSTREAM_SOURCES * n,
            format!(
                "{} per pair",
                busiest.map(|b| b.div_ceil(UPSTREAM_SOURCES)).cell()
            ),
        ),
        (
            format!(
                "memory: {per_stream:.1} KiB per stream (RSS and socket buffers), {} free",
                gib(f.memory.1)
            ),
            f.opened.ok + (f.memory.1 as f64 / per_stream.max(1e-3)) as u64,
            format!("{} held of {}", gib(held), gib(f.memory.0)),
        ),
    ];
    ceilings.sort_by_key(|c| c.1);
    let lowest = ceilings[0].0.split(':').next().unwrap_or("");
    s.text(format!(
        "What bounds the count on this machine, where every process may have {} open files (the lowest: **{lowest}**):",
        FD_LIMIT.cell(),
    ));
    let mut t = Table::new("limit | streams it allows | used here");
    for (limit, most, used) in &ceilings {
        t.row(&[limit, most, used]);
    }
    s.table(&t);
    let (c, events) = (&f.cpu, f.published.ok.max(1) as f64);
    let busy = f.redisse_cpu + f.nginx_cpu + c.client + c.redis;
    s.text(format!(
        "Clients and nginx leave the source port to connect() (`IP_BIND_ADDRESS_NO_PORT`), so a port is taken for \
         one (source, destination) pair only; nginx connects from several addresses because the kernel's search for a \
         free port grows long when one pair holds most of the range. CPU bounds the latency, not the count: over the \
         broadcast redisse, nginx, the clients and Redis used {:.0} % of the {} % the machine has, {:.0} µs per \
         delivery all told, about {:.2} s of the whole machine per event; deliveries took p50 {} ms and at most {} ms.",
        c.pct(busy),
        meta.cores * 100,
        busy * 1e6 / f.tally.received.max(1) as f64,
        busy / events / meta.cores as f64,
        f.latency.p50.cell(),
        f.latency.max.cell()
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_filled_in() {
        let upstreams = [
            "127.0.0.1:9001".parse().unwrap(),
            "127.0.0.1:9002".parse().unwrap(),
        ];
        let conf = render(include_str!("../../fleet/nginx.conf"), 8080, 8, &upstreams);
        // Every field filled in, outside the comments that name them too.
        for line in conf.lines().filter(|l| !l.trim_start().starts_with('#')) {
            assert!(!line.contains('@'), "{line}");
        }
        assert!(
            conf.contains("worker_processes 8;")
                && conf.contains("listen 127.0.0.1:8080 reuseport")
        );
        assert!(conf.contains("        server 127.0.0.1:9002 max_fails=0;\n"));
        assert!(conf.contains("        12.50% 127.0.1.7;\n        * 127.0.1.8;\n"));
    }

    #[test]
    fn workers_keep_well_under_their_descriptors() {
        assert_eq!((workers_for(600), workers_for(50_000)), (2, 8));
        for n in [600usize, 50_000, 59_202] {
            assert!(n.div_ceil(workers_for(n)) <= STREAMS_PER_WORKER, "{n}");
        }
    }
}

//! Fleet: the most streams this machine holds through several redisse
//! servers behind one nginx with several workers (bench/fleet/nginx.conf,
//! round-robin), then a broadcast to all of them.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::sizes::FleetSize;
use super::{Bench, Delivered, Results, Sizes};
use crate::publish::{every, Publisher};
use crate::report::{mib, of, with_counts, Cell, Meta, Section, Table};
use crate::servers::{free_port, Kind, Proc, Server, DEFAULT_HEARTBEAT};
use crate::subscribe::Opened;
use crate::subscribers::Subscribers;
use crate::sys;

/// The open files every process here may have (nginx's workers included).
const FD_LIMIT: u64 = 20_000;

/// Per nginx worker: under its 20,000 open files, with room for its
/// listening socket, logs and the connections it is closing.
const WORKER_CONNECTIONS: u64 = 19_000;

/// Streams a worker is sized for: two descriptors each (client and
/// upstream), with room left because the kernel spreads connections over
/// the workers' sockets by hash, not by load.
const STREAMS_PER_WORKER: usize = 6_500;

/// Source addresses nginx connects to the servers from (127.0.1.1 and up):
/// 50,000 streams over three servers make about 2,100 connections per
/// (source, server) pair, under a tenth of the ephemeral range.
const UPSTREAM_SOURCES: u64 = 8;

pub struct FleetCase {
    pub streams: usize,
    /// The capacity case: as many streams as the servers take together.
    pub full: bool,
    pub opened: Opened,
    pub d: Delivered,
    pub servers: Vec<FleetServer>,
    /// RSS (KiB) and descriptors of each nginx worker.
    pub workers: Vec<(u64, usize)>,
    pub master_rss_kib: u64,
    /// The subscriber processes, and their RSS together.
    pub clients: (usize, u64),
    /// The machine's TCP sockets and their buffers; its memory and what was available (KiB).
    pub tcp: (u64, u64),
    pub memory: (u64, u64),
    /// CPU seconds over the broadcast.
    pub redisse_cpu: f64,
    pub nginx_cpu: f64,
}

/// One redisse server of a fleet, as its stats page and /proc tell.
pub struct FleetServer {
    pub port: u16,
    /// Streams once every one was open.
    pub connected: Option<u64>,
    /// Events written over the broadcast.
    pub events_sent: Option<u64>,
    /// Its --max-streams default.
    pub max_streams: Option<u64>,
    pub rss_kib: u64,
    pub fds: usize,
}

/// Redisse servers behind one nginx, with streams open through it.
pub(super) struct Fleet {
    pub servers: Vec<Server>,
    pub nginx: Proc,
    pub workers: Vec<u32>,
    pub subscribers: Subscribers,
    pub opened: Opened,
    /// The streams' channels are `{prefix}_0` and up.
    pub prefix: String,
}

/// nginx workers for `streams`: at least two, so that the spread over
/// workers is exercised even in a quick run.
fn workers_for(streams: usize) -> usize {
    streams.div_ceil(STREAMS_PER_WORKER).clamp(2, 32)
}

/// The configuration: `template` with its fields filled in.
fn render(template: &str, port: u16, workers: usize, upstreams: &[SocketAddr]) -> String {
    let servers: Vec<String> = upstreams.iter().map(|a| format!("        server {a} max_fails=0;")).collect();
    let share = 100.0 / UPSTREAM_SOURCES as f64;
    let mut sources: Vec<String> = (1..UPSTREAM_SOURCES).map(|i| format!("        {share:.2}% 127.0.1.{i};")).collect();
    sources.push(format!("        * 127.0.1.{UPSTREAM_SOURCES};"));
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
            let what = format!("fleet of {} servers behind nginx, {streams}", self.sizes.fleet_servers);
            let run = async |b: &mut Self| b.fleet_one(size).await;
            self.measure(what, Kind::Redisse, |r| &mut r.fleet, run).await;
        }
    }

    /// `n` redisse servers, `label1` and up, with `args` added to their command line.
    pub(super) async fn redisse_servers(&self, label: &str, n: usize, args: &[String]) -> Result<Vec<Server>, String> {
        let mut servers = Vec::new();
        for i in 1..=n {
            let (label, port) = (format!("{label}{i}"), free_port()?);
            servers.push(Server::start_on(Kind::Redisse, &self.env, &label, DEFAULT_HEARTBEAT, port, args).await?);
        }
        Ok(servers)
    }

    /// Starts nginx in front of `servers`, waits for every worker, then
    /// opens `streams` streams through it over `channels` channels.
    pub(super) async fn behind_nginx(
        &self,
        servers: Vec<Server>,
        label: &str,
        channels: usize,
        streams: usize,
        reconnect: bool,
    ) -> Result<Fleet, String> {
        let (port, workers) = (free_port()?, workers_for(streams));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let upstreams: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
        let conf = render(&self.env.nginx_template("fleet")?, port, workers, &upstreams);
        let mut nginx = Proc::nginx("nginx (fleet)", &conf, self.env.work.join("fleet-nginx"))?;
        nginx.wait_for_stream(addr, "/?bench_probe").await?;
        // A stream answered, so one worker forked; the others follow within moments.
        let mut found = Vec::new();
        for _ in 0..50 {
            found = sys::children_of(nginx.pid());
            if found.len() == workers {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if found.len() != workers {
            return Err(format!("nginx did not start its {workers} workers"));
        }
        // Let the probe's close settle so the baseline is quiet.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let prefix = self.prefix(label);
        let mut spec = self.spec(&servers[0], &prefix, channels, streams);
        (spec.server, spec.reconnect) = (addr, reconnect);
        let (subscribers, opened) = self.open(&spec).await?;
        eprintln!("bench: {label}: {} streams open, {} failed, in {:.1} s", opened.ok, opened.failed, opened.elapsed_s);
        // The last streams' openings (their lastEventId events) settle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(Fleet { servers, nginx, workers: found, subscribers, opened, prefix })
    }

    async fn fleet_one(&mut self, size: FleetSize) -> Result<FleetCase, String> {
        let servers = self.redisse_servers("fleet", self.sizes.fleet_servers, &[]).await?;
        let streams = match size {
            FleetSize::Streams(n) => n,
            FleetSize::Full => {
                let capacity: Option<u64> = servers.iter().map(Server::max_streams).sum();
                let capacity = capacity.ok_or("a server did not say how many streams it takes")? as usize;
                // Each worker round-robins on its own, so one server may get
                // up to one stream per worker more than the average.
                capacity.saturating_sub(servers.len() * workers_for(capacity))
            }
        };
        let mut f = self.behind_nginx(servers, "fleet", 1, streams, false).await?;
        let mut servers = Vec::new();
        for s in &f.servers {
            // events_sent holds the events written so far until the broadcast is over.
            let (connected, events_sent) = redisse_stats(s.addr).await.map(|s| (s.connected, s.events)).unzip();
            let (port, max_streams, rss_kib, fds) = (s.addr.port(), s.max_streams(), s.rss_kib(), s.fds());
            servers.push(FleetServer { port, connected, events_sent, max_streams, rss_kib, fds });
        }
        let workers =
            f.workers.iter().map(|&p| (sys::rss_kib(p).unwrap_or(0), sys::fd_count(p).unwrap_or(0))).collect();
        let (tcp, memory) = (sys::tcp_sockets(), sys::memory_kib());
        let master_rss_kib = sys::rss_kib(f.nginx.pid()).unwrap_or(0);
        let clients = (f.subscribers.count(), f.subscribers.rss_kib());

        let publisher = Publisher::redis(&self.env.redis_url()).await?;
        let redisse_pids: Vec<u32> = f.servers.iter().map(|s| s.pid).collect();
        let all_pids: Vec<u32> = redisse_pids.iter().chain(&f.workers).copied().collect();
        let (tag, mark) = self.phase(&mut f.subscribers, &all_pids).await?;
        let (redisse0, nginx0) = (sys::cpu_seconds_of(&redisse_pids), sys::cpu_seconds_of(&f.workers));
        let (events, interval) = (self.sizes.fleet_events, self.sizes.fleet_interval);
        let published = every(&publisher, &[format!("{}_0", f.prefix)], interval, events, tag).await;
        let d = self.delivered(&mut f.subscribers, published, f.opened.ok, Duration::from_secs(5), &mark).await;
        let redisse_cpu = sys::cpu_seconds_of(&redisse_pids) - redisse0;
        let nginx_cpu = sys::cpu_seconds_of(&f.workers) - nginx0;
        f.subscribers.quit().await;
        f.nginx.stop(Duration::from_secs(10));
        for (server, record) in f.servers.into_iter().zip(&mut servers) {
            let after = redisse_stats(server.addr).await;
            record.events_sent = record.events_sent.zip(after).map(|(b, a)| a.events.saturating_sub(b));
            server.stop();
        }
        Ok(FleetCase {
            streams,
            full: size == FleetSize::Full,
            opened: f.opened,
            d: d?,
            servers,
            workers,
            master_rss_kib,
            clients,
            tcp,
            memory,
            redisse_cpu,
            nginx_cpu,
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
        let request =
            format!("GET / HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        let head = sse_client::read_head(&mut socket, &mut buf).await.ok()?;
        let body = sse_client::read_body(&mut socket, &head, &mut buf).await.ok()?;
        serde_json::from_slice(&body).ok()
    };
    tokio::time::timeout(Duration::from_secs(5), get).await.ok().flatten()
}

pub fn section(r: &Results, sizes: &Sizes, meta: &Meta) -> Option<Section> {
    // The details are the biggest case's.
    let big = r.fleet.iter().max_by_key(|f| f.streams)?;
    let (n, events, sources) = (big.servers.len(), sizes.fleet_events, sizes.sources);
    let interval_ms = sizes.fleet_interval.as_millis() as u64;
    let mut s = Section::new(format!("Fleet: {n} servers behind nginx"));
    s.text(format!(
        "{n} redisse servers (one port each, one Redis) behind one nginx with several workers \
         (`bench/fleet/nginx.conf`: round-robin, `proxy_buffering off`, `listen ... reuseport`, `worker_connections \
         {}`, `proxy_bind` over {UPSTREAM_SOURCES} source addresses). The streams, all on one channel, open through \
         nginx (`GET /?<channel>`) from {sources} source addresses, 100 at a time per subscriber process; then \
         {events} events are published to it {} ms apart. The capacity case, if run, opens as many streams as the \
         servers take, less one per nginx worker and server (workers round-robin independently, so one server may get \
         that many more).",
        WORKER_CONNECTIONS.cell(),
        interval_ms.cell(),
    ));
    let head = "streams | nginx workers | opened | failed | closed | all open in s | connect p50 / p99 ms";
    let tail = "redisse CPU % | nginx CPU % | client CPU % | redis CPU % | other CPU %";
    let latency = "p50 ms | p95 ms | p99 ms | max ms";
    let mut t = Table::new(1, &format!("{head} | received / expected | missing | {latency} | {tail}"));
    for f in &r.fleet {
        let (o, d, c) = (&f.opened, &f.d, &f.d.cpu);
        let streams = f.streams.cell() + if f.full { " (the servers' capacity)" } else { "" };
        let (failed, connect) = (with_counts(o.failed, &o.errors), o.connect.ms());
        let connect = of(connect.p50, connect.p99);
        let row = t.row(&[&streams, &f.workers.len(), &o.ok, &failed, &d.tally.closed, &o.elapsed_s, &connect]);
        row.extend([d.received(), d.missing().cell()]);
        row.extend(d.latency.cells());
        row.extend([f.redisse_cpu, f.nginx_cpu, c.client, c.redis, c.other].map(|x| c.pct(x).cell()));
    }
    s.table(&t);
    let held = processes(&mut s, big);
    limits(&mut s, big, held, sizes.sources as u64, meta);
    Some(s)
}

/// Who holds what once every stream is open; returns the KiB all of it
/// held (RSS and socket buffers).
fn processes(s: &mut Section, f: &FleetCase) -> u64 {
    let opened = f.opened.ok;
    s.text(format!(
        "The {} streams once all were open (a worker's streams are half its descriptors: a client and an upstream \
         socket each):",
        opened.cell()
    ));
    let mut t = Table::new(1, "process | streams | RSS (MiB) | fds | events written in the broadcast");
    for server in &f.servers {
        let name = format!("redisse :{}", server.port);
        t.row(&[&name, &server.connected, &mib(server.rss_kib), &server.fds, &server.events_sent]);
    }
    let server_rss: u64 = f.servers.iter().map(|s| s.rss_kib).sum();
    let connected: Option<u64> = f.servers.iter().map(|s| s.connected).sum();
    let events: Option<u64> = f.servers.iter().map(|s| s.events_sent).sum();
    let bold = |c: &dyn Cell| format!("**{}**", c.cell());
    let all = format!("redisse, all {}", f.servers.len());
    t.row(&[&bold(&all), &bold(&connected), &bold(&mib(server_rss)), &"", &bold(&events)]);
    for (i, (rss, fds)) in f.workers.iter().enumerate() {
        let name = format!("nginx worker {}", i + 1);
        t.row(&[&name, &format!("~{}", (fds / 2).cell()), &mib(*rss), fds, &""]);
    }
    let nginx_rss = f.workers.iter().map(|w| w.0).sum::<u64>() + f.master_rss_kib;
    let nginx = format!("nginx, {} workers and the master", f.workers.len());
    t.row(&[&bold(&nginx), &"", &bold(&mib(nginx_rss)), &"", &""]);
    let clients = format!("subscriber processes ({})", f.clients.0);
    t.row(&[&clients, &opened, &mib(f.clients.1), &"", &""]);
    s.table(&t);
    let per = |kib: u64| kib as f64 / opened.max(1) as f64;
    let (servers, nginx, clients) = (per(server_rss), per(nginx_rss), per(f.clients.1));
    let (sockets, buffers, received) = (f.tcp.0.cell(), mib(f.tcp.1), f.d.tally.received.cell());
    let (connected, opened, events) = (connected.cell(), opened.cell(), events.cell());
    s.text(format!(
        "Per stream: {servers:.1} KiB in the servers, {nginx:.1} KiB in nginx, {clients:.1} KiB in the clients; the \
         kernel held {sockets} TCP sockets with {buffers} MiB of buffers (/proc/net/sockstat). Each server's stats \
         (`GET /`, `Accept: application/json`) count only its own streams and events, so the fleet's are their sum: \
         {connected} streams for the {opened} the clients held, {events} events written for the {received} the \
         clients received."
    ));
    server_rss + nginx_rss + f.clients.1 + f.tcp.1
}

/// What bounds the fleet's size here: each limit as a ceiling on streams.
fn limits(s: &mut Section, f: &FleetCase, held: u64, sources: u64, meta: &Meta) {
    let (n, workers) = (f.servers.len() as u64, f.workers.len() as u64);
    let max_streams = f.servers.iter().filter_map(|s| s.max_streams).min();
    let busiest = f.servers.iter().filter_map(|s| s.connected).max();
    let worker_streams = FD_LIMIT.min(WORKER_CONNECTIONS) / 2;
    let ports = sys::ephemeral_ports();
    let per_stream = held as f64 / f.opened.ok.max(1) as f64;
    let gib = |kib: u64| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0);
    let (max, ok, free) = (max_streams.cell(), f.opened.ok, f.memory.1);
    let mut ceilings = [
        (
            format!("each server's descriptors: `--max-streams` {max} × {n} servers"),
            max_streams.map_or(u64::MAX, |m| m * n),
            format!("{} in the busiest server", busiest.cell()),
        ),
        (
            format!("nginx's descriptors: two per stream, {} per worker × {workers}", worker_streams.cell()),
            worker_streams * workers,
            format!("{} fds in the fullest worker", f.workers.iter().map(|w| w.1).max().unwrap_or(0).cell()),
        ),
        (
            format!("the clients' ports: {} per pair × {sources} source addresses", ports.cell()),
            ports * sources,
            format!("{} per address", ok.div_ceil(sources.max(1)).cell()),
        ),
        (
            format!("nginx's ports to the servers: {} × {UPSTREAM_SOURCES} addresses × {n} servers", ports.cell()),
            ports * UPSTREAM_SOURCES * n,
            format!("{} per pair", busiest.map(|b| b.div_ceil(UPSTREAM_SOURCES)).cell()),
        ),
        (
            format!("memory: {per_stream:.1} KiB per stream (RSS and socket buffers), {} free", gib(free)),
            ok + (free as f64 / per_stream.max(1e-3)) as u64,
            format!("{} held of {}", gib(held), gib(f.memory.0)),
        ),
    ];
    ceilings.sort_by_key(|c| c.1);
    let lowest = ceilings[0].0.split(':').next().unwrap_or("");
    s.text(format!(
        "What bounds the count on this machine, where every process may have {} open files (the lowest: **{lowest}**):",
        FD_LIMIT.cell(),
    ));
    let mut t = Table::new(1, "limit | streams it allows | used here");
    for (limit, most, used) in &ceilings {
        t.row(&[limit, most, used]);
    }
    s.table(&t);
    let (c, events) = (&f.d.cpu, f.d.published.ok.max(1) as f64);
    let busy = f.redisse_cpu + f.nginx_cpu + c.client + c.redis;
    s.text(format!(
        "Clients and nginx leave the source port to connect() (`IP_BIND_ADDRESS_NO_PORT`): a port is taken per \
         (source, destination) pair only, and nginx uses several source addresses because the kernel's search for a \
         free port grows long when one pair holds most of the range. CPU bounds the latency, not the count: over the \
         broadcast redisse, nginx, the clients and Redis used {:.0} % of the machine's {} %, {:.0} µs per delivery \
         all told, about {:.2} s of the whole machine per event; deliveries took p50 {} ms, at most {} ms.",
        c.pct(busy),
        meta.cores * 100,
        busy * 1e6 / f.d.tally.received.max(1) as f64,
        busy / events / meta.cores as f64,
        f.d.latency.p50.cell(),
        f.d.latency.max.cell()
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_filled_in() {
        let upstreams = ["127.0.0.1:9001".parse().unwrap(), "127.0.0.1:9002".parse().unwrap()];
        let conf = render(include_str!("../../fleet/nginx.conf"), 8080, 8, &upstreams);
        // Every field filled in, outside the comments that name them too.
        for line in conf.lines().filter(|l| !l.trim_start().starts_with('#')) {
            assert!(!line.contains('@'), "{line}");
        }
        assert!(conf.contains("worker_processes 8;") && conf.contains("listen 127.0.0.1:8080 reuseport"));
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

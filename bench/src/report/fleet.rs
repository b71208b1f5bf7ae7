//! Section 6, fleet: several redisse servers behind one nginx, how many
//! streams they hold, a broadcast to all of them, and what bounds the count.

use std::fmt::Write as _;

use super::cell::{errors, mib, Cell};
use super::Measured;
use crate::results::FleetRecord;

/// The open files every process here may have (workers included).
const FD_LIMIT: u64 = 20_000;

pub(super) fn section(w: &mut String, m: &Measured) {
    // The details below are the biggest fleet's.
    let Some(r) = m.fleet.iter().copied().max_by_key(|r| r.streams) else {
        return;
    };
    let n = r.servers.len();
    let _ = writeln!(w, "## 6. Fleet: {n} servers behind nginx\n");
    let _ = writeln!(
        w,
        "{n} `redisse` servers (`target/release/redisse`, each on its own port, one Redis) behind one nginx with several workers \
         (`bench/fleet/nginx.conf`: an upstream of the {n}, round-robin, `proxy_buffering off`, `listen ... reuseport`, \
         `worker_connections {}`, `worker_rlimit_nofile 20000`, `proxy_bind` over {} source addresses). The streams, all on one \
         channel, are opened through nginx (`GET /?<channel>`, the redirect-mode URL) by subscriber processes from {} source \
         addresses, 100 at a time per process; then {} events are published {} ms apart to that channel, each delivery timed from \
         its publish.{}\n",
        r.worker_connections.cell(),
        r.upstream_sources.cell(),
        r.sources.cell(),
        r.events.cell(),
        r.interval_ms.cell(),
        if m.fleet.iter().any(|r| r.servers_full) {
            " The servers' capacity case fills them: as many streams as they take together, less one per nginx worker and \
             server (each worker round-robins on its own, so one server may get that many more than another)."
        } else {
            ""
        },
    );
    let _ = writeln!(w, "| streams | nginx workers | opened | failed | closed | all open in s | connect p50 / p99 ms | received / expected | missing | p50 ms | p95 ms | p99 ms | max ms | redisse CPU % | nginx CPU % | client CPU % | redis CPU % | other CPU % |");
    let _ = writeln!(
        w,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &m.fleet {
        let e = errors(&r.errors);
        let l = &r.latency;
        let _ = writeln!(
            w,
            "| {}{} | {} | {} | {}{} | {} | {} | {} / {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.streams.cell(),
            if r.servers_full { " (the servers' capacity)" } else { "" },
            r.nginx_workers.cell(),
            r.opened.cell(),
            r.failed.cell(),
            if e.is_empty() { String::new() } else { format!(" ({e})") },
            r.closed.cell(),
            r.open_s.cell(),
            r.connect_p50_ms.cell(),
            r.connect_p99_ms.cell(),
            r.received.cell(),
            r.expected.cell(),
            r.missing.cell(),
            l.p50_ms.cell(),
            l.p95_ms.cell(),
            l.p99_ms.cell(),
            l.max_ms.cell(),
            r.redisse_cpu_pct.cell(),
            r.nginx_cpu_pct.cell(),
            r.cpu.client_cpu_pct.cell(),
            r.cpu.redis_cpu_pct.cell(),
            r.cpu.other_cpu_pct.cell(),
        );
    }
    let _ = writeln!(w);
    processes(w, r);
    limits(w, r);
}

/// Who holds what once every stream is open: each server (from its own
/// stats), each nginx worker, the clients.
fn processes(w: &mut String, r: &FleetRecord) {
    let _ = writeln!(w, "The {} streams, once every one was open (RSS is VmRSS; a worker's streams are half its descriptors, a client and an upstream socket each):\n", r.opened.cell());
    let _ = writeln!(w, "| process | streams | RSS (MiB) | fds | events written in the broadcast |\n|---|---:|---:|---:|---:|");
    for s in &r.servers {
        let _ = writeln!(
            w,
            "| redisse :{} | {} | {} | {} | {} |",
            s.port,
            s.connected.cell(),
            mib(s.process.rss_kib),
            s.process.fds.cell(),
            s.events_sent.cell(),
        );
    }
    let server_rss: u64 = r.servers.iter().map(|s| s.process.rss_kib).sum();
    let events: Option<u64> = r.servers.iter().map(|s| s.events_sent).sum();
    let _ = writeln!(
        w,
        "| **redisse, all {}** | **{}** | **{}** | | **{}** |",
        r.servers.len(),
        r.connected_total.cell(),
        mib(server_rss),
        events.cell(),
    );
    for (i, p) in r.workers.iter().enumerate() {
        let _ = writeln!(
            w,
            "| nginx worker {} | ~{} | {} | {} | |",
            i + 1,
            (p.fds / 2).cell(),
            mib(p.rss_kib),
            p.fds.cell()
        );
    }
    let nginx_rss: u64 = r.workers.iter().map(|p| p.rss_kib).sum::<u64>() + r.nginx_master_rss_kib;
    let _ = writeln!(
        w,
        "| **nginx, {} workers and the master** | | **{}** | | |",
        r.workers.len(),
        mib(nginx_rss)
    );
    let _ = writeln!(
        w,
        "| subscriber processes ({}) | {} | {} | | |\n",
        r.client_processes.cell(),
        r.opened.cell(),
        mib(r.client_rss_kib)
    );
    let per = |kib: u64| kib as f64 / r.opened.max(1) as f64;
    let _ = writeln!(
        w,
        "Per stream: {:.1} KiB in the servers, {:.1} KiB in nginx, {:.1} KiB in the clients; and the kernel held {} TCP sockets \
         with {} MiB of buffers (/proc/net/sockstat), {:.2} KiB per stream.\n",
        per(server_rss),
        per(nginx_rss),
        per(r.client_rss_kib),
        r.tcp_sockets.cell(),
        mib(r.tcp_mem_kib),
        per(r.tcp_mem_kib),
    );
    let ports: Vec<String> = r.servers.iter().map(|s| s.port.to_string()).collect();
    let counts: Vec<String> = r.servers.iter().map(|s| s.connected.cell()).collect();
    let _ = writeln!(
        w,
        "Each server's stats (`GET /` with `Accept: application/json`) count only its own streams and events, so a fleet's figures are \
         the sum over its servers, asked one by one, not through nginx (which would hand the request to one server of the upstream): \
         `for port in {}; do curl -s -H 'Accept: application/json' 127.0.0.1:$port; done | jq -s 'map(.connected) | add'`. \
         Here {} = {}, for {} streams the clients held; the sum of `events` over the broadcast, {}, is what the clients received, {}.\n",
        ports.join(" "),
        counts.join(" + "),
        r.connected_total.cell(),
        r.opened.cell(),
        events.cell(),
        r.received.cell(),
    );
}

/// What bounds the fleet's size here: each limit as a ceiling on streams,
/// against what the run used, the lowest named.
fn limits(w: &mut String, r: &FleetRecord) {
    let n = r.servers.len() as u64;
    let max_streams = r.servers.iter().filter_map(|s| s.max_streams).min();
    let busiest = r.servers.iter().filter_map(|s| s.connected).max();
    let fullest_worker = r.workers.iter().map(|p| p.fds).max().unwrap_or(0);
    let workers = r.workers.len() as u64;
    let worker_streams = FD_LIMIT.min(r.worker_connections as u64) / 2;
    let ports = r.ephemeral_ports;
    let upstream_sources = r.upstream_sources.max(1) as u64;
    let held: u64 = r.servers.iter().map(|s| s.process.rss_kib).sum::<u64>()
        + r.workers.iter().map(|p| p.rss_kib).sum::<u64>()
        + r.nginx_master_rss_kib
        + r.client_rss_kib
        + r.tcp_mem_kib;
    let per_stream_kib = held as f64 / r.opened.max(1) as f64;
    // What memory would hold: the streams open now, and as many more as
    // the memory still available fits at the same cost each.
    let memory_streams = r.opened + (r.mem_available_kib as f64 / per_stream_kib.max(1e-3)) as u64;
    let mut ceilings = [
        (
            "the servers' descriptors",
            max_streams.map_or(u64::MAX, |m| m * n),
        ),
        ("nginx's descriptors", worker_streams * workers),
        ("the clients' ports", ports * r.sources as u64),
        ("nginx's ports to the servers", ports * upstream_sources * n),
        ("memory", memory_streams),
    ];
    ceilings.sort_by_key(|c| c.1);
    let _ = writeln!(
        w,
        "What bounds the count on this machine, where every process may have {} open files: the most streams each limit \
         allows, the lowest being **{}, {} streams**.\n",
        FD_LIMIT.cell(),
        ceilings[0].0,
        ceilings[0].1.cell()
    );
    let _ = writeln!(
        w,
        "- The servers' descriptors: each redisse takes at most {} streams (its `--max-streams` default: the open-file limit less a \
         reserve for Redis, stats and refusals), so {n} servers hold at most {}; the busiest held {} here. Another server \
         raises it by as much.",
        max_streams.cell(),
        max_streams.map(|m| m * n).cell(),
        busiest.cell(),
    );
    let _ = writeln!(
        w,
        "- nginx's descriptors: a stream takes two in a worker, so a worker holds at most {} and {workers} workers {}; the fullest \
         worker had {} descriptors of {}. Workers are cheap to add (the RSS above; each is an idle event loop between events).",
        worker_streams.cell(),
        (worker_streams * workers).cell(),
        fullest_worker.cell(),
        FD_LIMIT.cell(),
    );
    let _ = writeln!(
        w,
        "- Ephemeral ports: one (source, destination) pair of addresses and ports can have {} connections \
         (net.ipv4.ip_local_port_range). The clients had {} per source address towards nginx ({} addresses); nginx reaches the \
         busiest server with {} connections from {} addresses, about {} per pair. Both ask connect() for the port \
         (`IP_BIND_ADDRESS_NO_PORT`; nginx does so for `proxy_bind` without a port): a port taken by bind() is reserved on every \
         address, and connect() could not reuse it for another pair. nginx connects from several addresses because a pair that \
         holds most of the range makes each connect() search long for a free port: in a trial run at 50,000 streams with one \
         address (16,700 connections to each server from 127.0.0.1), the kernel's search (`__inet_check_established`, \
         `__inet_hash_connect`) took 72 % of the machine's CPU while the streams opened, and opening them took 18 to 22 s.",
        ports.cell(),
        r.opened.div_ceil(r.sources.max(1) as u64).cell(),
        r.sources.cell(),
        busiest.cell(),
        upstream_sources.cell(),
        busiest.map(|b| b.div_ceil(upstream_sources)).cell(),
    );
    let _ = writeln!(
        w,
        "- Memory: the processes' RSS and the kernel's socket buffers come to {:.2} GiB, {:.1} KiB per stream, with {:.1} GiB of \
         the machine's {:.1} GiB still available.",
        gib(held),
        per_stream_kib,
        gib(r.mem_available_kib),
        gib(r.mem_total_kib),
    );
    let c = &r.cpu;
    let busy = r.redisse_cpu_pct + r.nginx_cpu_pct + c.client_cpu_pct + c.redis_cpu_pct;
    // Core-seconds the whole path spent per event, over the window.
    let per_event_s = busy / 100.0 * c.window_s / r.published.max(1) as f64;
    let _ = writeln!(
        w,
        "- CPU bounds the latency, not the count. Over the broadcast redisse used {} %, nginx {} %, the clients {} % and Redis {} % \
         of a core, of the 2 cores' 200 %: {:.2} core-seconds per event (the streams' heartbeats included), {:.0} µs per delivery \
         for the servers' write, nginx's read and write, and the client's read together. An event is thus about {:.2} s of both cores' time; its deliveries took \
         p50 {} ms and at most {} ms. Events published closer together than that overlap, and queue behind each other.\n",
        r.redisse_cpu_pct.cell(),
        r.nginx_cpu_pct.cell(),
        c.client_cpu_pct.cell(),
        c.redis_cpu_pct.cell(),
        per_event_s,
        per_event_s * 1e6 / r.opened.max(1) as f64,
        per_event_s / 2.0,
        r.latency.p50_ms.cell(),
        r.latency.max_ms.cell(),
    );
}

fn gib(kib: u64) -> f64 {
    kib as f64 / 1024.0 / 1024.0
}

//! The Markdown report, the chart's data and gnuplot script, from the
//! scenarios' records.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::results::{
    AvalancheRecord, BroadcastRecord, Counts, FanoutRecord, IdleRecord, LatencySummary,
    Measurement, Meta, ProfileRecord, PublisherRecord, Record,
};
use crate::servers::Kind;

/// The measured records by scenario, each list in the order the cases ran.
/// Failed cases are left out: the report lists them from the failures.
struct Measured<'a> {
    idle: Vec<&'a IdleRecord>,
    broadcast: Vec<&'a BroadcastRecord>,
    fanout: Vec<&'a FanoutRecord>,
    avalanche: Vec<&'a AvalancheRecord>,
    publisher: Vec<&'a PublisherRecord>,
    profile: Vec<&'a ProfileRecord>,
}

impl<'a> Measured<'a> {
    fn sort(records: &'a [Record]) -> Measured<'a> {
        let mut m = Measured {
            idle: Vec::new(),
            broadcast: Vec::new(),
            fanout: Vec::new(),
            avalanche: Vec::new(),
            publisher: Vec::new(),
            profile: Vec::new(),
        };
        for record in records {
            match record {
                Record::Measured(Measurement::Idle(r)) => m.idle.push(r),
                Record::Measured(Measurement::Broadcast(r)) => m.broadcast.push(r),
                Record::Measured(Measurement::Fanout(r)) => m.fanout.push(r),
                Record::Measured(Measurement::Avalanche(r)) => m.avalanche.push(r),
                Record::Measured(Measurement::Publisher(r)) => m.publisher.push(r),
                Record::Measured(Measurement::Profile(r)) => m.profile.push(r),
                Record::Failed(_) => {}
            }
        }
        m
    }

    fn idle_of(&self, server: Kind, streams: usize) -> Option<&'a IdleRecord> {
        self.idle
            .iter()
            .copied()
            .find(|r| r.server == server && r.streams == streams)
    }

    fn avalanche_of(&self, server: Kind) -> Option<&'a AvalancheRecord> {
        self.avalanche.iter().copied().find(|r| r.server == server)
    }

    /// The highest offered fan-out rate `server` sustained.
    fn best_fanout(&self, server: Kind) -> Option<u64> {
        self.fanout
            .iter()
            .filter(|r| r.server == server && r.sustained)
            .map(|r| r.offered_per_s)
            .max()
    }
}

/// How a figure reads in a table: whole numbers with thousands separators,
/// fractions to two or three significant digits, `-` for none.
trait Cell {
    fn cell(&self) -> String;
}

impl Cell for u64 {
    fn cell(&self) -> String {
        group(*self as i64)
    }
}

impl Cell for usize {
    fn cell(&self) -> String {
        group(*self as i64)
    }
}

impl Cell for f64 {
    fn cell(&self) -> String {
        let x = *self;
        if !x.is_finite() {
            // What JSON cannot hold: results.json would have it as null.
            "-".into()
        } else if x.fract() != 0.0 {
            if x.abs() >= 100.0 {
                format!("{x:.0}")
            } else if x.abs() >= 10.0 {
                format!("{x:.1}")
            } else {
                format!("{x:.2}")
            }
        } else {
            group(x as i64)
        }
    }
}

impl Cell for bool {
    fn cell(&self) -> String {
        if *self { "yes" } else { "no" }.into()
    }
}

impl Cell for Kind {
    fn cell(&self) -> String {
        self.name().into()
    }
}

impl<T: Cell> Cell for Option<T> {
    fn cell(&self) -> String {
        self.as_ref().map_or("-".into(), Cell::cell)
    }
}

fn group(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Error kinds and their counts, e.g. `timeout: 3, refused: 1`.
fn errors(counts: &Counts) -> String {
    counts
        .iter()
        .map(|(kind, n)| format!("{kind}: {}", n.cell()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

struct Target {
    what: &'static str,
    figure: String,
    met: Option<bool>,
}

fn targets(m: &Measured) -> Vec<Target> {
    let mut out = Vec::new();
    // RSS per idle stream, at the largest count measured.
    let largest = m.idle.iter().map(|r| r.streams).max();
    let idle = |server: Kind| largest.and_then(|n| m.idle_of(server, n));
    match (idle(Kind::Redisse), idle(Kind::Nchan)) {
        (Some(ours), Some(theirs)) => {
            let (a, b) = (ours.kib_per_stream, theirs.kib_per_stream);
            out.push(Target {
                what: "RSS per idle stream at most nchan's (aim 6 KiB)",
                figure: format!(
                    "{a:.2} KiB vs nchan {b:.2} KiB at {} streams: ratio {} ; {} 6 KiB",
                    largest.unwrap_or(0).cell(),
                    ratio(a, b),
                    if a <= 6.0 { "within" } else { "above" }
                ),
                met: Some(a <= b),
            });
        }
        _ => out.push(Target {
            what: "RSS per idle stream at most nchan's (aim 6 KiB)",
            figure: "not measured".into(),
            met: None,
        }),
    }
    match m.idle_of(Kind::Redisse, 19_000) {
        Some(r) => {
            let ok = r.failed == 0 && r.closed == 0 && r.opened == 19_000 && r.server_alive;
            out.push(Target {
                what: "19k streams in one server process, no failure",
                figure: format!(
                    "{} opened, {} failed, {} closed, server alive: {}",
                    r.opened.cell(),
                    r.failed.cell(),
                    r.closed.cell(),
                    r.server_alive.cell()
                ),
                met: Some(ok),
            });
        }
        None => out.push(Target {
            what: "19k streams in one server process, no failure",
            figure: "not measured (quick run)".into(),
            met: None,
        }),
    }
    let bc = |server: Kind| {
        m.broadcast
            .iter()
            .find(|r| r.server == server && r.subscribers == 10_000 && r.interval_ms == 250)
    };
    match (bc(Kind::Redisse), bc(Kind::NchanRedis)) {
        (Some(ours), Some(theirs)) => {
            let (a, b) = (ours.latency.p99_ms, theirs.latency.p99_ms);
            out.push(Target {
                what: "broadcast p99, 10k subscribers (250 ms apart), at most 1/3 of nchan+redis",
                figure: format!(
                    "{a:.2} ms vs nchan+redis {b:.2} ms: ratio {} (missing: {})",
                    ratio(a, b),
                    ours.missing.cell()
                ),
                met: Some(a * 3.0 <= b && ours.missing == 0),
            });
        }
        _ => out.push(Target {
            what: "broadcast p99, 10k subscribers (250 ms apart), at most 1/3 of nchan+redis",
            figure: "not measured (quick run)".into(),
            met: None,
        }),
    }
    let fan = m
        .fanout
        .iter()
        .find(|r| r.server == Kind::Redisse && r.offered_per_s == 3000);
    let best = m.best_fanout(Kind::Redisse);
    match fan {
        Some(r) => out.push(Target {
            what: "fan-out: 3,000 publishes/s to 1k subscribers on 10 channels, no loss, p99 < 100 ms",
            figure: format!(
                "at 3,000/s: {} publishes/s, {} lost, p99 {} ms; highest sustained step {}",
                r.publishes_per_s.cell(),
                r.lost.cell(),
                r.latency.p99_ms.cell(),
                best.map_or("none".into(), |b| format!("{}/s", b.cell()))
            ),
            met: Some(r.sustained),
        }),
        None => out.push(Target {
            what: "fan-out: 3,000 publishes/s to 1k subscribers on 10 channels, no loss, p99 < 100 ms",
            figure: match best {
                Some(b) => format!("the 3,000/s step was not run; highest sustained step {}/s", b.cell()),
                None => "not measured".into(),
            },
            met: None,
        }),
    }
    match m.publisher.first() {
        Some(r) => out.push(Target {
            what: "publisher at least 3x the 0.4 way, single-threaded",
            figure: format!(
                "{}/s vs {}/s: ratio {}",
                r.new_1.cell(),
                r.old_1.cell(),
                r.ratio_1.cell()
            ),
            met: Some(r.ratio_1 >= 3.0),
        }),
        None => out.push(Target {
            what: "publisher at least 3x the 0.4 way, single-threaded",
            figure: "not measured".into(),
            met: None,
        }),
    }
    out
}

pub fn markdown(records: &[Record], meta: &Meta, failures: &[String]) -> String {
    let m = Measured::sort(records);
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Benchmarks: redisse vs nchan\n");
    if meta.quick {
        let _ = writeln!(w, "**Quick run** (`bin/bench --quick`): small counts to check that the harness works; the figures say little about performance.\n");
    }
    let _ = writeln!(
        w,
        "Written by `bin/bench` on {} at commit {} ({:.0} s).\n",
        meta.date, meta.commit, meta.duration_s
    );
    let _ = writeln!(w, "## Setup\n");
    let _ = writeln!(w, "- Machine: {}.", meta.machine);
    let _ = writeln!(w, "- {}.", meta.versions);
    let _ = writeln!(
        w,
        "- Servers, each started fresh for each scenario by the harness on 127.0.0.1: **redisse** (`target/release/redisse`), \
         **nchan** (nginx with one worker, `nchan_subscriber eventsource`, in-memory store) and \
         **nchan+redis** (the same with `nchan_use_redis on`, see `bench/nchan/nginx.conf`). One redis-server serves redisse and nchan+redis. \
         Heartbeats (redisse `--heartbeat`, nchan `nchan_eventsource_ping_interval`): every {hb} s in the idle scenario to make their cost visible, \
         every {} s (redisse's default) in the others.",
        crate::servers::DEFAULT_HEARTBEAT,
        hb = meta.heartbeat
    );
    let _ = writeln!(
        w,
        "- Client: `redisse-bench` (the `bench/` crate): raw HTTP/1.1 event streams on tokio, at most 5,000 per subscriber process, \
         bound to source addresses {}. redisse's events are published in Redis with the publish script of `Redisse.publish` \
         (INCR, PUBLISH, ZADD, ZREMRANGEBYRANK); nchan's by HTTP POST to its publisher location, over 32 keep-alive connections.",
        meta.sources
    );
    let _ = writeln!(
        w,
        "- Latency: each event's data carries its send time (µs since the epoch, stamped just before the publish request), \
         so it covers the whole path publisher → (Redis) → server → client.\n\
         - CPU: percent of one core over the measured window (2 cores: 200 % is everything). *client* is the load generator \
         itself (coordinator and subscriber processes); when server + client + redis come near 200 %, the machine is saturated \
         and latency figures include waiting for a core. *other* is the rest of the machine (other processes, interrupts): \
         well above 0 means something else ran during the measurement and disturbed it. RSS is VmRSS of the process holding the connections (nginx's worker for nchan).\n"
    );

    let _ = writeln!(w, "## Targets\n");
    let _ = writeln!(w, "| target | figure | met? |\n|---|---|---|");
    for t in targets(&m) {
        let met = match t.met {
            Some(true) => "**met**",
            Some(false) => "**missed**",
            None => "-",
        };
        let _ = writeln!(w, "| {} | {} | {met} |", t.what, t.figure);
    }
    let _ = writeln!(w);

    // 1. idle
    let idle = &m.idle;
    if !idle.is_empty() {
        let _ = writeln!(w, "## 1. Idle capacity\n");
        let _ = writeln!(
            w,
            "Streams spread over {} channels, opened 100 at a time per subscriber process; then a {:.0} s window with heartbeats every {} s.\n",
            idle[0].channels.cell(),
            idle[0].cpu.window_s,
            meta.heartbeat
        );
        let _ = writeln!(w, "| server | streams | opened | failed | closed | RSS before (MiB) | RSS with (MiB) | KiB / stream | fds | server CPU % | client CPU % | redis CPU % | other CPU % | heartbeat bytes/s received |");
        let _ = writeln!(
            w,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in idle {
            let e = errors(&r.errors);
            let _ = writeln!(
                w,
                "| {} | {} | {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.server.cell(),
                r.streams.cell(),
                r.opened.cell(),
                r.failed.cell(),
                if e.is_empty() {
                    String::new()
                } else {
                    format!(" ({e})")
                },
                r.closed.cell(),
                mib(r.rss_before_kib),
                mib(r.rss_with_kib),
                r.kib_per_stream.cell(),
                r.fds_with.cell(),
                r.cpu.server_cpu_pct.cell(),
                r.cpu.client_cpu_pct.cell(),
                r.cpu.redis_cpu_pct.cell(),
                r.cpu.other_cpu_pct.cell(),
                r.heartbeat_bytes_per_s.cell(),
            );
        }
        let counts: Vec<usize> = {
            let mut c: Vec<usize> = idle.iter().map(|r| r.streams).collect();
            c.dedup();
            c
        };
        let _ = writeln!(w, "\nRatios (redisse / other; lower is better):\n");
        let _ = writeln!(w, "| streams | KiB per stream / nchan | / nchan+redis | server CPU / nchan | / nchan+redis |\n|---:|---:|---:|---:|---:|");
        for n in counts {
            let kib = |s: Kind| m.idle_of(s, n).map_or(f64::NAN, |r| r.kib_per_stream);
            let cpu = |s: Kind| m.idle_of(s, n).map_or(f64::NAN, |r| r.cpu.server_cpu_pct);
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} |",
                n.cell(),
                ratio(kib(Kind::Redisse), kib(Kind::Nchan)),
                ratio(kib(Kind::Redisse), kib(Kind::NchanRedis)),
                ratio(cpu(Kind::Redisse), cpu(Kind::Nchan)),
                ratio(cpu(Kind::Redisse), cpu(Kind::NchanRedis)),
            );
        }
        let _ = writeln!(w);
    }

    // 2. broadcast
    let bc = &m.broadcast;
    if !bc.is_empty() {
        let _ = writeln!(w, "## 2. Broadcast\n");
        let _ = writeln!(
            w,
            "All subscribers on one channel; events published at a fixed pace.\n"
        );
        let _ = writeln!(w, "| case | server | streams opened | received / expected | missing | p50 ms | p95 ms | p99 ms | max ms | server CPU % | client CPU % | redis CPU % | other CPU % |");
        let _ = writeln!(
            w,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in bc {
            let l = &r.latency;
            let e = errors(&r.errors);
            let _ = writeln!(
                w,
                "| {} | {} | {}{} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.case,
                r.server.cell(),
                r.opened.cell(),
                if e.is_empty() {
                    String::new()
                } else {
                    format!(" ({} failed: {e})", r.failed.cell())
                },
                r.received.cell(),
                r.expected.cell(),
                r.missing.cell(),
                l.p50_ms.cell(),
                l.p95_ms.cell(),
                l.p99_ms.cell(),
                l.max_ms.cell(),
                r.cpu.server_cpu_pct.cell(),
                r.cpu.client_cpu_pct.cell(),
                r.cpu.redis_cpu_pct.cell(),
                r.cpu.other_cpu_pct.cell(),
            );
        }
        let _ = writeln!(w, "\nRatios of p99 (redisse / other; lower is better):\n");
        let _ = writeln!(w, "| case | / nchan | / nchan+redis |\n|---|---:|---:|");
        let mut cases: Vec<&str> = bc.iter().map(|r| r.case.as_str()).collect();
        cases.dedup();
        for c in cases {
            let p99 = |s: Kind| {
                bc.iter()
                    .find(|r| r.server == s && r.case == c)
                    .map_or(f64::NAN, |r| r.latency.p99_ms)
            };
            let _ = writeln!(
                w,
                "| {c} | {} | {} |",
                ratio(p99(Kind::Redisse), p99(Kind::Nchan)),
                ratio(p99(Kind::Redisse), p99(Kind::NchanRedis))
            );
        }
        let _ = writeln!(w);
    }

    // 3. fan-out
    let fan = &m.fanout;
    if !fan.is_empty() {
        let _ = writeln!(w, "## 3. Fan-out throughput\n");
        let _ = writeln!(
            w,
            "{} streams over {} channels; publishes spread evenly over the channels at each offered rate, up to the first step that loses \
             events, passes 100 ms p99, or cannot publish at 80 % of the offered rate. *sustained*: no loss, p99 < 100 ms and at least 95 % \
             of the offered rate published.\n",
            fan[0].streams.cell(),
            fan[0].channels.cell()
        );
        let _ = writeln!(w, "| server | offered /s | publishes /s | deliveries /s | lost | closed | p50 ms | p99 ms | max ms | server CPU % | client CPU % | redis CPU % | other CPU % | sustained |");
        let _ = writeln!(
            w,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for r in fan {
            let l = &r.latency;
            let failed = if r.publish_failed != 0 {
                format!(
                    " ({} failed: {})",
                    r.publish_failed.cell(),
                    errors(&r.publish_errors)
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                w,
                "| {} | {} | {}{failed} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.server.cell(),
                r.offered_per_s.cell(),
                r.publishes_per_s.cell(),
                r.deliveries_per_s.cell(),
                r.lost.cell(),
                if r.closed > 0 {
                    format!("{} ({})", r.closed.cell(), errors(&r.close_reasons))
                } else {
                    r.closed.cell()
                },
                l.p50_ms.cell(),
                l.p99_ms.cell(),
                l.max_ms.cell(),
                r.cpu.server_cpu_pct.cell(),
                r.cpu.client_cpu_pct.cell(),
                r.cpu.redis_cpu_pct.cell(),
                r.cpu.other_cpu_pct.cell(),
                r.sustained.cell(),
            );
        }
        let _ = writeln!(w, "\nHighest sustained rate (publishes/s):\n");
        let _ = writeln!(
            w,
            "| server | highest sustained | redisse / this |\n|---|---:|---:|"
        );
        let ours = m.best_fanout(Kind::Redisse).map_or(f64::NAN, |b| b as f64);
        for k in Kind::ALL {
            let b = m.best_fanout(k);
            let _ = writeln!(
                w,
                "| {} | {} | {} |",
                k.name(),
                b.map_or("none".into(), |b| b.cell()),
                ratio(ours, b.map_or(f64::NAN, |b| b as f64))
            );
        }
        let _ = writeln!(w);
    }

    // 4. avalanche
    let ava = &m.avalanche;
    if !ava.is_empty() {
        let _ = writeln!(w, "## 4. Connection avalanche\n");
        let _ = writeln!(w, "Every stream opened at once (over {} channels); connect time runs from `connect()` until the response head is read.\n", 1000);
        let _ = writeln!(w, "| server | streams | opened | failed | p50 ms | p95 ms | p99 ms | max ms | all answered in s | listen backlog | SYNs dropped (ListenDrops) | server CPU % | client CPU % | other CPU % |");
        let _ = writeln!(
            w,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in ava {
            let e = errors(&r.errors);
            let _ = writeln!(
                w,
                "| {} | {} | {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.server.cell(),
                r.streams.cell(),
                r.opened.cell(),
                r.failed.cell(),
                if e.is_empty() {
                    String::new()
                } else {
                    format!(" ({e})")
                },
                r.connect_p50_ms.cell(),
                r.connect_p95_ms.cell(),
                r.connect_p99_ms.cell(),
                r.connect_max_ms.cell(),
                r.all_opened_s.cell(),
                r.listen_backlog.cell(),
                r.listen_drops.cell(),
                r.cpu.server_cpu_pct.cell(),
                r.cpu.client_cpu_pct.cell(),
                r.cpu.other_cpu_pct.cell(),
            );
        }
        let p95 = |s: Kind| m.avalanche_of(s).map_or(f64::NAN, |r| r.connect_p95_ms);
        let _ = writeln!(
            w,
            "\nRatio of connect p95 (redisse / other): nchan {}, nchan+redis {}.\n",
            ratio(p95(Kind::Redisse), p95(Kind::Nchan)),
            ratio(p95(Kind::Redisse), p95(Kind::NchanRedis))
        );
    }

    // 5. publisher
    if let Some(r) = m.publisher.first() {
        let _ = writeln!(w, "## 5. Publisher (Ruby)\n");
        let _ = writeln!(
            w,
            "`ruby -I lib bench/publisher.rb` for {} s per mode: `Redisse.publish` (one script call, the GVL released while waiting) against \
             the 0.4 way (INCR, PUBLISH, ZADD, ZREMRANGEBYRANK through one shared `redis` gem client {}, as 0.4 did).\n",
            r.seconds.cell(),
            r.redis_rb.as_ref().map(|v| format!("(redis-rb {v})")).unwrap_or_default()
        );
        let _ = writeln!(
            w,
            "| threads | Redisse.publish /s | 0.4 way /s | ratio |\n|---:|---:|---:|---:|"
        );
        for (threads, new, old, ratio) in [
            (1, r.new_1, r.old_1, r.ratio_1),
            (8, r.new_8, r.old_8, r.ratio_8),
        ] {
            let _ = writeln!(
                w,
                "| {threads} | {} | {} | {} |",
                new.cell(),
                old.cell(),
                ratio.cell()
            );
        }
        let _ = writeln!(w);
    }

    if let Some(p) = m.profile.first() {
        let _ = writeln!(w, "## Profile of redisse under fan-out\n");
        let _ = writeln!(
            w,
            "`perf record -e cpu-clock -g` on the server for one step at {}/s ({} deliveries, p99 {} ms while profiled); self time by symbol:\n",
            p.rate.cell(),
            p.received.cell(),
            p.latency.p99_ms.cell()
        );
        let _ = writeln!(w, "```");
        for line in &p.top {
            let _ = writeln!(w, "{line}");
        }
        let _ = writeln!(w, "```\n");
    }

    let notes = observations(&m);
    if !notes.is_empty() {
        let _ = writeln!(w, "## Observations\n");
        for n in notes {
            let _ = writeln!(w, "- {n}");
        }
        let _ = writeln!(w);
    }

    if !failures.is_empty() {
        let _ = writeln!(w, "## Scenarios that did not run\n");
        for f in failures {
            let _ = writeln!(w, "- {f}");
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "## Chart\n\n![Latency percentiles by scenario and server; RSS per idle stream by server](report.png)");
    md
}

/// Remarks drawn from the figures.
fn observations(m: &Measured) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(ours), Some(theirs)) = (m.avalanche_of(Kind::Redisse), m.avalanche_of(Kind::Nchan))
    {
        let backlog = |r: &AvalancheRecord| r.listen_backlog.map_or(f64::NAN, |b| b as f64);
        if backlog(ours) < backlog(theirs) && ours.listen_drops > theirs.listen_drops {
            out.push(format!(
                "Avalanche: redisse listens with an accept queue of {} (nginx: {}). With {} connections arriving at once the kernel dropped {} SYNs \
                 (nginx: {}); clients retry a dropped SYN after 1 s, then 3 s, 7 s..., which is why redisse's connect p50 is {} ms and p95 {} ms \
                 while its CPU stays low ({} %). A larger listen backlog (e.g. 1024 or more, the kernel caps it at net.core.somaxconn) would remove most of it.",
                ours.listen_backlog.cell(), theirs.listen_backlog.cell(), ours.streams.cell(), ours.listen_drops.cell(),
                theirs.listen_drops.cell(), ours.connect_p50_ms.cell(), ours.connect_p95_ms.cell(), ours.cpu.server_cpu_pct.cell()
            ));
        }
    }
    for (i, r) in m.fanout.iter().enumerate() {
        // Only each server's last step: where it gave up.
        let last = !m.fanout[i + 1..].iter().any(|x| x.server == r.server);
        if last {
            let c = &r.cpu;
            let total = c.server_cpu_pct + c.client_cpu_pct + c.redis_cpu_pct;
            if total > 170.0 {
                out.push(format!(
                    "Fan-out, {} at {}/s (its last step): server {} % + client {} % + redis {} % of a core = {:.0} % of the 2 cores: the machine is saturated, \
                     so this step measures the shared machine as much as the server.",
                    r.server.cell(), r.offered_per_s.cell(), c.server_cpu_pct.cell(), c.client_cpu_pct.cell(), c.redis_cpu_pct.cell(), total
                ));
            }
        }
    }
    let bc = |s: Kind| {
        m.broadcast
            .iter()
            .find(|r| r.server == s && r.subscribers == 10_000)
    };
    if let (Some(ours), Some(theirs)) = (bc(Kind::Redisse), bc(Kind::NchanRedis)) {
        out.push(format!(
            "Broadcast to 10k: each event is 10,000 socket writes. redisse's median delivery is {} ms and its p99 {} ms (nchan+redis: {} / {} ms): \
             the last subscribers of a burst most likely wait for the writes to all the others (the server and the client share 2 cores), so the p99 is close to the time one event takes to reach every stream.",
            ours.latency.p50_ms.cell(), ours.latency.p99_ms.cell(), theirs.latency.p50_ms.cell(), theirs.latency.p99_ms.cell()
        ));
    }
    if !m.fanout.is_empty() || !m.broadcast.is_empty() {
        out.push(
            "nchan writes events to its subscriber sockets without TCP_NODELAY (strace of the worker: only the publisher's keep-alive \
             connection gets it), so when two events go to a stream within one round trip the second can wait for the client's delayed \
             ACK (up to 40 ms). Its tail latencies vary from run to run for that reason; redisse sets TCP_NODELAY on every connection."
                .to_string(),
        );
    }
    if let Some(r) = m.publisher.first() {
        out.push(format!(
            "Publisher: single-threaded publishing is bound by round trips to Redis ({:.0} µs per `Redisse.publish`, {:.0} µs per 0.4 publish of four \
             commands), so the absolute rates move with the machine's wake-up latency from run to run; the ratio is the stable figure. \
             With 8 threads `Redisse.publish` scales ({}/s) because the extension releases the GVL, while the 0.4 way stays serialized on its one client.",
            1e6 / r.new_1 as f64, 1e6 / r.old_1 as f64, r.new_8.cell()
        ));
    }
    out
}

/// Writes the chart's data and script into `dir` and runs gnuplot there.
pub fn chart(records: &[Record], dir: &Path) -> Result<(), String> {
    let m = Measured::sort(records);
    let mut latency = String::from("label p50 p95 p99\n");
    // One bar group: the percentiles of a record, floored for the log scale.
    let mut bars = |label: String, l: &LatencySummary| {
        let floor = |x: f64| if x.is_finite() { x.max(0.01) } else { 0.01 };
        let [p50, p95, p99] = [l.p50_ms, l.p95_ms, l.p99_ms].map(floor);
        let _ = writeln!(latency, "\"{label}\" {p50} {p95} {p99}");
    };
    for r in &m.broadcast {
        let label = format!(
            "bc {}/{}ms {}",
            crate::scenarios::thousands(r.subscribers),
            r.interval_ms.cell(),
            r.server.cell()
        );
        bars(label, &r.latency);
    }
    let mut rates: Vec<u64> = m.fanout.iter().map(|r| r.offered_per_s).collect();
    rates.sort_unstable();
    rates.dedup();
    // The first step (every server ran it) and the target rate.
    let mut chosen: Vec<u64> = rates.iter().copied().take(1).collect();
    if rates.contains(&3000) {
        chosen.push(3000);
    } else if let Some(r) = rates.get(1) {
        chosen.push(*r);
    }
    for rate in chosen {
        for r in m.fanout.iter().filter(|r| r.offered_per_s == rate) {
            bars(format!("fan {}/s {}", rate, r.server.cell()), &r.latency);
        }
    }
    let mut counts: Vec<usize> = m.idle.iter().map(|r| r.streams).collect();
    counts.sort_unstable();
    counts.dedup();
    let mut rss = String::from("server");
    for n in &counts {
        let _ = write!(rss, " \"{} streams\"", n.cell());
    }
    rss.push('\n');
    for k in Kind::ALL {
        let _ = write!(rss, "\"{}\"", k.name());
        for n in &counts {
            let v = m.idle_of(k, *n).map_or(f64::NAN, |r| r.kib_per_stream);
            let _ = write!(
                rss,
                " {}",
                if v.is_finite() {
                    format!("{v:.2}")
                } else {
                    "NaN".into()
                }
            );
        }
        rss.push('\n');
    }
    fs::write(dir.join("latency.dat"), &latency).map_err(|e| e.to_string())?;
    fs::write(dir.join("rss.dat"), &rss).map_err(|e| e.to_string())?;
    let mut rss_plot = String::from("plot 'rss.dat' using 2:xtic(1) title columnheader(2)");
    for i in 1..counts.len() {
        let _ = write!(
            rss_plot,
            ", '' using {} title columnheader({})",
            i + 2,
            i + 2
        );
    }
    if counts.is_empty() {
        rss_plot = "plot 0 notitle".into();
    }
    let latency_plot = if latency.lines().count() > 1 {
        "plot 'latency.dat' using 2:xtic(1) title 'p50', '' using 3 title 'p95', '' using 4 title 'p99'"
    } else {
        "plot 1 notitle"
    };
    let script = format!(
        "set terminal pngcairo size 1500,780 font ',10' noenhanced\n\
         set bmargin 10\n\
         set output 'report.png'\n\
         set multiplot layout 1,2 title 'redisse vs nchan (bin/bench)'\n\
         set style data histograms\n\
         set style histogram clustered gap 1\n\
         set style fill solid 0.85 border -1\n\
         set boxwidth 0.9\n\
         set grid ytics\n\
         set key top left\n\
         set xtics rotate by -45 scale 0 font ',9'\n\
         set title 'Delivery latency by scenario and server (ms, log scale)'\n\
         set logscale y\n\
         set ylabel 'ms'\n\
         {latency_plot}\n\
         unset logscale y\n\
         set yrange [0:*]\n\
         set title 'Server RSS per idle stream (KiB, lower is better)'\n\
         set ylabel 'KiB per stream'\n\
         set xtics rotate by 0 font ',10'\n\
         {rss_plot}\n\
         unset multiplot\n"
    );
    fs::write(dir.join("chart.gp"), script).map_err(|e| e.to_string())?;
    let status = Command::new("gnuplot")
        .arg("chart.gp")
        .current_dir(dir)
        .status()
        .map_err(|e| format!("cannot run gnuplot: {e}"))?;
    if !status.success() {
        return Err(format!("gnuplot failed ({status})"));
    }
    Ok(())
}

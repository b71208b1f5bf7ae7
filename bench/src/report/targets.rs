//! The targets table: the figures the project aims at, met or missed.

use std::fmt::Write as _;

use super::cell::{ratio, Cell};
use super::Measured;
use crate::servers::Kind;

pub(super) fn section(w: &mut String, m: &Measured) {
    let _ = writeln!(w, "## Targets\n");
    let _ = writeln!(w, "| target | figure | met? |\n|---|---|---|");
    for t in targets(m) {
        let met = match t.met {
            Some(true) => "**met**",
            Some(false) => "**missed**",
            None => "-",
        };
        let _ = writeln!(w, "| {} | {} | {met} |", t.what, t.figure);
    }
    let _ = writeln!(w);
}

/// One row of the table.
struct Target {
    what: &'static str,
    figure: String,
    /// None when the run did not measure it (a quick run, a scenario left out).
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
    const FLEET: &str =
        "fleet: 50,000 streams through nginx to 3 servers, 0 failed, every broadcast event delivered";
    match m.fleet.first() {
        Some(r) => out.push(Target {
            what: FLEET,
            figure: format!(
                "{} of {} opened through {} servers, {} failed, {} closed; {} of {} deliveries, p50 / p99 {} / {} ms",
                r.opened.cell(),
                r.streams.cell(),
                r.servers.len(),
                r.failed.cell(),
                r.closed.cell(),
                r.received.cell(),
                r.expected.cell(),
                r.latency.p50_ms.cell(),
                r.latency.p99_ms.cell()
            ),
            // A smaller fleet (a quick run, --fleet-streams) says nothing of the aim.
            met: (r.streams >= 50_000).then_some(
                r.servers.len() == 3
                    && r.opened == r.streams as u64
                    && r.failed == 0
                    && r.closed == 0
                    && r.missing == 0
                    && r.publish_failed == 0,
            ),
        }),
        None => out.push(Target {
            what: FLEET,
            figure: "not measured".into(),
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

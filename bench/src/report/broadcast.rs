//! Section 2, broadcast: delivery latency to subscribers all on one channel.

use std::fmt::Write as _;

use super::cell::{errors, ratio, Cell};
use super::Measured;
use crate::servers::Kind;

pub(super) fn section(w: &mut String, m: &Measured) {
    let bc = &m.broadcast;
    if bc.is_empty() {
        return;
    }
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

//! Section 1, idle capacity: the memory and CPU a server needs to hold
//! many quiet streams, heartbeats aside.

use std::fmt::Write as _;

use super::cell::{errors, mib, ratio, Cell};
use super::Measured;
use crate::results::Meta;
use crate::servers::Kind;

pub(super) fn section(w: &mut String, m: &Measured, meta: &Meta) {
    let idle = &m.idle;
    if idle.is_empty() {
        return;
    }
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

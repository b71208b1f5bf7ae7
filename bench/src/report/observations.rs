//! Remarks drawn from the figures, where they explain a surprising one.

use std::fmt::Write as _;

use super::cell::Cell;
use super::Measured;
use crate::results::AvalancheRecord;
use crate::servers::Kind;

pub(super) fn section(w: &mut String, m: &Measured) {
    let notes = observations(m);
    if !notes.is_empty() {
        let _ = writeln!(w, "## Observations\n");
        for n in notes {
            let _ = writeln!(w, "- {n}");
        }
        let _ = writeln!(w);
    }
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

//! Section 3, fan-out throughput: offered rates in steps, up to the first
//! a server could not sustain.

use std::fmt::Write as _;

use super::cell::{errors, ratio, Cell};
use super::Measured;
use crate::servers::Kind;

pub(super) fn section(w: &mut String, m: &Measured) {
    let fan = &m.fanout;
    if fan.is_empty() {
        return;
    }
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

//! Section 4, connection avalanche: every stream opened at once, then closed at once.

use std::fmt::Write as _;

use super::cell::{errors, ratio, Cell};
use super::Measured;
use crate::results::AvalancheRecord;
use crate::servers::Kind;

pub(super) fn section(w: &mut String, m: &Measured) {
    let ava = &m.avalanche;
    if ava.is_empty() {
        return;
    }
    let _ = writeln!(w, "## 4. Connection avalanche\n");
    let _ = writeln!(w, "Every stream opened at once (over {} channels); connect time runs from `connect()` until the response head is read. Then every client quits at once: \"all closed\" runs until the server holds no more descriptors than before, and \"next stream\" is the time to open one more stream right after.\n", 1000);
    let _ = writeln!(w, "| server | streams | opened | failed | p50 ms | p95 ms | p99 ms | max ms | all answered in s | all closed in s | next stream ms | listen backlog | SYNs dropped (ListenDrops) | server CPU % | client CPU % | other CPU % |");
    let _ = writeln!(
        w,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in ava {
        let e = errors(&r.errors);
        let _ = writeln!(
            w,
            "| {} | {} | {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
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
            r.all_closed_s.cell(),
            r.next_stream_ms.cell(),
            r.listen_backlog.cell(),
            r.listen_drops.cell(),
            r.cpu.server_cpu_pct.cell(),
            r.cpu.client_cpu_pct.cell(),
            r.cpu.other_cpu_pct.cell(),
        );
    }
    // redisse's figure over each other server's, for one column.
    let ratios = |figure: fn(&AvalancheRecord) -> Option<f64>| {
        let of = |s: Kind| m.avalanche_of(s).and_then(figure).unwrap_or(f64::NAN);
        let ours = of(Kind::Redisse);
        (
            ratio(ours, of(Kind::Nchan)),
            ratio(ours, of(Kind::NchanRedis)),
        )
    };
    let (p95_nchan, p95_redis) = ratios(|r| Some(r.connect_p95_ms));
    let (closed_nchan, closed_redis) = ratios(|r| r.all_closed_s);
    let _ = writeln!(
        w,
        "\nRatio of connect p95 (redisse / other): nchan {p95_nchan}, nchan+redis {p95_redis}. Ratio of all closed: nchan {closed_nchan}, nchan+redis {closed_redis}.\n",
    );
}

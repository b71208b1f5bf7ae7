//! Where redisse spends its time under fan-out, when the run was profiled.

use std::fmt::Write as _;

use super::cell::Cell;
use super::Measured;

pub(super) fn section(w: &mut String, m: &Measured) {
    let Some(p) = m.profile.first() else {
        return;
    };
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

//! Broadcast: events at a fixed pace to subscribers all on one channel.

use std::time::Duration;

use super::{Bench, Delivered, Results, CPU_COLUMNS};
use crate::publish::every;
use crate::report::{ratios, with_counts, Cell, Section, Table};
use crate::servers::Kind;
use crate::subscribe::Opened;

pub struct Broadcast {
    pub server: Kind,
    /// The case in words, e.g. `10k subscribers, 50 events 250 ms apart`.
    pub case: String,
    pub subscribers: usize,
    pub opened: Opened,
    pub d: Delivered,
}

impl Bench {
    pub(super) async fn broadcast(&mut self) {
        for (n, events, interval) in self.sizes.broadcast.clone() {
            for kind in self.servers.clone() {
                let run = async |b: &mut Self| b.broadcast_one(kind, n, events, interval).await;
                self.measure(format!("broadcast {n} x {events}"), kind, |r| &mut r.broadcast, run).await;
            }
        }
    }

    async fn broadcast_one(&mut self, kind: Kind, n: usize, events: u64, apart: Duration) -> Result<Broadcast, String> {
        let mut f = self.setup(kind, &format!("bc{n}"), 1, n).await?;
        let (tag, mark) = self.phase(&mut f.subscribers, &[f.server.pid]).await?;
        let published = every(&f.publisher, &f.channels, apart, events, tag).await;
        let d = self.delivered(&mut f.subscribers, published, f.opened.ok, Duration::from_secs(3), &mark).await;
        let opened = std::mem::take(&mut f.opened);
        f.close().await;
        let count = if n > 0 && n.is_multiple_of(1000) { format!("{}k", n / 1000) } else { n.to_string() };
        let case = format!("{count} subscribers, {events} events {} ms apart", apart.as_millis());
        Ok(Broadcast { server: kind, case, subscribers: n, opened, d: d? })
    }
}

pub fn section(r: &Results) -> Option<Section> {
    r.broadcast.first()?;
    let mut s = Section::new("Broadcast");
    s.text(
        "All subscribers on one channel, events published at a fixed pace. Each event is one socket write per \
         subscriber, so an event's last subscribers wait for the writes to all the others: the p99 is about the time \
         an event takes to reach every stream.",
    );
    let head = "case | server | streams opened | failed | received / expected | missing | p50 ms | p95 ms | p99 ms";
    let mut t = Table::new(2, &format!("{head} | max ms | CPU µs / delivery | {CPU_COLUMNS}"));
    for b in &r.broadcast {
        let (d, o) = (&b.d, &b.opened);
        let failed = with_counts(o.failed, &o.errors);
        let row = t.row(&[&b.case, &b.server.name(), &o.ok, &failed, &d.received(), &d.missing()]);
        row.extend(d.latency.cells());
        row.push(d.server_us().cell());
        row.extend(d.cpu.cells());
    }
    s.table(&t);
    let mut ratio_table = Table::new(1, "case | p99 ÷ nchan | ÷ nchan+redis | CPU / delivery ÷ nchan | ÷ nchan+redis");
    let mut cases: Vec<&str> = r.broadcast.iter().map(|b| b.case.as_str()).collect();
    cases.dedup();
    for case in cases {
        let of = |k: Kind| r.broadcast.iter().find(|b| b.server == k && b.case == case);
        let row = ratio_table.row(&[&case]);
        row.extend(ratios(|k| of(k).map(|b| b.d.latency.p99)));
        row.extend(ratios(|k| of(k).and_then(|b| b.d.server_us())));
    }
    s.text("Ratios (redisse / other; lower is better):").table(&ratio_table);
    Some(s)
}

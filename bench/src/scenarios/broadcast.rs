//! Broadcast: events at a fixed pace to subscribers all on one channel.

use std::time::Duration;

use super::{thousands, Bench, Case, Cpu, Results, CPU_COLUMNS};
use crate::hist::Latency;
use crate::publish::paced;
use crate::report::{ratio, with_counts, Cell, Section, Table};
use crate::servers::{Kind, Server, DEFAULT_HEARTBEAT};

pub struct Broadcast {
    pub server: Kind,
    /// The case in words, e.g. `10k subscribers, 50 events 250 ms apart`.
    pub case: String,
    pub subscribers: usize,
    pub opened: u64,
    pub failed: String,
    pub expected: u64,
    pub received: u64,
    pub latency: Latency,
    pub cpu: Cpu,
}

impl Case for Broadcast {
    fn cpu(&self) -> &Cpu {
        &self.cpu
    }
}

impl Bench {
    pub(super) async fn broadcast(&mut self) {
        for (n, events, interval) in self.sizes.broadcast.clone() {
            for kind in self.servers.clone() {
                let run = async |b: &mut Self| b.broadcast_one(kind, n, events, interval).await;
                self.measure(
                    format!("broadcast {n} x {events}"),
                    kind,
                    |r| &mut r.broadcast,
                    run,
                )
                .await;
            }
        }
    }

    async fn broadcast_one(
        &mut self,
        kind: Kind,
        n: usize,
        events: u64,
        interval: Duration,
    ) -> Result<Broadcast, String> {
        let server =
            Server::start(kind, &self.env, &format!("broadcast{n}"), DEFAULT_HEARTBEAT).await?;
        let prefix = self.prefix(&format!("bc{n}"));
        let (mut subscribers, opened) = self.open(&self.spec(&server, &prefix, 1, n)).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let tag = self.next_tag();
        subscribers.phase(tag).await?;
        let publisher = self.publisher_for(&server).await?;
        let mark = self.cpu_mark(&[server.pid], &subscribers);
        let limit = interval * events as u32 + Duration::from_secs(30);
        let channel = [format!("{prefix}_0")];
        let published = paced(
            &publisher,
            &channel,
            1.0 / interval.as_secs_f64(),
            events,
            tag,
            limit,
        )
        .await;
        let expected = published.ok * opened.ok;
        let quiet = Duration::from_secs(3);
        let delivered = self
            .delivered(
                &mut subscribers,
                &published,
                expected,
                quiet,
                (mark, &[server.pid]),
            )
            .await;
        subscribers.quit().await;
        server.stop();
        let (tally, latency, cpu) = delivered?;
        Ok(Broadcast {
            server: kind,
            case: format!(
                "{} subscribers, {events} events {} ms apart",
                thousands(n),
                interval.as_millis()
            ),
            subscribers: n,
            opened: opened.ok,
            failed: with_counts(opened.failed, &opened.errors),
            expected,
            received: tally.received,
            latency,
            cpu,
        })
    }
}

pub fn section(r: &Results) -> Option<Section> {
    r.broadcast.first()?;
    let mut s = Section::new("Broadcast");
    s.text(
        "All subscribers on one channel; events published at a fixed pace. Each event is one socket write per \
         subscriber, so the last subscribers of an event wait for the writes to all the others: the p99 is close to \
         the time one event takes to reach every stream.",
    );
    let mut t =
        Table::new("case | server | streams opened | failed | received / expected | missing")
            .labels(2)
            .columns("p50 ms | p95 ms | p99 ms | max ms | CPU µs / delivery")
            .columns(CPU_COLUMNS);
    for b in &r.broadcast {
        let (l, received) = (
            &b.latency,
            format!("{} / {}", b.received.cell(), b.expected.cell()),
        );
        let missing = b.expected.saturating_sub(b.received);
        let row = t.row(&[
            &b.case,
            &b.server.name(),
            &b.opened,
            &b.failed,
            &received,
            &missing,
        ]);
        row.extend([l.p50, l.p95, l.p99, l.max].map(|x| x.cell()));
        row.extend(
            [b.cpu.server_us(b.received).cell()]
                .into_iter()
                .chain(b.cpu.cells()),
        );
    }
    s.table(&t);
    let mut ratios =
        Table::new("case | p99 ÷ nchan | ÷ nchan+redis | CPU / delivery ÷ nchan | ÷ nchan+redis");
    let mut cases: Vec<&str> = r.broadcast.iter().map(|b| b.case.as_str()).collect();
    cases.dedup();
    for case in cases {
        let of = |k: Kind| r.broadcast.iter().find(|b| b.server == k && b.case == case);
        let p99 = |k| of(k).map(|b| b.latency.p99);
        let cpu = |k| of(k).and_then(|b| b.cpu.server_us(b.received));
        let (ours_p99, ours_cpu) = (p99(Kind::Redisse), cpu(Kind::Redisse));
        let row = ratios.row(&[
            &case,
            &ratio(ours_p99, p99(Kind::Nchan)),
            &ratio(ours_p99, p99(Kind::NchanRedis)),
        ]);
        row.extend([
            ratio(ours_cpu, cpu(Kind::Nchan)),
            ratio(ours_cpu, cpu(Kind::NchanRedis)),
        ]);
    }
    s.text("Ratios (redisse / other; lower is better):")
        .table(&ratios);
    Some(s)
}

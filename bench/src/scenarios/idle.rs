//! Idle capacity: many quiet streams, for the memory and CPU they cost;
//! and the same streams opened by requests that carry a session cookie,
//! which a server has no reason to keep.

use super::{Bench, Case, Cpu, Results, CPU_COLUMNS};
use crate::report::{mib, ratio, with_counts, Cell, Meta, Section, Table};
use crate::servers::{Kind, Server};
use crate::subscribe::Opened;

pub struct Idle {
    pub server: Kind,
    pub streams: usize,
    pub channels: usize,
    pub cookie_bytes: usize,
    pub opened: Opened,
    pub closed: u64,
    pub rss_before_kib: u64,
    pub rss_with_kib: u64,
    pub kib_per_stream: f64,
    pub fds: usize,
    pub heartbeat_bytes_per_s: f64,
    pub alive: bool,
    pub cpu: Cpu,
}

impl Case for Idle {
    fn cpu(&self) -> &Cpu {
        &self.cpu
    }
}

impl Bench {
    pub(super) async fn idle(&mut self) {
        for n in self.sizes.idle_streams.clone() {
            for kind in self.servers.clone() {
                let run = async |b: &mut Self| b.idle_one(kind, n, 0).await;
                self.measure(format!("idle {n}"), kind, |r| &mut r.idle, run)
                    .await;
            }
        }
        // nchan+redis holds its streams as nchan does: one nchan is enough.
        let (n, cookie) = (self.sizes.cookie_streams, self.sizes.cookie_bytes);
        for kind in self
            .servers
            .clone()
            .into_iter()
            .filter(|&k| k != Kind::NchanRedis)
        {
            let run = async |b: &mut Self| b.idle_one(kind, n, cookie).await;
            self.measure(
                format!("idle {n} with a {cookie}-byte cookie"),
                kind,
                |r| &mut r.cookie,
                run,
            )
            .await;
        }
    }

    async fn idle_one(
        &mut self,
        kind: Kind,
        n: usize,
        cookie_bytes: usize,
    ) -> Result<Idle, String> {
        let mut server =
            Server::start(kind, &self.env, &format!("idle{n}"), self.env.heartbeat).await?;
        let rss_before = server.rss_kib();
        let channels = self.sizes.idle_channels;
        let mut spec = self.spec(&server, &self.prefix(&format!("idle{n}")), channels, n);
        spec.cookie_bytes = cookie_bytes;
        let (mut subscribers, opened) = self.open(&spec).await?;
        tokio::time::sleep(self.sizes.idle_settle).await;
        let (rss_with, fds) = (server.rss_kib(), server.fds());
        let before = subscribers.stats().await?;
        let mark = self.cpu_mark(&[server.pid], &subscribers);
        tokio::time::sleep(self.sizes.idle_window).await;
        let cpu = self.cpu_since(&mark, &[server.pid], &subscribers);
        let after = subscribers.stats().await?;
        subscribers.quit().await;
        let alive = server.alive();
        server.stop();
        let kib_per_stream = per_stream(rss_with as f64 - rss_before as f64, opened.ok);
        let heartbeat_bytes_per_s =
            (after.bytes.saturating_sub(before.bytes) as f64 / cpu.window).round();
        Ok(Idle {
            server: kind,
            streams: n,
            channels,
            cookie_bytes,
            opened,
            closed: after.closed,
            rss_before_kib: rss_before,
            rss_with_kib: rss_with,
            kib_per_stream,
            fds,
            heartbeat_bytes_per_s,
            alive,
            cpu,
        })
    }
}

/// `kib` over `streams`, to 1/100.
fn per_stream(kib: f64, streams: u64) -> f64 {
    (kib / streams.max(1) as f64 * 100.0).round() / 100.0
}

fn of(list: &[Idle], server: Kind, n: usize) -> Option<&Idle> {
    list.iter().find(|i| i.server == server && i.streams == n)
}

pub fn section(r: &Results, meta: &Meta) -> Option<Section> {
    let first = r.idle.first().or(r.cookie.first())?;
    let mut s = Section::new("Idle capacity");
    s.text(format!(
        "Streams spread over {} channels, opened 100 at a time per subscriber process; then a {:.0} s window with \
         heartbeats every {} s.",
        first.channels.cell(),
        first.cpu.window,
        meta.heartbeat
    ));
    let mut t = Table::new(
        "server | streams | opened | failed | closed | RSS before (MiB) | RSS with (MiB)",
    )
    .columns("KiB / stream | fds")
    .columns(CPU_COLUMNS)
    .columns("heartbeat bytes/s received");
    for i in &r.idle {
        let failed = with_counts(i.opened.failed, &i.opened.errors);
        let row = t.row(&[
            &i.server.name(),
            &i.streams,
            &i.opened.ok,
            &failed,
            &i.closed,
        ]);
        row.extend([
            mib(i.rss_before_kib),
            mib(i.rss_with_kib),
            i.kib_per_stream.cell(),
            i.fds.cell(),
        ]);
        row.extend(
            i.cpu
                .cells()
                .into_iter()
                .chain([i.heartbeat_bytes_per_s.cell()]),
        );
    }
    s.table(&t);
    let mut ratios = Table::new(
        "streams | KiB / stream ÷ nchan | ÷ nchan+redis | server CPU ÷ nchan | ÷ nchan+redis",
    );
    let mut counts: Vec<usize> = r.idle.iter().map(|i| i.streams).collect();
    counts.dedup();
    for n in counts {
        let kib = |k| of(&r.idle, k, n).map(|i| i.kib_per_stream);
        let cpu = |k| of(&r.idle, k, n).map(|i| i.cpu.server);
        let (ours_kib, ours_cpu) = (kib(Kind::Redisse), cpu(Kind::Redisse));
        let row = ratios.row(&[
            &n,
            &ratio(ours_kib, kib(Kind::Nchan)),
            &ratio(ours_kib, kib(Kind::NchanRedis)),
        ]);
        row.extend([
            ratio(ours_cpu, cpu(Kind::Nchan)),
            ratio(ours_cpu, cpu(Kind::NchanRedis)),
        ]);
    }
    s.text("Ratios (redisse / other; lower is better):")
        .table(&ratios);
    if let Some(c) = r.cookie.first() {
        s.text(format!(
            "With a session cookie: the same streams, each request carrying a {}-byte `Cookie` header (as a Rails \
             session's, `_app_session=<base64>--<digest>`), against the case above with as many streams and no \
             cookie. The server needs none of it once the stream is open.",
            c.cookie_bytes.cell()
        ));
        let mut t = Table::new(
            "server | streams | opened | failed | KiB / stream, no cookie | with the cookie",
        )
        .columns("with ÷ without");
        for c in &r.cookie {
            let plain = of(&r.idle, c.server, c.streams).map(|i| i.kib_per_stream);
            let (o, ours) = (&c.opened, Some(c.kib_per_stream));
            let failed = with_counts(o.failed, &o.errors);
            let row = t.row(&[&c.server.name(), &c.streams, &o.ok, &failed, &plain, &ours]);
            row.push(ratio(ours, plain));
        }
        s.table(&t);
    }
    Some(s)
}

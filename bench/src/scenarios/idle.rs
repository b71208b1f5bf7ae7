//! Idle capacity: many quiet streams, for the memory and CPU they cost;
//! and the same streams opened by requests that carry a session cookie,
//! which a server has no reason to keep.

use super::{Bench, Cpu, Results, Sizes, CPU_COLUMNS};
use crate::report::{mib, ratio, ratios, with_counts, Cell, Section, Table};
use crate::servers::{Kind, Server};
use crate::subscribe::Opened;

pub struct Idle {
    pub server: Kind,
    pub streams: usize,
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

impl Bench {
    pub(super) async fn idle(&mut self) {
        for n in self.sizes.idle_streams.clone() {
            for kind in self.servers.clone() {
                let run = async |b: &mut Self| b.idle_one(kind, n, 0).await;
                self.measure(format!("idle {n}"), kind, |r| &mut r.idle, run).await;
            }
        }
        // nchan+redis holds its streams as nchan does: one nchan is enough.
        let (n, cookie) = (self.sizes.cookie_streams, self.sizes.cookie_bytes);
        for kind in self.servers.clone().into_iter().filter(|&k| k != Kind::NchanRedis) {
            let run = async |b: &mut Self| b.idle_one(kind, n, cookie).await;
            self.measure(format!("idle {n} with a {cookie}-byte cookie"), kind, |r| &mut r.cookie, run).await;
        }
    }

    async fn idle_one(&mut self, kind: Kind, n: usize, cookie_bytes: usize) -> Result<Idle, String> {
        let label = format!("idle{n}");
        let server = Server::start(kind, &self.env, &label, self.sizes.idle_heartbeat).await?;
        let rss_before_kib = server.rss_kib();
        let mut spec = self.spec(&server, &self.prefix(&label), self.sizes.idle_channels, n);
        spec.cookie_bytes = cookie_bytes;
        let (mut subscribers, opened) = self.open(&spec).await?;
        tokio::time::sleep(self.sizes.idle_settle).await;
        let (rss_with_kib, fds) = (server.rss_kib(), server.fds());
        let before = subscribers.stats().await?;
        let mark = self.cpu_mark(&[server.pid], &subscribers);
        tokio::time::sleep(self.sizes.idle_window).await;
        let cpu = self.cpu_since(&mark, &subscribers);
        let after = subscribers.stats().await?;
        subscribers.quit().await;
        let alive = server.stop();
        let per_stream = (rss_with_kib as f64 - rss_before_kib as f64) / opened.ok.max(1) as f64;
        Ok(Idle {
            server: kind,
            streams: n,
            cookie_bytes,
            opened,
            closed: after.closed,
            rss_before_kib,
            rss_with_kib,
            kib_per_stream: (per_stream * 100.0).round() / 100.0,
            fds,
            heartbeat_bytes_per_s: (after.bytes.saturating_sub(before.bytes) as f64 / cpu.window).round(),
            alive,
            cpu,
        })
    }
}

pub fn section(r: &Results, sizes: &Sizes) -> Option<Section> {
    let first = r.idle.first().or(r.cookie.first())?;
    let mut s = Section::new("Idle capacity");
    s.text(format!(
        "Streams spread over {} channels, opened 100 at a time per subscriber process; then a {:.0} s window with \
         heartbeats every {} s.",
        sizes.idle_channels.cell(),
        first.cpu.window,
        sizes.idle_heartbeat
    ));
    let head = "server | streams | opened | failed | closed | RSS before (MiB) | RSS with (MiB) | KiB / stream | fds";
    let mut t = Table::new(1, &format!("{head} | {CPU_COLUMNS} | heartbeat bytes/s received"));
    for i in &r.idle {
        let failed = with_counts(i.opened.failed, &i.opened.errors);
        let row = t.row(&[&i.server.name(), &i.streams, &i.opened.ok, &failed, &i.closed]);
        row.extend([mib(i.rss_before_kib), mib(i.rss_with_kib), i.kib_per_stream.cell(), i.fds.cell()]);
        row.extend(i.cpu.cells());
        row.push(i.heartbeat_bytes_per_s.cell());
    }
    s.table(&t);
    let of = |k: Kind, n: usize| r.idle.iter().find(|i| i.server == k && i.streams == n);
    let head = "streams | KiB / stream ÷ nchan | ÷ nchan+redis | server CPU ÷ nchan | ÷ nchan+redis";
    let mut ratio_table = Table::new(1, head);
    let mut counts: Vec<usize> = r.idle.iter().map(|i| i.streams).collect();
    counts.dedup();
    for n in counts {
        let row = ratio_table.row(&[&n]);
        row.extend(ratios(|k| of(k, n).map(|i| i.kib_per_stream)));
        row.extend(ratios(|k| of(k, n).map(|i| i.cpu.server)));
    }
    s.text("Ratios (redisse / other; lower is better):").table(&ratio_table);
    let Some(c) = r.cookie.first() else { return Some(s) };
    s.text(format!(
        "With a session cookie: the same streams, each request carrying a {}-byte `Cookie` header (as a Rails \
         session's, `_app_session=<base64>--<digest>`), against the case above with as many streams and no cookie. \
         The server needs none of it once the stream is open.",
        c.cookie_bytes.cell()
    ));
    let head = "server | streams | opened | failed | KiB / stream, no cookie | with the cookie | with ÷ without";
    let mut t = Table::new(1, head);
    for c in &r.cookie {
        let (plain, ours) = (of(c.server, c.streams).map(|i| i.kib_per_stream), Some(c.kib_per_stream));
        let failed = with_counts(c.opened.failed, &c.opened.errors);
        t.row(&[&c.server.name(), &c.streams, &c.opened.ok, &failed, &plain, &ours, &ratio(ours, plain)]);
    }
    s.table(&t);
    Some(s)
}

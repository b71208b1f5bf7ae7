//! Connection avalanche: every stream opened at once, then every stream
//! closed at once (a deploy, a network blip), and how soon the server is
//! back to its idle descriptors and opens the next stream.

use std::time::{Duration, Instant};

use super::{Bench, Cpu, Results};
use crate::report::{ratios, with_counts, Cell, Section, Table};
use crate::servers::{Kind, Server, DEFAULT_HEARTBEAT};
use crate::subscribe::{open_stream, Opened};
use crate::subscribers::Subscribers;
use crate::sys;

const CHANNELS: usize = 1000;

pub struct Avalanche {
    pub server: Kind,
    pub streams: usize,
    pub opened: Opened,
    /// From every client closing at once until the server is back to its
    /// idle descriptors; none if not within 60 s.
    pub all_closed_s: Option<f64>,
    /// Opening one stream right after: what the closing left to do.
    pub next_stream_ms: Option<f64>,
    /// The server's accept-queue length; none when `ss` could not tell.
    pub listen_backlog: Option<u64>,
    pub listen_drops: u64,
    pub cpu: Cpu,
}

impl Bench {
    pub(super) async fn avalanche(&mut self) {
        for kind in self.servers.clone() {
            let run = async |b: &mut Self| b.avalanche_one(kind).await;
            self.measure("avalanche".into(), kind, |r| &mut r.avalanche, run).await;
        }
    }

    async fn avalanche_one(&mut self, kind: Kind) -> Result<Avalanche, String> {
        let server = Server::start(kind, &self.env, "avalanche", DEFAULT_HEARTBEAT).await?;
        let streams = self.sizes.avalanche_streams;
        let mut spec = self.spec(&server, &self.prefix("ava"), CHANNELS, streams);
        spec.concurrency = 0;
        let mut subscribers = Subscribers::spawn(&spec).await?;
        let idle_fds = server.fds();
        let listen_backlog = sys::listen_backlog(server.addr.port());
        let drops_before = sys::listen_drops();
        let mark = self.cpu_mark(&[server.pid], &subscribers);
        let opened = subscribers.open(Duration::from_secs(120)).await?;
        let cpu = self.cpu_since(&mark, &subscribers);
        let listen_drops = sys::listen_drops().saturating_sub(drops_before);
        let closing = Instant::now();
        subscribers.quit().await;
        while server.fds() > idle_fds && closing.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let all_closed_s = (server.fds() <= idle_fds).then(|| round2(closing.elapsed().as_secs_f64()));
        // On a channel nobody listens to: it waits behind whatever the
        // server still has to do for the streams that left.
        let mut next_stream_ms = None;
        if all_closed_s.is_some() {
            let path = kind.stream_path(&format!("{}_after", self.prefix("ava")));
            let start = Instant::now();
            if open_stream(server.addr, None, &path, &[], Duration::from_secs(30)).await.is_ok() {
                next_stream_ms = Some(round2(start.elapsed().as_secs_f64() * 1000.0));
            }
        }
        server.stop();
        if opened.ok == 0 {
            return Err(format!("no stream opened: {:?}", opened.errors));
        }
        Ok(Avalanche { server: kind, streams, opened, all_closed_s, next_stream_ms, listen_backlog, listen_drops, cpu })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn section(r: &Results) -> Option<Section> {
    r.avalanche.first()?;
    let mut s = Section::new("Connection avalanche");
    s.text(format!(
        "Every stream opened at once (over {} channels); connect time runs from `connect()` until the response head \
         is read. Then every client quits at once: \"all closed\" runs until the server holds no more descriptors than \
         before, \"next stream\" is the time to open one more stream right after.",
        CHANNELS.cell()
    ));
    let head = "server | streams | opened | failed | connect p50 ms | p95 ms | p99 ms | max ms | all answered in s";
    let tail = "all closed in s | next stream ms | listen backlog | SYNs dropped (ListenDrops)";
    let mut t = Table::new(1, &format!("{head} | {tail} | server CPU % | client CPU % | other CPU %"));
    for a in &r.avalanche {
        let o = &a.opened;
        let row = t.row(&[&a.server.name(), &a.streams, &o.ok, &with_counts(o.failed, &o.errors)]);
        row.extend(o.connect.ms().cells());
        row.extend([round2(o.elapsed_s).cell(), a.all_closed_s.cell(), a.next_stream_ms.cell()]);
        row.extend([a.listen_backlog.cell(), a.listen_drops.cell()]);
        row.extend([a.cpu.server, a.cpu.client, a.cpu.other].map(|x| a.cpu.pct(x).cell()));
    }
    s.table(&t);
    let of = |k: Kind| r.avalanche.iter().find(|a| a.server == k);
    let [p95_nchan, p95_redis] = ratios(|k| of(k).map(|a| a.opened.connect.ms().p95));
    let [closed_nchan, closed_redis] = ratios(|k| of(k).and_then(|a| a.all_closed_s));
    s.text(format!(
        "Ratio of connect p95 (redisse / other): nchan {p95_nchan}, nchan+redis {p95_redis}. Ratio of all closed: \
         nchan {closed_nchan}, nchan+redis {closed_redis}."
    ));
    let (Some(ours), Some(theirs)) = (of(Kind::Redisse), of(Kind::Nchan)) else { return Some(s) };
    if ours.listen_backlog < theirs.listen_backlog && ours.listen_drops > theirs.listen_drops {
        let (backlog, nginx_backlog) = (ours.listen_backlog.cell(), theirs.listen_backlog.cell());
        let (streams, drops, nginx_drops) = (ours.streams.cell(), ours.listen_drops.cell(), theirs.listen_drops.cell());
        s.text(format!(
            "redisse listens with an accept queue of {backlog} (nginx: {nginx_backlog}): with {streams} connections \
             arriving at once the kernel dropped {drops} SYNs (nginx: {nginx_drops}), and clients retry a dropped SYN \
             after 1 s, then 3 s, which is most of redisse's connect times."
        ));
    }
    Some(s)
}

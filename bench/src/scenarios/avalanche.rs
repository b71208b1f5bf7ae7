//! Scenario 4, connection avalanche: every stream opened at once, then
//! every stream closed at once (a deploy, a network blip), and how soon the
//! server is back to its idle descriptors and opens the next stream.

use std::time::{Duration, Instant};

use super::measure::{Case, CpuMark};
use super::{round2, Bench};
use crate::fleet::Fleet;
use crate::http::open_stream;
use crate::results::{AvalancheRecord, CpuShare, Measurement};
use crate::servers::{Kind, Server, DEFAULT_HEARTBEAT};
use crate::sys;

impl Bench {
    pub async fn avalanche(&mut self) {
        for kind in self.targets.clone() {
            eprintln!("bench: avalanche / {}", kind.name());
            self.measure("avalanche", kind, async |bench: &mut Self| {
                bench.avalanche_one(kind).await
            })
            .await;
        }
    }

    async fn avalanche_one(&mut self, kind: Kind) -> Result<AvalancheRecord, String> {
        self.wait_quiet().await;
        let mut server = Server::start(kind, &self.env, "avalanche", DEFAULT_HEARTBEAT).await?;
        let n = self.sizes.avalanche_streams;
        let spec = self.fleet_spec(
            &server,
            &self.prefix("ava"),
            1000,
            n,
            0,
            Duration::from_secs(30),
        );
        let mut fleet = Fleet::spawn(&spec).await?;
        let idle_fds = server.fds();
        let backlog = sys::listen_backlog(server.addr.port());
        let drops_before = sys::listen_drops();
        let mark = CpuMark::take(&server, &fleet, self.redis_pid);
        let opened = fleet.open(Duration::from_secs(120)).await?;
        let cpu = mark.since(&server, &fleet, self.redis_pid);
        let drops_after = sys::listen_drops();
        let rss = server.rss_kib();
        let processes = fleet.processes();
        let closing = Instant::now();
        fleet.quit().await;
        let all_closed_s = all_closed(&server, idle_fds, closing).await;
        let next_stream_ms = match all_closed_s {
            Some(_) => next_stream(&server, &self.prefix("ava")).await,
            None => None,
        };
        let alive = server.alive();
        server.stop();
        if opened.ok == 0 {
            return Err(format!("no stream opened: {:?}", opened.errors));
        }
        let connect = &opened.connect;
        let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
        Ok(AvalancheRecord {
            server: kind,
            streams: n,
            client_processes: processes,
            opened: opened.ok,
            failed: opened.failed,
            errors: opened.errors,
            connect_p50_ms: ms(connect.quantile(0.5)),
            connect_p95_ms: ms(connect.quantile(0.95)),
            connect_p99_ms: ms(connect.quantile(0.99)),
            connect_max_ms: ms(connect.max()),
            all_opened_s: round2(opened.elapsed.as_secs_f64()),
            all_closed_s,
            next_stream_ms,
            rss_with_kib: rss,
            listen_backlog: backlog,
            listen_overflows: drops_after.0.saturating_sub(drops_before.0),
            listen_drops: drops_after.1.saturating_sub(drops_before.1),
            server_alive: alive,
            cpu,
            attempt: 1, // renumbered by `measure`
        })
    }
}

/// Seconds from the clients' quitting until the server holds no more
/// descriptors than before the streams opened (within 60 s, or none).
async fn all_closed(server: &Server, idle_fds: usize, since: Instant) -> Option<f64> {
    let until = since + Duration::from_secs(60);
    while Instant::now() < until {
        if server.fds() <= idle_fds {
            return Some(round2(since.elapsed().as_secs_f64()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Milliseconds to open one more stream once all are closed, on a channel
/// nobody listens to: it waits behind whatever the server still has to do
/// for the streams that left (redisse's hub takes commands in order).
async fn next_stream(server: &Server, prefix: &str) -> Option<f64> {
    let path = server.kind.stream_path(&format!("{prefix}_after"));
    let mut buf = Vec::new();
    let start = Instant::now();
    let opened = tokio::time::timeout(
        Duration::from_secs(30),
        open_stream(None, server.addr, &path, &mut buf),
    )
    .await;
    matches!(opened, Ok(Ok(_))).then(|| round2(start.elapsed().as_secs_f64() * 1000.0))
}

impl Case for AvalancheRecord {
    fn cpu(&self) -> &CpuShare {
        &self.cpu
    }
    fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt;
    }
    fn into_measurement(self) -> Measurement {
        Measurement::Avalanche(self)
    }
}

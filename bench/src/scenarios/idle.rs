//! Scenario 1, idle capacity: many quiet streams, for the memory and CPU
//! they cost.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::measure::{Case, CpuMark};
use super::{round2, Bench};
use crate::http::get_json;
use crate::results::{CpuShare, IdleRecord, Measurement};
use crate::servers::{Kind, Server};

impl Bench {
    pub async fn idle(&mut self) {
        for n in self.sizes.idle_streams.clone() {
            for kind in self.targets.clone() {
                eprintln!("bench: idle {n} streams / {}", kind.name());
                self.measure("idle", kind, async |bench: &mut Self| {
                    bench.idle_one(kind, n).await
                })
                .await;
            }
        }
    }

    async fn idle_one(&mut self, kind: Kind, n: usize) -> Result<IdleRecord, String> {
        self.wait_quiet().await;
        let mut server =
            Server::start(kind, &self.env, &format!("idle{n}"), self.env.heartbeat).await?;
        let rss_before = server.rss_kib();
        let fds_before = server.fds();
        let channels = self.sizes.idle_channels;
        let (mut fleet, opened) = self
            .open_fleet(&server, &self.prefix(&format!("idle{n}")), channels, n)
            .await?;
        tokio::time::sleep(self.sizes.idle_settle).await;
        let rss_with = server.rss_kib();
        let fds_with = server.fds();
        let before = fleet.stats().await?;
        let mark = CpuMark::take(&server, &fleet, self.redis_pid);
        tokio::time::sleep(self.sizes.idle_window).await;
        let cpu = mark.since(&server, &fleet, self.redis_pid);
        let after = fleet.stats().await?;
        let window = cpu.window_s;
        let connected = if kind == Kind::Redisse {
            redisse_stats(server.addr).await.map(|s| s.connected)
        } else {
            None
        };
        let processes = fleet.processes();
        fleet.quit().await;
        let alive = server.alive();
        server.stop();
        Ok(IdleRecord {
            server: kind,
            streams: n,
            channels,
            client_processes: processes,
            opened: opened.ok,
            failed: opened.failed,
            errors: opened.errors,
            open_s: round2(opened.elapsed.as_secs_f64()),
            closed: after.closed,
            rss_before_kib: rss_before,
            rss_with_kib: rss_with,
            kib_per_stream: round2((rss_with as f64 - rss_before as f64) / opened.ok.max(1) as f64),
            fds_before,
            fds_with,
            heartbeat_s: self.env.heartbeat,
            heartbeat_bytes_per_s: ((after.bytes.saturating_sub(before.bytes)) as f64 / window)
                .round(),
            server_connected: connected,
            server_alive: alive,
            cpu,
            attempt: 1, // renumbered by `measure`
        })
    }
}

impl Case for IdleRecord {
    fn cpu(&self) -> &CpuShare {
        &self.cpu
    }
    fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt;
    }
    fn into_measurement(self) -> Measurement {
        Measurement::Idle(self)
    }
}

/// redisse's stats page (`GET /` as JSON): each server counts only its own
/// streams and events.
#[derive(Deserialize)]
pub(super) struct RedisseStats {
    pub connected: u64,
    pub events: u64,
}

/// A redisse server's stats, if its stats page answers.
pub(super) async fn redisse_stats(addr: SocketAddr) -> Option<RedisseStats> {
    match tokio::time::timeout(Duration::from_secs(5), get_json(addr)).await {
        Ok(Ok(body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

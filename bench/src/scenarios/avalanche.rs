//! Scenario 4, connection avalanche: every stream opened at once.

use std::time::Duration;

use super::measure::{Case, CpuMark};
use super::{round2, Bench};
use crate::fleet::Fleet;
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
        let backlog = sys::listen_backlog(server.addr.port());
        let drops_before = sys::listen_drops();
        let mark = CpuMark::take(&server, &fleet, self.redis_pid);
        let opened = fleet.open(Duration::from_secs(120)).await?;
        let cpu = mark.since(&server, &fleet, self.redis_pid);
        let drops_after = sys::listen_drops();
        let rss = server.rss_kib();
        let processes = fleet.processes();
        fleet.quit().await;
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

//! Scenario 2, broadcast: events at a fixed pace to subscribers all on one
//! channel.

use std::time::Duration;

use super::measure::{Case, CpuMark};
use super::{thousands, Bench};
use crate::publish::paced;
use crate::results::{BroadcastRecord, CpuShare, Measurement};
use crate::servers::{Kind, Server, DEFAULT_HEARTBEAT};

impl Bench {
    pub async fn broadcast(&mut self) {
        for (subscribers, events, interval) in self.sizes.broadcast.clone() {
            for kind in self.targets.clone() {
                eprintln!(
                    "bench: broadcast {subscribers} x {events} / {}",
                    kind.name()
                );
                self.measure("broadcast", kind, async |bench: &mut Self| {
                    bench
                        .broadcast_one(kind, subscribers, events, interval)
                        .await
                })
                .await;
            }
        }
    }

    async fn broadcast_one(
        &mut self,
        kind: Kind,
        subscribers: usize,
        events: u64,
        interval: Duration,
    ) -> Result<BroadcastRecord, String> {
        self.wait_quiet().await;
        let mut server = Server::start(
            kind,
            &self.env,
            &format!("broadcast{subscribers}"),
            DEFAULT_HEARTBEAT,
        )
        .await?;
        let prefix = self.prefix(&format!("bc{subscribers}"));
        let (mut fleet, opened) = self.open_fleet(&server, &prefix, 1, subscribers).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let tag = self.next_tag();
        fleet.phase(tag).await?;
        let publisher = self.publisher_for(&server).await?;
        let mark = CpuMark::take(&server, &fleet, self.redis_pid);
        let rate = 1.0 / interval.as_secs_f64();
        let limit = interval * events as u32 + Duration::from_secs(30);
        let published = paced(
            &publisher,
            &[format!("{prefix}_0")],
            rate,
            events,
            tag,
            limit,
        )
        .await;
        let expected = published.ok * opened.ok;
        fleet
            .wait_for(expected, Duration::from_secs(3), Duration::from_secs(20))
            .await?;
        let cpu = mark.since(&server, &fleet, self.redis_pid);
        let tally = fleet.report().await?;
        fleet.quit().await;
        let alive = server.alive();
        server.stop();
        if tally.received == 0 {
            return Err(format!(
                "no event delivered ({} published, errors {:?})",
                published.ok, published.errors
            ));
        }
        Ok(BroadcastRecord {
            server: kind,
            case: format!(
                "{} subscribers, {events} events {} ms apart",
                thousands(subscribers),
                interval.as_millis()
            ),
            subscribers,
            events,
            interval_ms: interval.as_millis() as u64,
            opened: opened.ok,
            failed: opened.failed,
            errors: opened.errors,
            published: published.ok,
            publish_failed: published.failed,
            publish_errors: published.errors,
            expected,
            received: tally.received,
            missing: expected.saturating_sub(tally.received),
            closed: tally.closed,
            close_reasons: tally.close_reasons,
            latency: tally.latency.summary_ms(),
            server_alive: alive,
            cpu,
            attempt: 1, // renumbered by `measure`
        })
    }
}

impl Case for BroadcastRecord {
    fn cpu(&self) -> &CpuShare {
        &self.cpu
    }
    fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt;
    }
    fn into_measurement(self) -> Measurement {
        Measurement::Broadcast(self)
    }
}

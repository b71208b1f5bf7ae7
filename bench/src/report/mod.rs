//! The Markdown report (REPORT.md) and its chart, from the scenarios'
//! records: one file per section, in the order they appear.

mod avalanche;
mod broadcast;
mod cell;
mod chart;
mod fanout;
mod fleet;
mod idle;
mod observations;
mod profile;
mod publisher;
mod targets;

use std::fmt::Write as _;

use crate::results::{
    AvalancheRecord, BroadcastRecord, FanoutRecord, FleetRecord, IdleRecord, Measurement, Meta,
    ProfileRecord, PublisherRecord, Record,
};
use crate::servers::Kind;

pub use chart::chart;

/// REPORT.md: the run's setup, the targets, then one section per scenario
/// that has records, the remarks and the cases that did not run.
pub fn markdown(records: &[Record], meta: &Meta, failures: &[String]) -> String {
    let m = Measured::by_scenario(records);
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Benchmarks: redisse vs nchan\n");
    if meta.quick {
        let _ = writeln!(w, "**Quick run** (`bin/bench --quick`): small counts to check that the harness works; the figures say little about performance.\n");
    }
    let _ = writeln!(
        w,
        "Written by `bin/bench` on {} at commit {} ({:.0} s).\n",
        meta.date, meta.commit, meta.duration_s
    );
    setup(w, meta);
    targets::section(w, &m);
    idle::section(w, &m, meta);
    broadcast::section(w, &m);
    fanout::section(w, &m);
    avalanche::section(w, &m);
    publisher::section(w, &m);
    fleet::section(w, &m);
    profile::section(w, &m);
    observations::section(w, &m);
    if !failures.is_empty() {
        let _ = writeln!(w, "## Scenarios that did not run\n");
        for f in failures {
            let _ = writeln!(w, "- {f}");
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "## Chart\n\n![Latency percentiles by scenario and server; RSS per idle stream by server](report.png)");
    md
}

/// How the run was set up: machine, versions, servers, client, and what the figures mean.
fn setup(w: &mut String, meta: &Meta) {
    let _ = writeln!(w, "## Setup\n");
    let _ = writeln!(w, "- Machine: {}.", meta.machine);
    let _ = writeln!(w, "- {}.", meta.versions);
    let _ = writeln!(
        w,
        "- Servers, each started fresh for each scenario by the harness on 127.0.0.1: **redisse** (`target/release/redisse`), \
         **nchan** (nginx with one worker, `nchan_subscriber eventsource`, in-memory store) and \
         **nchan+redis** (the same with `nchan_use_redis on`, see `bench/nchan/nginx.conf`). One redis-server serves redisse and nchan+redis. \
         Heartbeats (redisse `--heartbeat`, nchan `nchan_eventsource_ping_interval`): every {hb} s in the idle scenario to make their cost visible, \
         every {} s (redisse's default) in the others.",
        crate::servers::DEFAULT_HEARTBEAT,
        hb = meta.heartbeat
    );
    let _ = writeln!(
        w,
        "- Client: `redisse-bench` (the `bench/` crate): raw HTTP/1.1 event streams on tokio, at most 5,000 per subscriber process, \
         bound to source addresses {}. redisse's events are published in Redis with the publish script of `Redisse.publish` \
         (INCR, PUBLISH, ZADD, ZREMRANGEBYRANK); nchan's by HTTP POST to its publisher location, over 32 keep-alive connections.",
        meta.sources
    );
    let _ = writeln!(
        w,
        "- Latency: each event's data carries its send time (µs since the epoch, stamped just before the publish request), \
         so it covers the whole path publisher → (Redis) → server → client.\n\
         - CPU: percent of one core over the measured window (2 cores: 200 % is everything). *client* is the load generator \
         itself (coordinator and subscriber processes); when server + client + redis come near 200 %, the machine is saturated \
         and latency figures include waiting for a core. *other* is the rest of the machine (other processes, interrupts): \
         well above 0 means something else ran during the measurement and disturbed it. RSS is VmRSS of the process holding the connections (nginx's worker for nchan).\n"
    );
}

/// The measured records by scenario, each list in the order the cases ran.
/// Failed cases are left out: the report lists them from the failures.
struct Measured<'a> {
    idle: Vec<&'a IdleRecord>,
    broadcast: Vec<&'a BroadcastRecord>,
    fanout: Vec<&'a FanoutRecord>,
    avalanche: Vec<&'a AvalancheRecord>,
    publisher: Vec<&'a PublisherRecord>,
    profile: Vec<&'a ProfileRecord>,
    fleet: Vec<&'a FleetRecord>,
}

impl<'a> Measured<'a> {
    fn by_scenario(records: &'a [Record]) -> Measured<'a> {
        let mut m = Measured {
            idle: Vec::new(),
            broadcast: Vec::new(),
            fanout: Vec::new(),
            avalanche: Vec::new(),
            publisher: Vec::new(),
            profile: Vec::new(),
            fleet: Vec::new(),
        };
        for record in records {
            match record {
                Record::Measured(Measurement::Idle(r)) => m.idle.push(r),
                Record::Measured(Measurement::Broadcast(r)) => m.broadcast.push(r),
                Record::Measured(Measurement::Fanout(r)) => m.fanout.push(r),
                Record::Measured(Measurement::Avalanche(r)) => m.avalanche.push(r),
                Record::Measured(Measurement::Publisher(r)) => m.publisher.push(r),
                Record::Measured(Measurement::Profile(r)) => m.profile.push(r),
                Record::Measured(Measurement::Fleet(r)) => m.fleet.push(r),
                Record::Failed(_) => {}
            }
        }
        m
    }

    fn idle_of(&self, server: Kind, streams: usize) -> Option<&'a IdleRecord> {
        self.idle
            .iter()
            .copied()
            .find(|r| r.server == server && r.streams == streams)
    }

    fn avalanche_of(&self, server: Kind) -> Option<&'a AvalancheRecord> {
        self.avalanche.iter().copied().find(|r| r.server == server)
    }

    /// The highest offered fan-out rate `server` sustained.
    fn best_fanout(&self, server: Kind) -> Option<u64> {
        self.fanout
            .iter()
            .filter(|r| r.server == server && r.sustained)
            .map(|r| r.offered_per_s)
            .max()
    }
}

//! The targets table: the figures the project aims at, met or missed.

use crate::report::{ratio, Cell, Section, Table};
use crate::scenarios::{Results, COMMANDS_PER_LONE_READ};
use crate::servers::Kind;

pub fn section(r: &Results) -> Section {
    let mut t = Table::new("target | figure | met?").labels(3);
    // None when the run did not measure it: a quick run, a scenario left out.
    let mut target = |aim: &str, measured: Option<(String, bool)>| {
        let (figure, met) = match measured {
            Some((figure, true)) => (figure, "**met**"),
            Some((figure, false)) => (figure, "**missed**"),
            None => ("not measured".into(), "-"),
        };
        t.row(&[&aim, &figure, &met]);
    };
    let idle = |k: Kind, n: usize| r.idle.iter().find(|i| i.server == k && i.streams == n);
    let largest = r.idle.iter().map(|i| i.streams).max().unwrap_or(0);
    let kib = |k: Kind, n: usize| idle(k, n).map(|i| i.kib_per_stream);
    target(
        "RSS per idle stream at most 3.0 KiB",
        kib(Kind::Redisse, largest).map(|ours| {
            let nchan = kib(Kind::Nchan, largest).map(|n| format!(" (nchan {n:.2} KiB)"));
            let at = format!("{ours:.2} KiB at {} streams", largest.cell());
            (at + &nchan.unwrap_or_default(), ours <= 3.0)
        }),
    );
    let cookie = r.cookie.iter().find(|c| c.server == Kind::Redisse);
    target(
        "RSS per idle stream with a 6 KB session cookie within 10 % of one without",
        cookie.and_then(|c| {
            let (with, without) = (c.kib_per_stream, kib(Kind::Redisse, c.streams)?);
            let ratio = ratio(Some(with), Some(without));
            let figure = format!(
                "{with:.2} KiB vs {without:.2} KiB at {} streams: ratio {ratio}",
                c.streams.cell()
            );
            Some((figure, c.opened.failed == 0 && with <= without * 1.1))
        }),
    );
    let broadcast = |k| {
        r.broadcast
            .iter()
            .find(|b| b.server == k && b.subscribers == 10_000)
    };
    target(
        "broadcast p99 to 10k streams at most 0.4 of nchan+redis's",
        broadcast(Kind::Redisse)
            .zip(broadcast(Kind::NchanRedis))
            .map(|(a, b)| {
                let (x, y, missing) = (
                    a.latency.p99,
                    b.latency.p99,
                    a.expected.saturating_sub(a.received),
                );
                let figure = format!(
                    "{x:.1} ms vs {y:.1} ms: ratio {}, {missing} missing",
                    ratio(Some(x), Some(y))
                );
                (figure, x <= 0.4 * y && missing == 0)
            }),
    );
    let saturation = |k| {
        r.saturation
            .iter()
            .find(|s| s.run.server == k)
            .map(|s| &s.run)
    };
    let (ours, nchan) = (saturation(Kind::Redisse), saturation(Kind::Nchan));
    target(
        "fan-out at saturation: at least 3x nchan's deliveries, p99 < 100 ms",
        ours.zip(nchan).map(|(a, b)| {
            let (x, y, p99) = (a.deliveries_per_s, b.deliveries_per_s, a.latency.p99);
            let figure = format!(
                "{}/s vs {}/s: ratio {}; p99 {} ms",
                x.cell(),
                y.cell(),
                ratio(Some(x), Some(y)),
                p99.cell()
            );
            (figure, x >= 3.0 * y && p99 < 100.0 && a.lost == 0)
        }),
    );
    target(
        "server CPU per delivery (fan-out at saturation) at most 0.3 of nchan's",
        ours.zip(nchan).and_then(|(a, b)| {
            let (x, y) = (a.cpu.server_us(a.received)?, b.cpu.server_us(b.received)?);
            Some((
                format!("{x:.2} µs vs {y:.2} µs: ratio {}", ratio(Some(x), Some(y))),
                x <= 0.3 * y,
            ))
        }),
    );
    for (threads, aim, at_least) in [
        (1, "single-threaded at least 3.5x", 3.5),
        (8, "with 8 threads at least 10x", 10.0),
    ] {
        let rates = r.publisher.as_ref().map(|p| match threads {
            1 => (p.new_1, p.old_1, p.ratio_1),
            _ => (p.new_8, p.old_8, p.ratio_8),
        });
        target(
            &format!("Redisse.publish {aim} the 0.4 way"),
            rates.map(|(new, old, ratio)| {
                let figure = format!(
                    "{}/s vs {}/s: ratio {}",
                    new.cell(),
                    old.cell(),
                    ratio.cell()
                );
                (figure, ratio >= at_least)
            }),
        );
    }
    // A smaller fleet (a quick run, --fleet-streams) says nothing of the aim.
    let fleet = r.fleet.iter().find(|f| f.streams >= 50_000 && !f.full);
    target(
        "fleet: 50,000 streams through nginx to 3 servers, 0 failed, every broadcast event delivered",
        fleet.map(|f| {
            let (o, t, l) = (&f.opened, &f.tally, &f.latency);
            let figure = format!(
                "{} of {} opened through {} servers, {} failed, {} closed; {} of {} deliveries, p50 / p99 {} / {} ms",
                o.ok.cell(),
                f.streams.cell(),
                f.servers.len(),
                o.failed.cell(),
                t.closed.cell(),
                t.received.cell(),
                f.expected.cell(),
                l.p50.cell(),
                l.p99.cell()
            );
            let all = o.ok == f.streams as u64 && o.failed == 0 && t.closed == 0;
            (figure, all && f.servers.len() == 3 && t.received >= f.expected && f.published.failed == 0)
        }),
    );
    // A smaller deploy (a quick run) says nothing of the aim.
    let deploys: Vec<_> = r.deploy.iter().filter(|d| d.streams >= 15_000).collect();
    target(
        "deploy: a restart of 1 of 3 servers under load, with and without --drain, loses and doubles no event; \
         history commands per reconnect at most a tenth of a lone read's",
        (deploys.len() == 2).then(|| {
            let figures: Vec<String> = deploys
                .iter()
                .map(|d| {
                    format!(
                        "{}: {} lost, {} duplicated, {} commands per reconnect",
                        d.drain.map_or("no drain".into(), |s| format!("--drain {s}")),
                        d.lost(),
                        d.tally.duplicates,
                        d.commands_per_reconnect().cell()
                    )
                })
                .collect();
            let met = deploys.iter().all(|d| {
                let cheap = d
                    .commands_per_reconnect()
                    .is_some_and(|c| c <= COMMANDS_PER_LONE_READ / 10.0);
                d.lost() == 0 && d.tally.duplicates == 0 && cheap
            });
            (figures.join("; "), met)
        }),
    );
    target(
        "19k streams in one server process, no failure",
        idle(Kind::Redisse, 19_000).map(|i| {
            let (o, closed, alive) = (&i.opened, i.closed, i.alive.cell());
            let figure = format!(
                "{} opened, {} failed, {closed} closed, server alive: {alive}",
                o.ok.cell(),
                o.failed
            );
            (
                figure,
                o.ok == 19_000 && o.failed == 0 && closed == 0 && i.alive,
            )
        }),
    );
    let mut s = Section::new("Targets");
    s.table(&t);
    s
}

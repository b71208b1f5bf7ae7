//! The targets table: the figures the project aims at, met or missed.

use crate::report::{ratio, Cell, Section, Table};
use crate::scenarios::{Results, COMMANDS_PER_LONE_READ};
use crate::servers::Kind;

/// A target's figure and whether it is met; none when the run did not
/// measure it (a quick run, a scenario left out).
type Measured = Option<(String, bool)>;

pub fn section(r: &Results) -> Section {
    let mut t = Table::new(3, "target | figure | met?");
    for (aim, measured) in targets(r) {
        let (figure, met) = match measured {
            Some((figure, true)) => (figure, "**met**"),
            Some((figure, false)) => (figure, "**missed**"),
            None => ("not measured".into(), "-"),
        };
        t.row(&[&aim, &figure, &met]);
    }
    let mut s = Section::new("Targets");
    s.table(&t);
    s.text(
        "Where the time goes when a target is missed, from profiles of the server and of the publishing thread: \
         [doc/performance.md](../doc/performance.md#where-it-falls-short).",
    );
    s
}

fn targets(r: &Results) -> Vec<(String, Measured)> {
    let idle = |k: Kind, n: usize| r.idle.iter().find(|i| i.server == k && i.streams == n);
    let largest = r.idle.iter().map(|i| i.streams).max().unwrap_or(0);
    let kib = |k: Kind, n: usize| idle(k, n).map(|i| i.kib_per_stream);
    let idle_kib = kib(Kind::Redisse, largest).map(|ours| {
        let nchan = kib(Kind::Nchan, largest).map(|n| format!(" (nchan {n:.2} KiB)"));
        let at = format!("{ours:.2} KiB at {} streams", largest.cell());
        (at + &nchan.unwrap_or_default(), ours <= 3.0)
    });
    let cookie = r.cookie.iter().find(|c| c.server == Kind::Redisse);
    let cookie = cookie.and_then(|c| {
        let (with, without) = (c.kib_per_stream, kib(Kind::Redisse, c.streams)?);
        let at = format!(" at {} streams", c.streams.cell());
        let figure = vs(format!("{with:.2} KiB"), format!("{without:.2} KiB{at}"), with, without);
        Some((figure, c.opened.failed == 0 && with <= without * 1.1))
    });
    let broadcast = |k| r.broadcast.iter().find(|b| b.server == k && b.subscribers == 10_000);
    let broadcast = broadcast(Kind::Redisse).zip(broadcast(Kind::NchanRedis));
    let broadcast = broadcast.map(|(a, b)| {
        let (x, y, missing) = (a.d.latency.p99, b.d.latency.p99, a.d.missing());
        let figure = vs(format!("{x:.1} ms"), format!("{y:.1} ms"), x, y);
        (format!("{figure}, {missing} missing"), x <= 0.4 * y && missing == 0)
    });
    let saturation = |k| r.saturation.iter().map(|s| &s.run).find(|run| run.server == k);
    let saturated = saturation(Kind::Redisse).zip(saturation(Kind::Nchan));
    let deliveries = saturated.map(|(a, b)| {
        let (x, y, p99) = (a.deliveries_per_s(), b.deliveries_per_s(), a.d.latency.p99);
        let figure = vs(format!("{}/s", x.cell()), format!("{}/s", y.cell()), x, y);
        let met = x >= 3.0 * y && p99 < 100.0 && a.d.missing() == 0;
        (format!("{figure}; p99 {} ms", p99.cell()), met)
    });
    let cpu = saturated.and_then(|(a, b)| {
        let (x, y) = (a.d.server_us()?, b.d.server_us()?);
        Some((vs(format!("{x:.2} µs"), format!("{y:.2} µs"), x, y), x <= 0.3 * y))
    });
    let publish = |threads: u32, at_least: f64| {
        let p = r.publisher.as_ref()?;
        let (new, old, ratio) = match threads {
            1 => (p.new_1, p.old_1, p.ratio_1),
            _ => (p.new_8, p.old_8, p.ratio_8),
        };
        let figure = format!("{}/s vs {}/s: ratio {}", new.cell(), old.cell(), ratio.cell());
        Some((figure, ratio >= at_least))
    };
    // A smaller fleet (a quick run) says nothing of the aim.
    let fleet = r.fleet.iter().find(|f| f.streams >= 50_000 && !f.full).map(|f| {
        let (o, d, l) = (&f.opened, &f.d, &f.d.latency);
        let (ok, n, servers, failed) = (o.ok.cell(), f.streams.cell(), f.servers.len(), o.failed.cell());
        let (closed, got, owed) = (d.tally.closed.cell(), d.tally.received.cell(), d.expected.cell());
        let figure = format!("{ok} of {n} opened through {servers} servers, {failed} failed, {closed} closed; {got} of {owed} deliveries, p50 / p99 {} / {} ms", l.p50.cell(), l.p99.cell());
        let all = o.ok == f.streams as u64 && o.failed == 0 && d.tally.closed == 0;
        let delivered = d.tally.received >= d.expected && d.published.errors.is_empty();
        (figure, all && f.servers.len() == 3 && delivered)
    });
    // A smaller deploy (a quick run) says nothing of the aim.
    let deploys: Vec<_> = r.deploy.iter().filter(|d| d.streams >= 15_000).collect();
    let deploy = (deploys.len() == 2).then(|| {
        let figures = deploys.iter().map(|d| {
            let drain = d.drain.map_or("no drain".into(), |s| format!("--drain {s}"));
            let (lost, duplicated) = (d.d.missing(), d.d.tally.duplicates);
            let per = d.commands_per_reconnect().cell();
            format!("{drain}: {lost} lost, {duplicated} duplicated, {per} commands per reconnect")
        });
        let met = deploys.iter().all(|d| {
            let cheap = d.commands_per_reconnect().is_some_and(|c| c <= COMMANDS_PER_LONE_READ / 10.0);
            d.d.missing() == 0 && d.d.tally.duplicates == 0 && cheap
        });
        (figures.collect::<Vec<_>>().join("; "), met)
    });
    let one_process = idle(Kind::Redisse, 19_000).map(|i| {
        let (ok, failed, closed, alive) = (i.opened.ok, i.opened.failed, i.closed, i.alive);
        let figure = format!("{} opened, {failed} failed, {closed} closed", ok.cell());
        let met = ok == 19_000 && failed == 0 && closed == 0 && alive;
        (format!("{figure}, server alive: {}", alive.cell()), met)
    });
    let deploy_aim = "deploy: a restart of 1 of 3 servers under load, with and without --drain, loses and doubles no \
                      event; history commands per reconnect at most a tenth of a lone read's";
    [
        ("RSS per idle stream at most 3.0 KiB", idle_kib),
        ("RSS per idle stream with a 6 KB session cookie within 10 % of one without", cookie),
        ("broadcast p99 to 10k streams at most 0.4 of nchan+redis's", broadcast),
        ("fan-out at saturation: at least 3x nchan's deliveries, p99 < 100 ms", deliveries),
        ("server CPU per delivery (fan-out at saturation) at most 0.3 of nchan's", cpu),
        ("Redisse.publish single-threaded at least 3.5x the 0.4 way", publish(1, 3.5)),
        ("Redisse.publish with 8 threads at least 10x the 0.4 way", publish(8, 10.0)),
        ("fleet: 50,000 streams through nginx to 3 servers, 0 failed, every broadcast event delivered", fleet),
        (deploy_aim, deploy),
        ("19k streams in one server process, no failure", one_process),
    ]
    .map(|(aim, measured)| (aim.to_string(), measured))
    .into()
}

/// `a vs b: ratio a / b`.
fn vs(a: String, b: String, x: f64, y: f64) -> String {
    format!("{a} vs {b}: ratio {}", ratio(Some(x), Some(y)))
}

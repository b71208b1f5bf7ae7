//! The chart: delivery latency by scenario and server, and RSS per idle
//! stream, as gnuplot data and a script, rendered to report.png.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use super::cell::Cell;
use super::Measured;
use crate::results::{LatencySummary, Record};
use crate::servers::Kind;

/// Writes the chart's data and script into `dir` and runs gnuplot there.
pub fn chart(records: &[Record], dir: &Path) -> Result<(), String> {
    let m = Measured::by_scenario(records);
    let mut latency = String::from("label p50 p95 p99\n");
    // One bar group: the percentiles of a record, floored for the log scale.
    let mut bars = |label: String, l: &LatencySummary| {
        let floor = |x: f64| if x.is_finite() { x.max(0.01) } else { 0.01 };
        let [p50, p95, p99] = [l.p50_ms, l.p95_ms, l.p99_ms].map(floor);
        let _ = writeln!(latency, "\"{label}\" {p50} {p95} {p99}");
    };
    for r in &m.broadcast {
        let label = format!(
            "bc {}/{}ms {}",
            crate::scenarios::thousands(r.subscribers),
            r.interval_ms.cell(),
            r.server.cell()
        );
        bars(label, &r.latency);
    }
    for r in &m.fleet {
        let label = format!("fleet {} via nginx", crate::scenarios::thousands(r.streams));
        bars(label, &r.latency);
    }
    let mut rates: Vec<u64> = m.fanout.iter().map(|r| r.offered_per_s).collect();
    rates.sort_unstable();
    rates.dedup();
    // The first step (every server ran it) and the target rate.
    let mut chosen: Vec<u64> = rates.iter().copied().take(1).collect();
    if rates.contains(&3000) {
        chosen.push(3000);
    } else if let Some(r) = rates.get(1) {
        chosen.push(*r);
    }
    for rate in chosen {
        for r in m.fanout.iter().filter(|r| r.offered_per_s == rate) {
            bars(format!("fan {}/s {}", rate, r.server.cell()), &r.latency);
        }
    }
    let mut counts: Vec<usize> = m.idle.iter().map(|r| r.streams).collect();
    counts.sort_unstable();
    counts.dedup();
    let mut rss = String::from("server");
    for n in &counts {
        let _ = write!(rss, " \"{} streams\"", n.cell());
    }
    rss.push('\n');
    for k in Kind::ALL {
        let _ = write!(rss, "\"{}\"", k.name());
        for n in &counts {
            let v = m.idle_of(k, *n).map_or(f64::NAN, |r| r.kib_per_stream);
            let _ = write!(
                rss,
                " {}",
                if v.is_finite() {
                    format!("{v:.2}")
                } else {
                    "NaN".into()
                }
            );
        }
        rss.push('\n');
    }
    fs::write(dir.join("latency.dat"), &latency).map_err(|e| e.to_string())?;
    fs::write(dir.join("rss.dat"), &rss).map_err(|e| e.to_string())?;
    let mut rss_plot = String::from("plot 'rss.dat' using 2:xtic(1) title columnheader(2)");
    for i in 1..counts.len() {
        let _ = write!(
            rss_plot,
            ", '' using {} title columnheader({})",
            i + 2,
            i + 2
        );
    }
    if counts.is_empty() {
        rss_plot = "plot 0 notitle".into();
    }
    let latency_plot = if latency.lines().count() > 1 {
        "plot 'latency.dat' using 2:xtic(1) title 'p50', '' using 3 title 'p95', '' using 4 title 'p99'"
    } else {
        "plot 1 notitle"
    };
    let script = format!(
        "set terminal pngcairo size 1500,780 font ',10' noenhanced\n\
         set bmargin 10\n\
         set output 'report.png'\n\
         set multiplot layout 1,2 title 'redisse vs nchan (bin/bench)'\n\
         set style data histograms\n\
         set style histogram clustered gap 1\n\
         set style fill solid 0.85 border -1\n\
         set boxwidth 0.9\n\
         set grid ytics\n\
         set key top left\n\
         set xtics rotate by -45 scale 0 font ',9'\n\
         set title 'Delivery latency by scenario and server (ms, log scale)'\n\
         set logscale y\n\
         set ylabel 'ms'\n\
         {latency_plot}\n\
         unset logscale y\n\
         set yrange [0:*]\n\
         set title 'Server RSS per idle stream (KiB, lower is better)'\n\
         set ylabel 'KiB per stream'\n\
         set xtics rotate by 0 font ',10'\n\
         {rss_plot}\n\
         unset multiplot\n"
    );
    fs::write(dir.join("chart.gp"), script).map_err(|e| e.to_string())?;
    let status = Command::new("gnuplot")
        .arg("chart.gp")
        .current_dir(dir)
        .status()
        .map_err(|e| format!("cannot run gnuplot: {e}"))?;
    if !status.success() {
        return Err(format!("gnuplot failed ({status})"));
    }
    Ok(())
}

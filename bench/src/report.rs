//! The Markdown report, the chart's data and gnuplot script, from the
//! scenarios' records.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::servers::Kind;

pub struct Meta {
    pub quick: bool,
    pub date: String,
    pub commit: String,
    pub machine: String,
    pub versions: String,
    pub heartbeat: u32,
    pub sources: String,
    pub duration_s: f64,
}

impl Meta {
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "quick": self.quick, "date": self.date, "commit": self.commit, "machine": self.machine,
            "versions": self.versions, "heartbeat": self.heartbeat, "sources": self.sources, "duration_s": self.duration_s,
        })
    }

    pub fn from_json(v: &Value) -> Meta {
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        Meta {
            quick: v["quick"].as_bool().unwrap_or(false),
            date: s("date"),
            commit: s("commit"),
            machine: s("machine"),
            versions: s("versions"),
            heartbeat: v["heartbeat"].as_u64().unwrap_or(1) as u32,
            sources: s("sources"),
            duration_s: v["duration_s"].as_f64().unwrap_or(0.0),
        }
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn num(v: &Value) -> String {
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if n.is_f64() && x.fract() != 0.0 {
                if x.abs() >= 100.0 {
                    format!("{x:.0}")
                } else if x.abs() >= 10.0 {
                    format!("{x:.1}")
                } else {
                    format!("{x:.2}")
                }
            } else {
                group(x as i64)
            }
        }
        Value::Null => "-".into(),
        Value::Bool(b) => {
            if *b {
                "yes".into()
            } else {
                "no".into()
            }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn group(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn mib(kib: &Value) -> String {
    format!("{:.1}", f(kib) / 1024.0)
}

fn errors(v: &Value) -> String {
    match v.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", num(v)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

fn by<'a>(records: &'a [Value], scenario: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["scenario"] == scenario && r.get("error").is_none())
        .collect()
}

fn find(records: &[Value], pred: impl Fn(&Value) -> bool) -> Option<&Value> {
    records.iter().find(|r| r.get("error").is_none() && pred(r))
}

struct Target {
    what: &'static str,
    figure: String,
    met: Option<bool>,
}

fn targets(records: &[Value]) -> Vec<Target> {
    let mut out = Vec::new();
    // RSS per idle stream, at the largest count measured.
    let largest = by(records, "idle")
        .iter()
        .filter_map(|r| r["streams"].as_u64())
        .max();
    let idle = |server: &str| {
        largest.and_then(|n| {
            find(records, |r| {
                r["scenario"] == "idle" && r["server"] == server && r["streams"] == n
            })
        })
    };
    match (idle("redisse"), idle("nchan")) {
        (Some(ours), Some(theirs)) => {
            let (a, b) = (f(&ours["kib_per_stream"]), f(&theirs["kib_per_stream"]));
            out.push(Target {
                what: "RSS per idle stream at most nchan's (aim 6 KiB)",
                figure: format!(
                    "{a:.2} KiB vs nchan {b:.2} KiB at {} streams: ratio {} ; {} 6 KiB",
                    group(largest.unwrap_or(0) as i64),
                    ratio(a, b),
                    if a <= 6.0 { "within" } else { "above" }
                ),
                met: Some(a <= b),
            });
        }
        _ => out.push(Target {
            what: "RSS per idle stream at most nchan's (aim 6 KiB)",
            figure: "not measured".into(),
            met: None,
        }),
    }
    match find(records, |r| {
        r["scenario"] == "idle" && r["server"] == "redisse" && r["streams"] == 19_000
    }) {
        Some(r) => {
            let ok = r["failed"] == 0
                && r["closed"] == 0
                && r["opened"] == 19_000
                && r["server_alive"] == true;
            out.push(Target {
                what: "19k streams in one server process, no failure",
                figure: format!(
                    "{} opened, {} failed, {} closed, server alive: {}",
                    num(&r["opened"]),
                    num(&r["failed"]),
                    num(&r["closed"]),
                    num(&r["server_alive"])
                ),
                met: Some(ok),
            });
        }
        None => out.push(Target {
            what: "19k streams in one server process, no failure",
            figure: "not measured (quick run)".into(),
            met: None,
        }),
    }
    let bc = |server: &str| {
        find(records, |r| {
            r["scenario"] == "broadcast"
                && r["server"] == server
                && r["subscribers"] == 10_000
                && r["interval_ms"] == 250
        })
    };
    match (bc("redisse"), bc("nchan+redis")) {
        (Some(ours), Some(theirs)) => {
            let (a, b) = (
                f(&ours["latency"]["p99_ms"]),
                f(&theirs["latency"]["p99_ms"]),
            );
            out.push(Target {
                what: "broadcast p99, 10k subscribers (250 ms apart), at most 1/3 of nchan+redis",
                figure: format!(
                    "{a:.2} ms vs nchan+redis {b:.2} ms: ratio {} (missing: {})",
                    ratio(a, b),
                    num(&ours["missing"])
                ),
                met: Some(a * 3.0 <= b && ours["missing"] == 0),
            });
        }
        _ => out.push(Target {
            what: "broadcast p99, 10k subscribers (250 ms apart), at most 1/3 of nchan+redis",
            figure: "not measured (quick run)".into(),
            met: None,
        }),
    }
    let fan = find(records, |r| {
        r["scenario"] == "fanout" && r["server"] == "redisse" && r["offered_per_s"] == 3000
    });
    let best = by(records, "fanout")
        .iter()
        .filter(|r| r["server"] == "redisse" && r["sustained"] == true)
        .filter_map(|r| r["offered_per_s"].as_u64())
        .max();
    match fan {
        Some(r) => out.push(Target {
            what: "fan-out: 3,000 publishes/s to 1k subscribers on 10 channels, no loss, p99 < 100 ms",
            figure: format!(
                "at 3,000/s: {} publishes/s, {} lost, p99 {} ms; highest sustained step {}",
                num(&r["publishes_per_s"]),
                num(&r["lost"]),
                num(&r["latency"]["p99_ms"]),
                best.map_or("none".into(), |b| format!("{}/s", group(b as i64)))
            ),
            met: Some(r["sustained"] == true),
        }),
        None => out.push(Target {
            what: "fan-out: 3,000 publishes/s to 1k subscribers on 10 channels, no loss, p99 < 100 ms",
            figure: match best {
                Some(b) => format!("the 3,000/s step was not run; highest sustained step {}/s", group(b as i64)),
                None => "not measured".into(),
            },
            met: None,
        }),
    }
    match find(records, |r| r["scenario"] == "publisher") {
        Some(r) => out.push(Target {
            what: "publisher at least 3x the 0.4 way, single-threaded",
            figure: format!(
                "{}/s vs {}/s: ratio {}",
                num(&r["new_1"]),
                num(&r["old_1"]),
                num(&r["ratio_1"])
            ),
            met: Some(f(&r["ratio_1"]) >= 3.0),
        }),
        None => out.push(Target {
            what: "publisher at least 3x the 0.4 way, single-threaded",
            figure: "not measured".into(),
            met: None,
        }),
    }
    out
}

pub fn markdown(records: &[Value], meta: &Meta, failures: &[String]) -> String {
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

    let _ = writeln!(w, "## Targets\n");
    let _ = writeln!(w, "| target | figure | met? |\n|---|---|---|");
    for t in targets(records) {
        let met = match t.met {
            Some(true) => "**met**",
            Some(false) => "**missed**",
            None => "-",
        };
        let _ = writeln!(w, "| {} | {} | {met} |", t.what, t.figure);
    }
    let _ = writeln!(w);

    // 1. idle
    let idle = by(records, "idle");
    if !idle.is_empty() {
        let _ = writeln!(w, "## 1. Idle capacity\n");
        let _ = writeln!(
            w,
            "Streams spread over {} channels, opened 100 at a time per subscriber process; then {} with heartbeats every {} s.\n",
            num(&idle[0]["channels"]),
            idle[0]["window_s"].as_f64().map_or("a window".into(), |s| format!("a {s:.0} s window")),
            meta.heartbeat
        );
        let _ = writeln!(w, "| server | streams | opened | failed | closed | RSS before (MiB) | RSS with (MiB) | KiB / stream | fds | server CPU % | client CPU % | redis CPU % | other CPU % | heartbeat bytes/s received |");
        let _ = writeln!(
            w,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &idle {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                num(&r["server"]),
                num(&r["streams"]),
                num(&r["opened"]),
                num(&r["failed"]),
                if errors(&r["errors"]).is_empty() {
                    String::new()
                } else {
                    format!(" ({})", errors(&r["errors"]))
                },
                num(&r["closed"]),
                mib(&r["rss_before_kib"]),
                mib(&r["rss_with_kib"]),
                num(&r["kib_per_stream"]),
                num(&r["fds_with"]),
                num(&r["server_cpu_pct"]),
                num(&r["client_cpu_pct"]),
                num(&r["redis_cpu_pct"]),
                num(&r["other_cpu_pct"]),
                num(&r["heartbeat_bytes_per_s"]),
            );
        }
        let counts: Vec<u64> = {
            let mut c: Vec<u64> = idle.iter().filter_map(|r| r["streams"].as_u64()).collect();
            c.dedup();
            c
        };
        let _ = writeln!(w, "\nRatios (redisse / other; lower is better):\n");
        let _ = writeln!(w, "| streams | KiB per stream / nchan | / nchan+redis | server CPU / nchan | / nchan+redis |\n|---:|---:|---:|---:|---:|");
        for n in counts {
            let get = |s: &str, k: &str| {
                find(records, |r| {
                    r["scenario"] == "idle" && r["server"] == s && r["streams"] == n
                })
                .map_or(f64::NAN, |r| f(&r[k]))
            };
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} |",
                group(n as i64),
                ratio(
                    get("redisse", "kib_per_stream"),
                    get("nchan", "kib_per_stream")
                ),
                ratio(
                    get("redisse", "kib_per_stream"),
                    get("nchan+redis", "kib_per_stream")
                ),
                ratio(
                    get("redisse", "server_cpu_pct"),
                    get("nchan", "server_cpu_pct")
                ),
                ratio(
                    get("redisse", "server_cpu_pct"),
                    get("nchan+redis", "server_cpu_pct")
                ),
            );
        }
        let _ = writeln!(w);
    }

    // 2. broadcast
    let bc = by(records, "broadcast");
    if !bc.is_empty() {
        let _ = writeln!(w, "## 2. Broadcast\n");
        let _ = writeln!(
            w,
            "All subscribers on one channel; events published at a fixed pace.\n"
        );
        let _ = writeln!(w, "| case | server | streams opened | received / expected | missing | p50 ms | p95 ms | p99 ms | max ms | server CPU % | client CPU % | redis CPU % | other CPU % |");
        let _ = writeln!(
            w,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &bc {
            let l = &r["latency"];
            let e = errors(&r["errors"]);
            let _ = writeln!(
                w,
                "| {} | {} | {}{} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                num(&r["case"]),
                num(&r["server"]),
                num(&r["opened"]),
                if e.is_empty() {
                    String::new()
                } else {
                    format!(" ({} failed: {e})", num(&r["failed"]))
                },
                num(&r["received"]),
                num(&r["expected"]),
                num(&r["missing"]),
                num(&l["p50_ms"]),
                num(&l["p95_ms"]),
                num(&l["p99_ms"]),
                num(&l["max_ms"]),
                num(&r["server_cpu_pct"]),
                num(&r["client_cpu_pct"]),
                num(&r["redis_cpu_pct"]),
                num(&r["other_cpu_pct"]),
            );
        }
        let _ = writeln!(w, "\nRatios of p99 (redisse / other; lower is better):\n");
        let _ = writeln!(w, "| case | / nchan | / nchan+redis |\n|---|---:|---:|");
        let mut cases: Vec<String> = bc
            .iter()
            .filter_map(|r| r["case"].as_str().map(String::from))
            .collect();
        cases.dedup();
        for c in cases {
            let p99 = |s: &str| {
                find(records, |r| {
                    r["scenario"] == "broadcast" && r["server"] == s && r["case"] == c.as_str()
                })
                .map_or(f64::NAN, |r| f(&r["latency"]["p99_ms"]))
            };
            let _ = writeln!(
                w,
                "| {c} | {} | {} |",
                ratio(p99("redisse"), p99("nchan")),
                ratio(p99("redisse"), p99("nchan+redis"))
            );
        }
        let _ = writeln!(w);
    }

    // 3. fan-out
    let fan = by(records, "fanout");
    if !fan.is_empty() {
        let _ = writeln!(w, "## 3. Fan-out throughput\n");
        let _ = writeln!(
            w,
            "{} streams over {} channels; publishes spread evenly over the channels at each offered rate, up to the first step that loses \
             events, passes 100 ms p99, or cannot publish at 80 % of the offered rate. *sustained*: no loss, p99 < 100 ms and at least 95 % \
             of the offered rate published.\n",
            num(&fan[0]["streams"]),
            num(&fan[0]["channels"])
        );
        let _ = writeln!(w, "| server | offered /s | publishes /s | deliveries /s | lost | closed | p50 ms | p99 ms | max ms | server CPU % | client CPU % | redis CPU % | other CPU % | sustained |");
        let _ = writeln!(
            w,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for r in &fan {
            let l = &r["latency"];
            let failed = if r["publish_failed"] != 0 {
                format!(
                    " ({} failed: {})",
                    num(&r["publish_failed"]),
                    errors(&r["publish_errors"])
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                w,
                "| {} | {} | {}{failed} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                num(&r["server"]),
                num(&r["offered_per_s"]),
                num(&r["publishes_per_s"]),
                num(&r["deliveries_per_s"]),
                num(&r["lost"]),
                if r["closed"].as_u64().unwrap_or(0) > 0 {
                    format!("{} ({})", num(&r["closed"]), errors(&r["close_reasons"]))
                } else {
                    num(&r["closed"])
                },
                num(&l["p50_ms"]),
                num(&l["p99_ms"]),
                num(&l["max_ms"]),
                num(&r["server_cpu_pct"]),
                num(&r["client_cpu_pct"]),
                num(&r["redis_cpu_pct"]),
                num(&r["other_cpu_pct"]),
                num(&r["sustained"]),
            );
        }
        let best = |s: &str| {
            fan.iter()
                .filter(|r| r["server"] == s && r["sustained"] == true)
                .filter_map(|r| r["offered_per_s"].as_u64())
                .max()
        };
        let _ = writeln!(w, "\nHighest sustained rate (publishes/s):\n");
        let _ = writeln!(
            w,
            "| server | highest sustained | redisse / this |\n|---|---:|---:|"
        );
        let ours = best("redisse").map_or(f64::NAN, |b| b as f64);
        for k in Kind::ALL {
            let b = best(k.name());
            let _ = writeln!(
                w,
                "| {} | {} | {} |",
                k.name(),
                b.map_or("none".into(), |b| group(b as i64)),
                ratio(ours, b.map_or(f64::NAN, |b| b as f64))
            );
        }
        let _ = writeln!(w);
    }

    // 4. avalanche
    let ava = by(records, "avalanche");
    if !ava.is_empty() {
        let _ = writeln!(w, "## 4. Connection avalanche\n");
        let _ = writeln!(w, "Every stream opened at once (over {} channels); connect time runs from `connect()` until the response head is read.\n", 1000);
        let _ = writeln!(w, "| server | streams | opened | failed | p50 ms | p95 ms | p99 ms | max ms | all answered in s | listen backlog | SYNs dropped (ListenDrops) | server CPU % | client CPU % | other CPU % |");
        let _ = writeln!(
            w,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &ava {
            let e = errors(&r["errors"]);
            let _ = writeln!(
                w,
                "| {} | {} | {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                num(&r["server"]),
                num(&r["streams"]),
                num(&r["opened"]),
                num(&r["failed"]),
                if e.is_empty() {
                    String::new()
                } else {
                    format!(" ({e})")
                },
                num(&r["connect_p50_ms"]),
                num(&r["connect_p95_ms"]),
                num(&r["connect_p99_ms"]),
                num(&r["connect_max_ms"]),
                num(&r["all_opened_s"]),
                num(&r["listen_backlog"]),
                num(&r["listen_drops"]),
                num(&r["server_cpu_pct"]),
                num(&r["client_cpu_pct"]),
                num(&r["other_cpu_pct"]),
            );
        }
        let p95 = |s: &str| {
            find(records, |r| {
                r["scenario"] == "avalanche" && r["server"] == s
            })
            .map_or(f64::NAN, |r| f(&r["connect_p95_ms"]))
        };
        let _ = writeln!(
            w,
            "\nRatio of connect p95 (redisse / other): nchan {}, nchan+redis {}.\n",
            ratio(p95("redisse"), p95("nchan")),
            ratio(p95("redisse"), p95("nchan+redis"))
        );
    }

    // 5. publisher
    if let Some(r) = find(records, |r| r["scenario"] == "publisher") {
        let _ = writeln!(w, "## 5. Publisher (Ruby)\n");
        let _ = writeln!(
            w,
            "`ruby -I lib bench/publisher.rb` for {} s per mode: `Redisse.publish` (one script call, the GVL released while waiting) against \
             the 0.4 way (INCR, PUBLISH, ZADD, ZREMRANGEBYRANK through one shared `redis` gem client {}, as 0.4 did).\n",
            num(&r["seconds"]),
            r["redis_rb"].as_str().map(|v| format!("(redis-rb {v})")).unwrap_or_default()
        );
        let _ = writeln!(
            w,
            "| threads | Redisse.publish /s | 0.4 way /s | ratio |\n|---:|---:|---:|---:|"
        );
        for t in [1, 8] {
            let _ = writeln!(
                w,
                "| {t} | {} | {} | {} |",
                num(&r[format!("new_{t}")]),
                num(&r[format!("old_{t}")]),
                num(&r[format!("ratio_{t}")])
            );
        }
        let _ = writeln!(w);
    }

    if let Some(p) = find(records, |r| r["scenario"] == "profile") {
        let _ = writeln!(w, "## Profile of redisse under fan-out\n");
        let _ = writeln!(
            w,
            "`perf record -e cpu-clock -g` on the server for one step at {}/s ({} deliveries, p99 {} ms while profiled); self time by symbol:\n",
            num(&p["rate"]),
            num(&p["received"]),
            num(&p["latency"]["p99_ms"])
        );
        let _ = writeln!(w, "```");
        for line in p["top"].as_array().into_iter().flatten() {
            let _ = writeln!(w, "{}", line.as_str().unwrap_or(""));
        }
        let _ = writeln!(w, "```\n");
    }

    let notes = observations(records);
    if !notes.is_empty() {
        let _ = writeln!(w, "## Observations\n");
        for n in notes {
            let _ = writeln!(w, "- {n}");
        }
        let _ = writeln!(w);
    }

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

/// Remarks drawn from the figures.
fn observations(records: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    let ava = |s: &str| {
        find(records, |r| {
            r["scenario"] == "avalanche" && r["server"] == s
        })
    };
    if let (Some(ours), Some(theirs)) = (ava("redisse"), ava("nchan")) {
        if f(&ours["listen_backlog"]) < f(&theirs["listen_backlog"])
            && f(&ours["listen_drops"]) > f(&theirs["listen_drops"])
        {
            out.push(format!(
                "Avalanche: redisse listens with an accept queue of {} (nginx: {}). With {} connections arriving at once the kernel dropped {} SYNs \
                 (nginx: {}); clients retry a dropped SYN after 1 s, then 3 s, 7 s..., which is why redisse's connect p50 is {} ms and p95 {} ms \
                 while its CPU stays low ({} %). A larger listen backlog (e.g. 1024 or more, the kernel caps it at net.core.somaxconn) would remove most of it.",
                num(&ours["listen_backlog"]), num(&theirs["listen_backlog"]), num(&ours["streams"]), num(&ours["listen_drops"]),
                num(&theirs["listen_drops"]), num(&ours["connect_p50_ms"]), num(&ours["connect_p95_ms"]), num(&ours["server_cpu_pct"])
            ));
        }
    }
    for r in by(records, "fanout") {
        let last = by(records, "fanout")
            .into_iter().rfind(|x| x["server"] == r["server"]);
        if last.is_some_and(|l| std::ptr::eq(l, r)) {
            let total = f(&r["server_cpu_pct"]) + f(&r["client_cpu_pct"]) + f(&r["redis_cpu_pct"]);
            if total > 170.0 {
                out.push(format!(
                    "Fan-out, {} at {}/s (its last step): server {} % + client {} % + redis {} % of a core = {:.0} % of the 2 cores: the machine is saturated, \
                     so this step measures the shared machine as much as the server.",
                    num(&r["server"]), num(&r["offered_per_s"]), num(&r["server_cpu_pct"]), num(&r["client_cpu_pct"]), num(&r["redis_cpu_pct"]), total
                ));
            }
        }
    }
    let bc = |s: &str| {
        find(records, |r| {
            r["scenario"] == "broadcast" && r["server"] == s && r["subscribers"] == 10_000
        })
    };
    if let (Some(ours), Some(theirs)) = (bc("redisse"), bc("nchan+redis")) {
        out.push(format!(
            "Broadcast to 10k: each event is 10,000 socket writes. redisse's median delivery is {} ms and its p99 {} ms (nchan+redis: {} / {} ms): \
             the last subscribers of a burst most likely wait for the writes to all the others (the server and the client share 2 cores), so the p99 is close to the time one event takes to reach every stream.",
            num(&ours["latency"]["p50_ms"]), num(&ours["latency"]["p99_ms"]), num(&theirs["latency"]["p50_ms"]), num(&theirs["latency"]["p99_ms"])
        ));
    }
    if !by(records, "fanout").is_empty() || !by(records, "broadcast").is_empty() {
        out.push(
            "nchan writes events to its subscriber sockets without TCP_NODELAY (strace of the worker: only the publisher's keep-alive \
             connection gets it), so when two events go to a stream within one round trip the second can wait for the client's delayed \
             ACK (up to 40 ms). Its tail latencies vary from run to run for that reason; redisse sets TCP_NODELAY on every connection."
                .to_string(),
        );
    }
    if let Some(r) = find(records, |r| r["scenario"] == "publisher") {
        out.push(format!(
            "Publisher: single-threaded publishing is bound by round trips to Redis ({:.0} µs per `Redisse.publish`, {:.0} µs per 0.4 publish of four \
             commands), so the absolute rates move with the machine's wake-up latency from run to run; the ratio is the stable figure. \
             With 8 threads `Redisse.publish` scales ({}/s) because the extension releases the GVL, while the 0.4 way stays serialized on its one client.",
            1e6 / f(&r["new_1"]), 1e6 / f(&r["old_1"]), num(&r["new_8"])
        ));
    }
    out
}

/// Writes the chart's data and script into `dir` and runs gnuplot there.
pub fn chart(records: &[Value], dir: &Path) -> Result<(), String> {
    let mut latency = String::from("label p50 p95 p99\n");
    // One bar group: the percentiles of a record, floored for the log scale.
    let mut bars = |label: String, r: &Value| {
        let floor = |x: f64| if x.is_finite() { x.max(0.01) } else { 0.01 };
        let l = &r["latency"];
        let [p50, p95, p99] = ["p50_ms", "p95_ms", "p99_ms"].map(|p| floor(f(&l[p])));
        let _ = writeln!(latency, "\"{label}\" {p50} {p95} {p99}");
    };
    for r in by(records, "broadcast") {
        let subscribers = r["subscribers"].as_u64().unwrap_or(0) as usize;
        let label = format!(
            "bc {}/{}ms {}",
            crate::scenarios::thousands(subscribers),
            num(&r["interval_ms"]),
            num(&r["server"])
        );
        bars(label, r);
    }
    let mut rates: Vec<u64> = by(records, "fanout")
        .iter()
        .filter_map(|r| r["offered_per_s"].as_u64())
        .collect();
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
        for r in by(records, "fanout")
            .into_iter()
            .filter(|r| r["offered_per_s"] == rate)
        {
            bars(format!("fan {}/s {}", rate, num(&r["server"])), r);
        }
    }
    let mut counts: Vec<u64> = by(records, "idle")
        .iter()
        .filter_map(|r| r["streams"].as_u64())
        .collect();
    counts.sort_unstable();
    counts.dedup();
    let mut rss = String::from("server");
    for n in &counts {
        let _ = write!(rss, " \"{} streams\"", group(*n as i64));
    }
    rss.push('\n');
    for k in Kind::ALL {
        let _ = write!(rss, "\"{}\"", k.name());
        for n in &counts {
            let v = find(records, |r| {
                r["scenario"] == "idle" && r["server"] == k.name() && r["streams"] == *n
            })
            .map_or(f64::NAN, |r| f(&r["kib_per_stream"]));
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

//! `redisse-bench`: the load generator and benchmark harness.
//!
//! - `redisse-bench run [--quick] --out DIR ...` starts Redis and, scenario
//!   by scenario, each server under test (redisse, nchan, nchan with Redis;
//!   for the fleet, several redisse servers behind one nginx), drives them
//!   with subscriber processes and a publisher, and writes `REPORT.md`,
//!   `report.png` and `results.json` into DIR.
//! - `redisse-bench subscribe ...` is one subscriber process (see child.rs).
//!
//! All traffic goes to 127.0.0.0/8; every wait has a deadline.

mod child;
mod fleet;
mod front;
mod hist;
mod http;
mod publish;
mod report;
mod results;
mod scenarios;
mod servers;
mod sse;
mod sys;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use crate::results::{Meta, Results};
use crate::scenarios::{Bench, FleetSize, Sizes};
use crate::servers::{Env, Kind};

const USAGE: &str = "usage:
  redisse-bench run [--quick] [--out DIR] [--root DIR] [--redisse-bin PATH] [--nchan-conf PATH] [--fleet-conf PATH]
                    [--scenarios idle,broadcast,fanout,avalanche,publisher,fleet] [--servers redisse,nchan,nchan-redis]
                    [--heartbeat SECONDS] [--profile] [--fanout-rates 500,1000,...] [--step-seconds S]
                    [--fleet-streams 50000,full] [--fleet-events N] [--fleet-interval-ms MS]
  redisse-bench report --out DIR      (writes DIR/REPORT.md and DIR/report.png again from DIR/results.json)
  redisse-bench subscribe --server ADDR:PORT --path TEMPLATE --channels N --first I --count N
                    [--sources 127.0.0.2-127.0.0.9] [--concurrency N] [--connect-timeout S] [--max-seconds S]";

const SCENARIOS: [&str; 6] = [
    "idle",
    "broadcast",
    "fanout",
    "avalanche",
    "publisher",
    "fleet",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("subscribe") => subscribe(&args[1..]),
        Some("run") => run(&args[1..]),
        Some("report") => report_only(&args[1..]),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("redisse-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// `--name value` pairs and `--flag`s.
struct Args {
    pairs: Vec<(String, Option<String>)>,
}

impl Args {
    fn parse(args: &[String], flags: &[&str]) -> Result<Args, String> {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let name = a
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {a:?}\n{USAGE}"))?;
            if flags.contains(&name) {
                pairs.push((name.to_string(), None));
            } else {
                let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                pairs.push((name.to_string(), Some(value.clone())));
            }
        }
        Ok(Args { pairs })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    fn flag(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    fn parsed<T: std::str::FromStr>(&self, name: &str, default: Option<T>) -> Result<T, String> {
        match self.get(name) {
            Some(v) => v.parse().map_err(|_| format!("invalid --{name} {v:?}")),
            None => default.ok_or_else(|| format!("--{name} is required\n{USAGE}")),
        }
    }
}

fn subscribe(args: &[String]) -> Result<i32, String> {
    let a = Args::parse(args, &[])?;
    let options = child::Options {
        server: a.parsed("server", None)?,
        path_template: a.get("path").ok_or("--path is required")?.to_string(),
        channels: a.parsed("channels", Some(1))?,
        first: a.parsed("first", Some(0))?,
        count: a.parsed("count", None)?,
        sources: match a.get("sources") {
            Some(s) => fleet::parse_sources(s)?,
            None => Vec::new(),
        },
        concurrency: a.parsed("concurrency", Some(0))?,
        connect_timeout: Duration::from_secs_f64(a.parsed("connect-timeout", Some(30.0))?),
        max_seconds: a.parsed("max-seconds", Some(600.0))?,
    };
    if !options.server.ip().is_loopback() {
        return Err("--server must be a loopback address (127.0.0.0/8)".into());
    }
    Ok(child::run(options))
}

fn capture(cmd: &str, args: &[&str]) -> String {
    match Command::new(cmd).args(args).output() {
        Ok(o) => {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        }
        Err(_) => "?".into(),
    }
}

fn report_only(args: &[String]) -> Result<i32, String> {
    let a = Args::parse(args, &[])?;
    let out = PathBuf::from(a.get("out").ok_or("--out is required")?);
    let text = std::fs::read_to_string(out.join("results.json"))
        .map_err(|e| format!("cannot read results.json: {e}"))?;
    let results: Results = serde_json::from_str(&text).map_err(|e| format!("results.json: {e}"))?;
    let mut failures = results.failures;
    if let Err(e) = report::chart(&results.records, &out) {
        failures.push(format!("chart: {e}"));
    }
    let md = report::markdown(&results.records, &results.meta, &failures);
    std::fs::write(out.join("REPORT.md"), &md).map_err(|e| e.to_string())?;
    println!("{md}");
    Ok(if failures.is_empty() { 0 } else { 1 })
}

fn run(args: &[String]) -> Result<i32, String> {
    let a = Args::parse(args, &["quick", "profile"])?;
    let quick = a.flag("quick");
    let root: PathBuf = match a.get("root") {
        Some(r) => r.into(),
        None => std::env::current_dir().map_err(|e| e.to_string())?,
    };
    let out: PathBuf = match a.get("out") {
        Some(o) => o.into(),
        None => std::env::temp_dir().join(format!("redisse-bench-{}", std::process::id())),
    };
    let work = out.join("work");
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let scenarios: Vec<String> = a
        .get("scenarios")
        .map_or(SCENARIOS.iter().map(|s| s.to_string()).collect(), |s| {
            s.split(',').map(String::from).collect()
        });
    if let Some(bad) = scenarios.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
        return Err(format!("unknown scenario {bad:?}"));
    }
    let targets: Vec<Kind> = match a.get("servers") {
        Some(s) => s
            .split(',')
            .map(|n| Kind::parse(n).ok_or(format!("unknown server {n:?}")))
            .collect::<Result<_, _>>()?,
        None => Kind::ALL.to_vec(),
    };
    let heartbeat: u32 = a.parsed("heartbeat", Some(1))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let limit = sys::raise_nofile();
    let mut sizes = if quick { Sizes::quick() } else { Sizes::full() };
    if let Some(rates) = a.get("fanout-rates") {
        sizes.fanout_rates = rates
            .split(',')
            .map(|r| r.parse().map_err(|_| format!("invalid rate {r:?}")))
            .collect::<Result<_, _>>()?;
    }
    if let Some(step) = a.get("step-seconds") {
        sizes.fanout_step = Duration::from_secs_f64(
            step.parse()
                .map_err(|_| format!("invalid --step-seconds {step:?}"))?,
        );
    }
    if let Some(list) = a.get("fleet-streams") {
        sizes.fleet_sizes = list
            .split(',')
            .map(|n| FleetSize::parse(n).ok_or(format!("invalid --fleet-streams {n:?}")))
            .collect::<Result<_, _>>()?;
    }
    if let Some(n) = a.get("fleet-events") {
        sizes.fleet_events = n
            .parse()
            .map_err(|_| format!("invalid --fleet-events {n:?}"))?;
    }
    if let Some(ms) = a.get("fleet-interval-ms") {
        sizes.fleet_interval = Duration::from_millis(
            ms.parse()
                .map_err(|_| format!("invalid --fleet-interval-ms {ms:?}"))?,
        );
    }
    let sources = fleet::source_addresses(sizes.sources);
    let started = Instant::now();

    let (mut redis, redis_port) = servers::start_redis(&work)?;
    let env = Env {
        work: work.clone(),
        redisse_bin: a
            .get("redisse-bin")
            .map_or(root.join("target/release/redisse"), PathBuf::from),
        nchan_conf: a
            .get("nchan-conf")
            .map_or(root.join("bench/nchan/nginx.conf"), PathBuf::from),
        fleet_conf: a
            .get("fleet-conf")
            .map_or(root.join("bench/fleet/nginx.conf"), PathBuf::from),
        heartbeat,
        redis_port,
    };
    eprintln!("bench: {} run, open-file limit {limit}, redis-server on port {redis_port}, work files in {}", if quick { "quick" } else { "full" }, work.display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut bench = Bench::new(
        env,
        exe,
        root.clone(),
        sizes,
        targets,
        redis.pid(),
        a.flag("profile"),
    );
    runtime.block_on(async {
        for s in &scenarios {
            match s.as_str() {
                "idle" => bench.idle().await,
                "broadcast" => bench.broadcast().await,
                "fanout" => bench.fanout().await,
                "avalanche" => bench.avalanche().await,
                "publisher" => bench.publisher().await,
                "fleet" => bench.fleet().await,
                _ => {}
            }
        }
    });
    redis.stop(Duration::from_secs(5));

    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meta = Meta {
        quick,
        date: capture("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        commit: {
            let head = capture(
                "git",
                &[
                    "-C",
                    &root.to_string_lossy(),
                    "rev-parse",
                    "--short",
                    "HEAD",
                ],
            );
            let dirty = Command::new("git")
                .args([
                    "-C",
                    &root.to_string_lossy(),
                    "status",
                    "--porcelain",
                    "--untracked-files=no",
                ])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty());
            if dirty {
                format!("{head} (with uncommitted changes)")
            } else {
                head
            }
        },
        machine: format!(
            "{cores} cores, {mem_gib:.0} GiB, Linux {}, open-file limit {limit} per process",
            capture("uname", &["-r"])
        ),
        versions: format!(
            "{}; {} with nchan {}; {}",
            capture("redis-server", &["--version"])
                .split(" sha=")
                .next()
                .unwrap_or(""),
            capture("nginx", &["-v"]).replace("nginx version: ", ""),
            capture("dpkg-query", &["-W", "-f=${Version}", "libnginx-mod-nchan"]),
            capture("rustc", &["--version"])
                .split(" (")
                .next()
                .unwrap_or("")
        ),
        heartbeat,
        sources,
        duration_s: started.elapsed().as_secs_f64(),
    };
    let results = Results {
        quick,
        meta,
        records: bench.records,
        failures: bench.failures,
    };
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let mut failures = results.failures.clone();
    if let Err(e) = report::chart(&results.records, &out) {
        failures.push(format!("chart: {e}"));
    }
    let md = report::markdown(&results.records, &results.meta, &failures);
    std::fs::write(out.join("REPORT.md"), &md).map_err(|e| e.to_string())?;
    println!("{md}");
    println!(
        "bench: report written to {}",
        out.join("REPORT.md").display()
    );
    if failures.is_empty() {
        Ok(0)
    } else {
        eprintln!("bench: {} scenario(s) did not run:", failures.len());
        for f in &failures {
            eprintln!("  {f}");
        }
        Ok(1)
    }
}

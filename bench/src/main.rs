//! `redisse-bench`: the load generator and benchmark harness.
//!
//! - `redisse-bench run [--quick] --out DIR ...` starts Redis and, scenario
//!   by scenario, each server under test (redisse, nchan, nchan with Redis;
//!   for the fleet, several redisse servers behind one nginx), drives them
//!   with subscriber processes and a publisher, and writes DIR/REPORT.md.
//! - `redisse-bench subscribe ...` is one subscriber process (subscribe.rs).
//!
//! All traffic goes to 127.0.0.0/8; every wait has a deadline.

mod hist;
mod publish;
mod report;
mod scenarios;
mod servers;
mod subscribe;
mod subscribers;
mod sys;
mod targets;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use crate::report::Meta;
use crate::scenarios::{Bench, FleetSize, Scenario, Sizes};
use crate::servers::{Env, Kind};

#[derive(Parser)]
#[command(name = "redisse-bench", about = "Benchmarks redisse against nchan on this machine")]
enum Command {
    /// Runs the scenarios and writes REPORT.md into --out.
    Run(RunOptions),
    /// One subscriber process, driven by `run` over stdin and stdout.
    Subscribe(subscribe::Options),
}

#[derive(clap::Args)]
struct RunOptions {
    /// Small counts, about a minute: checks that the harness works.
    #[arg(long)]
    quick: bool,
    /// Where REPORT.md and the servers' work files go (default: a new temporary directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The repository (default: the current directory).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Default: target/release/redisse.
    #[arg(long)]
    redisse_bin: Option<PathBuf>,
    /// Default: bench/nchan/nginx.conf.
    #[arg(long)]
    nchan_conf: Option<PathBuf>,
    /// Default: bench/fleet/nginx.conf.
    #[arg(long)]
    fleet_conf: Option<PathBuf>,
    /// Default: all of them.
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Default: all of them.
    #[arg(long, value_enum, value_delimiter = ',')]
    servers: Vec<Kind>,
    /// Seconds between heartbeats in the idle scenario.
    #[arg(long, default_value_t = 1)]
    heartbeat: u32,
    /// Profiles redisse with `perf record` during the fan-out at saturation.
    #[arg(long)]
    profile: bool,
    /// The fan-out's offered rates, in publishes per second.
    #[arg(long, value_delimiter = ',')]
    fanout_rates: Vec<u64>,
    /// Events in flight per channel at most in the fan-out at saturation.
    #[arg(long)]
    saturation_window: Option<u64>,
    /// Seconds each fan-out step lasts.
    #[arg(long)]
    step_seconds: Option<f64>,
    /// The fleet's cases: numbers of streams, or `full` for as many as the servers take.
    #[arg(long, value_delimiter = ',')]
    fleet_streams: Vec<FleetSize>,
    /// Events of the fleet's broadcast.
    #[arg(long)]
    fleet_events: Option<u64>,
    #[arg(long)]
    fleet_interval_ms: Option<u64>,
}

fn main() -> ExitCode {
    match Command::parse() {
        Command::Subscribe(options) => ExitCode::from(subscribe::run(options)),
        Command::Run(options) => match run(options) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("redisse-bench: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// Runs the scenarios and writes the report; false if a case could not run.
fn run(o: RunOptions) -> Result<bool, String> {
    let started = Instant::now();
    let root = match o.root {
        Some(root) => root,
        None => std::env::current_dir().map_err(|e| e.to_string())?,
    };
    let out = o.out.unwrap_or_else(|| std::env::temp_dir().join(format!("redisse-bench-{}", std::process::id())));
    let work = out.join("work");
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let mut sizes = if o.quick { Sizes::quick() } else { Sizes::full() };
    sizes.fanout_rates = given(o.fanout_rates, sizes.fanout_rates);
    sizes.fleet_sizes = given(o.fleet_streams, sizes.fleet_sizes);
    sizes.saturation_window = o.saturation_window.unwrap_or(sizes.saturation_window);
    sizes.fanout_step = o.step_seconds.map_or(sizes.fanout_step, Duration::from_secs_f64);
    sizes.fleet_events = o.fleet_events.unwrap_or(sizes.fleet_events);
    sizes.fleet_interval = o.fleet_interval_ms.map_or(sizes.fleet_interval, Duration::from_millis);
    let sources = subscribers::source_addresses(sizes.sources);
    let scenarios = given(o.scenarios, Scenario::value_variants().to_vec());
    let servers = given(o.servers, Kind::ALL.to_vec());
    let fd_limit = sys::raise_nofile();

    let (mut redis, redis_port) = servers::start_redis(&work)?;
    let env = Env {
        work: work.clone(),
        redisse_bin: o.redisse_bin.unwrap_or(root.join("target/release/redisse")),
        nchan_conf: o.nchan_conf.unwrap_or(root.join("bench/nchan/nginx.conf")),
        fleet_conf: o.fleet_conf.unwrap_or(root.join("bench/fleet/nginx.conf")),
        heartbeat: o.heartbeat,
        redis_port,
    };
    let kind = if o.quick { "quick" } else { "full" };
    eprintln!(
        "bench: {kind} run, open-file limit {fd_limit}, redis-server on port {redis_port}, work files in {}",
        work.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let run_id = (sys::now_us() / 1_000_000 % 100_000) as u32;
    let mut bench = Bench {
        env,
        exe: std::env::current_exe().map_err(|e| e.to_string())?,
        root: root.clone(),
        sizes,
        servers,
        redis_pid: redis.pid(),
        profile: o.profile,
        run_id,
        tag: run_id * 1000,
        results: Default::default(),
    };
    runtime.block_on(async {
        for scenario in scenarios {
            bench.run(scenario).await;
        }
    });
    redis.stop(Duration::from_secs(5));

    let mut meta = Meta::gather(&root, o.quick, o.heartbeat, sources, fd_limit);
    meta.duration = started.elapsed();
    let md = report::markdown(&bench, &meta);
    let path = out.join("REPORT.md");
    std::fs::write(&path, &md).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("{md}");
    eprintln!("bench: report written to {}", path.display());
    let failures = &bench.results.failures;
    if !failures.is_empty() {
        let n = failures.len();
        eprintln!("bench: {n} case(s) did not run:\n  {}", failures.join("\n  "));
    }
    Ok(failures.is_empty())
}

/// The values given on the command line, else the defaults.
fn given<T>(values: Vec<T>, default: Vec<T>) -> Vec<T> {
    if values.is_empty() {
        default
    } else {
        values
    }
}

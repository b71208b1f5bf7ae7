//! `redisse-bench`: the load generator and benchmark harness.
//!
//! - `redisse-bench run [--quick] --out DIR ...` starts Redis and, scenario
//!   by scenario, each server under test (redisse, nchan, nchan with Redis;
//!   for the fleet, several redisse servers behind one nginx), drives them
//!   with subscriber processes and a publisher, and writes DIR/REPORT.md.
//! - `redisse-bench subscribe ...` is one subscriber process (subscribe.rs).
//!
//! It runs from the repository's root. All traffic goes to 127.0.0.0/8;
//! every wait has a deadline.

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
use crate::scenarios::{Bench, Scenario, Sizes};
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
    /// Default: all of them.
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Default: all of them.
    #[arg(long, value_enum, value_delimiter = ',')]
    servers: Vec<Kind>,
    /// Profiles redisse with `perf record` during the fan-out at saturation.
    #[arg(long)]
    profile: bool,
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
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    let out = o.out.unwrap_or_else(|| std::env::temp_dir().join(format!("redisse-bench-{}", std::process::id())));
    let work = out.join("work");
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let sizes = if o.quick { Sizes::quick() } else { Sizes::full() };
    let scenarios = if o.scenarios.is_empty() { Scenario::value_variants().to_vec() } else { o.scenarios };
    let servers = if o.servers.is_empty() { Kind::ALL.to_vec() } else { o.servers };
    let fd_limit = sys::raise_nofile();

    let (mut redis, redis_port) = servers::start_redis(&work)?;
    let kind = if o.quick { "quick" } else { "full" };
    eprintln!(
        "bench: {kind} run, open-file limit {fd_limit}, redis-server on port {redis_port}, work files in {}",
        work.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let run_id = (sys::now_us() / 1_000_000 % 100_000) as u32;
    let mut bench = Bench {
        env: Env { root: root.clone(), work, redis_port },
        sizes,
        servers,
        redis_pid: redis.pid(),
        profile: o.profile,
        run_id,
        tag: run_id * 1000,
        results: Default::default(),
        disturbed: Default::default(),
    };
    runtime.block_on(async {
        for scenario in scenarios {
            bench.run(scenario).await;
        }
    });
    redis.stop(Duration::from_secs(5));

    let meta = Meta::gather(&root, o.quick, &bench.sizes, fd_limit, started.elapsed());
    let md = report::markdown(&bench, &meta);
    let path = out.join("REPORT.md");
    std::fs::write(&path, &md).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("{md}");
    eprintln!("bench: report written to {}", path.display());
    let failures = &bench.results.failures;
    if !failures.is_empty() {
        eprintln!("bench: {} case(s) did not run:\n  {}", failures.len(), failures.join("\n  "));
    }
    Ok(failures.is_empty())
}

//! The fleet scenario's front: one nginx with several workers proxying
//! event streams round-robin to several redisse servers
//! (bench/fleet/nginx.conf).

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::servers::{free_port, server_dir, spawn_nginx, wait_for_stream, Proc};
use crate::sys;

/// Connections per nginx worker: under the 20,000 open files a worker may
/// have (`worker_rlimit_nofile`), with room for its listening socket, logs
/// and the connections it holds while closing others.
pub const WORKER_CONNECTIONS: usize = 19_000;

/// Streams a worker is sized for. Each stream costs a worker two
/// descriptors (client and upstream), and the kernel's spread over the
/// workers' sockets is by hash, not by load: at 6,500 streams a worker
/// holds 13,000 descriptors, far enough under 20,000 for an uneven spread.
const STREAMS_PER_WORKER: usize = 6_500;

/// Source addresses nginx connects to the servers from (127.0.1.1 and
/// up, apart from the clients' 127.0.0.x): with 50,000 streams over three
/// servers, about 2,100 connections per (source, server) pair, under a
/// tenth of the ephemeral range.
pub const UPSTREAM_SOURCES: usize = 8;

/// nginx workers for `streams`: at least two, so that the spread over
/// workers is exercised even in a quick run.
pub fn workers_for(streams: usize) -> usize {
    streams.div_ceil(STREAMS_PER_WORKER).clamp(2, 32)
}

pub struct Front {
    pub addr: SocketAddr,
    proc: Proc,
    pub workers: Vec<u32>,
}

impl Front {
    /// Starts nginx from `template` in front of `upstreams`, and waits
    /// until a stream through it opens.
    pub async fn start(
        template: &Path,
        work: &Path,
        upstreams: &[SocketAddr],
        workers: usize,
    ) -> Result<Front, String> {
        let port = free_port().map_err(|e| e.to_string())?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let (dir, output) = server_dir(work, "fleet-nginx")?;
        let text = fs::read_to_string(template)
            .map_err(|e| format!("cannot read {}: {e}", template.display()))?;
        let conf = render(&text, port, workers, upstreams);
        let child = spawn_nginx(&dir, &conf, output)?;
        let mut proc = Proc {
            child,
            name: "nginx (fleet)".into(),
        };
        wait_for_stream(&mut proc, addr, "/?bench_probe", &dir).await?;
        // Workers that have not forked yet would be missed: a stream
        // answered, so one has, and the others follow within moments.
        let mut found = Vec::new();
        for _ in 0..50 {
            found = sys::children_of(proc.pid());
            if found.len() == workers {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if found.len() != workers {
            return Err(format!(
                "expected {workers} nginx workers, found {}",
                found.len()
            ));
        }
        // Let the probe's close settle so the baseline is quiet.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Front {
            addr,
            proc,
            workers: found,
        })
    }

    pub fn master_pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The master and every worker it started are still there.
    pub fn alive(&mut self) -> bool {
        !self.proc.exited() && self.workers.iter().all(|&p| sys::alive(p))
    }

    pub fn stop(mut self) {
        self.proc.stop(Duration::from_secs(10));
    }
}

/// The configuration: `template` with its fields filled in.
fn render(template: &str, port: u16, workers: usize, upstreams: &[SocketAddr]) -> String {
    let servers: Vec<String> = upstreams
        .iter()
        .map(|a| format!("        server {a} max_fails=0;"))
        .collect();
    let share = 100.0 / UPSTREAM_SOURCES as f64;
    let sources: Vec<String> = (1..=UPSTREAM_SOURCES)
        .map(|i| match i {
            i if i == UPSTREAM_SOURCES => format!("        * 127.0.1.{i};"),
            _ => format!("        {share:.2}% 127.0.1.{i};"),
        })
        .collect();
    // The lists replace the lines that are only @UPSTREAMS@ and
    // @SOURCES@; the template's comments name them too.
    let lines: Vec<String> = template
        .lines()
        .map(|line| match line.trim() {
            "@UPSTREAMS@" => servers.join("\n"),
            "@SOURCES@" => sources.join("\n"),
            _ => line
                .replace("@PORT@", &port.to_string())
                .replace("@WORKERS@", &workers.to_string())
                .replace("@CONNECTIONS@", &WORKER_CONNECTIONS.to_string()),
        })
        .collect();
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_filled_in() {
        let upstreams: Vec<SocketAddr> = ["127.0.0.1:9001", "127.0.0.1:9002"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let conf = render(include_str!("../fleet/nginx.conf"), 8080, 8, &upstreams);
        // Every field filled in, outside the comments that name them too.
        for line in conf.lines().filter(|l| !l.trim_start().starts_with('#')) {
            assert!(!line.contains('@'), "{line}");
        }
        assert!(conf.contains("worker_processes 8;"));
        assert!(conf.contains("listen 127.0.0.1:8080 reuseport"));
        assert!(conf.contains("        server 127.0.0.1:9002 max_fails=0;\n"));
        assert!(conf.contains("        12.50% 127.0.1.7;\n        * 127.0.1.8;\n"));
    }

    #[test]
    fn workers_keep_well_under_their_descriptors() {
        assert_eq!(workers_for(600), 2);
        assert_eq!(workers_for(50_000), 8);
        for n in [600usize, 50_000, 59_202] {
            let per_worker = n.div_ceil(workers_for(n));
            assert!(per_worker <= STREAMS_PER_WORKER, "{n}");
        }
    }
}

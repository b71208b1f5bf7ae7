//! The coordinator's side of the `subscribe` processes: spawning them,
//! sending commands, adding up their answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use crate::hist::Hist;
use crate::subscribe::{Counters, Opened};
use crate::sys;

/// Streams per subscriber process: well under the 20,000 open files a process may have.
const STREAMS_PER_PROCESS: usize = 5000;

/// A scenario's streams; each subscriber process gets it as JSON on its command line.
#[derive(Clone, Serialize, Deserialize)]
pub struct Spec {
    pub server: SocketAddr,
    /// The request path; `{c}` becomes the channel number, stream n's being n % channels.
    pub path: String,
    pub channels: usize,
    pub streams: usize,
    /// Connecting at a time per process; 0: all at once.
    pub concurrency: usize,
    /// Connects from this many source addresses, 127.0.0.2 and up (1 to 250).
    pub sources: usize,
    /// Sends a Cookie header of this many bytes with every request.
    pub cookie_bytes: usize,
    /// Reopens each stream when it ends, as a browser's EventSource does.
    pub reconnect: bool,
}

struct Process {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    pid: u32,
}

pub struct Subscribers {
    processes: Vec<Process>,
}

/// The source addresses 127.0.0.2 and up, `n` of them (at most 250): the
/// kernel gives each its own ephemeral ports, so tens of thousands of
/// streams fit.
pub fn source_addresses(n: usize) -> String {
    format!("127.0.0.2-127.0.0.{}", 1 + n.clamp(1, 250))
}

impl Subscribers {
    pub async fn spawn(spec: &Spec) -> Result<Subscribers, String> {
        let count = spec.streams.div_ceil(STREAMS_PER_PROCESS).max(spec.streams.min(2));
        let per = spec.streams.div_ceil(count.max(1)).max(1);
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let spec_json = serde_json::to_string(spec).expect("a spec is plain data");
        let mut processes = Vec::new();
        for first in (0..spec.streams).step_by(per) {
            let mut child = Command::new(&exe)
                .args(["subscribe", "--spec", &spec_json, "--first", &first.to_string()])
                .args(["--count", &per.min(spec.streams - first).to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot run {} subscribe: {e}", exe.display()))?;
            processes.push(Process {
                pid: child.id().unwrap_or(0),
                stdin: child.stdin.take().ok_or("no stdin")?,
                lines: BufReader::new(child.stdout.take().ok_or("no stdout")?).lines(),
                child,
            });
        }
        let mut subscribers = Subscribers { processes };
        // A first answer tells that every process is up.
        subscribers.ask::<Counters>("stats", Duration::from_secs(30)).await?;
        Ok(subscribers)
    }

    pub fn count(&self) -> usize {
        self.processes.len()
    }

    /// Resident memory of all the processes, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.processes.iter().filter_map(|p| sys::rss_kib(p.pid)).sum()
    }

    pub fn cpu_s(&self) -> f64 {
        self.processes.iter().filter_map(|p| sys::cpu_seconds(p.pid)).sum()
    }

    async fn send_all(&mut self, command: &str) -> Result<(), String> {
        for p in &mut self.processes {
            let sent = p.stdin.write_all(format!("{command}\n").as_bytes()).await;
            sent.map_err(|e| format!("subscriber process {} is gone: {e}", p.pid))?;
        }
        Ok(())
    }

    /// Sends `command` to every process, then reads each one's answer.
    async fn ask<T: DeserializeOwned>(&mut self, command: &str, timeout: Duration) -> Result<Vec<T>, String> {
        self.send_all(command).await?;
        let mut answers = Vec::new();
        for p in &mut self.processes {
            let late = |_| format!("subscriber process {} did not answer {command:?} within {timeout:?}", p.pid);
            let Ok(Some(line)) = tokio::time::timeout(timeout, p.lines.next_line()).await.map_err(late)? else {
                return Err(format!("subscriber process {} ended", p.pid));
            };
            answers.push(serde_json::from_str(&line).map_err(|e| format!("bad answer {line:?}: {e}"))?);
        }
        Ok(answers)
    }

    /// Opens every stream; returns once every process has tried them all.
    pub async fn open(&mut self, timeout: Duration) -> Result<Opened, String> {
        let mut all = Opened::default();
        for a in self.ask::<Opened>("open", timeout).await? {
            all.ok += a.ok;
            all.failed += a.failed;
            add(&mut all.errors, a.errors);
            all.connect.merge(&a.connect);
            all.elapsed_s = all.elapsed_s.max(a.elapsed_s);
        }
        Ok(all)
    }

    /// From now on only events tagged `tag` count.
    pub async fn phase(&mut self, tag: u32) -> Result<(), String> {
        self.ask::<()>(&format!("phase {tag}"), Duration::from_secs(10)).await.map(drop)
    }

    pub async fn stats(&mut self) -> Result<Counters, String> {
        let answers = self.ask::<Counters>("stats", Duration::from_secs(10)).await?;
        Ok(answers.into_iter().fold(Counters::default(), Counters::add))
    }

    /// The counters with the latency histogram.
    pub async fn report(&mut self) -> Result<(Counters, Hist), String> {
        let (mut all, mut latency) = (Counters::default(), Hist::default());
        for (counters, hist) in self.ask::<(Counters, Hist)>("report", Duration::from_secs(10)).await? {
            all = all.add(counters);
            latency.merge(&hist);
        }
        Ok((all, latency))
    }

    /// Waits until `expected` deliveries arrived, or nothing arrived for
    /// `quiet`, or `limit` passed.
    pub async fn wait_for(&mut self, expected: u64, quiet: Duration, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        let (mut last, mut last_change) = (self.stats().await?.received, start);
        while last < expected && start.elapsed() < limit && last_change.elapsed() < quiet {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.stats().await?.received;
            if now != last {
                (last, last_change) = (now, Instant::now());
            }
        }
        Ok(())
    }

    pub async fn quit(mut self) {
        let _ = self.send_all("quit").await;
        for p in &mut self.processes {
            let exited = tokio::time::timeout(Duration::from_secs(10), p.child.wait()).await;
            if exited.is_err() {
                let _ = p.child.kill().await;
            }
        }
    }
}

impl Counters {
    fn add(mut self, c: Counters) -> Counters {
        self.received += c.received;
        self.bytes += c.bytes;
        self.open += c.open;
        self.closed += c.closed;
        self.reconnects += c.reconnects;
        self.duplicates += c.duplicates;
        add(&mut self.close_reasons, c.close_reasons);
        self
    }
}

/// Adds counts of kinds (errors, close reasons) into `into`.
pub fn add(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k).or_default() += v;
    }
}

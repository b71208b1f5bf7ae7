//! The coordinator's side of the `subscribe` processes: spawning them,
//! sending commands, adding up their answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::hist::Hist;
use crate::subscribe::{Answer, Counters, Opened};
use crate::sys;

/// Streams per subscriber process: well under the 20,000 open files a process may have.
const STREAMS_PER_PROCESS: usize = 5000;

pub struct Spec {
    pub server: SocketAddr,
    /// The request path; `{c}` becomes the channel number.
    pub path: String,
    pub channels: usize,
    pub streams: usize,
    /// Connecting at a time per process; 0: all at once.
    pub concurrency: usize,
    /// Source addresses 127.0.0.2 and up.
    pub sources: usize,
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

/// Subscriber processes holding a scenario's streams.
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
        let per = spec.streams.div_ceil(count.max(1));
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut processes = Vec::new();
        for first in (0..spec.streams).step_by(per.max(1)) {
            let mut child = Command::new(&exe)
                .arg("subscribe")
                .args(["--server", &spec.server.to_string(), "--path", &spec.path])
                .args(["--channels", &spec.channels.to_string()])
                .args(["--first", &first.to_string()])
                .args(["--count", &per.min(spec.streams - first).to_string()])
                .args(["--sources", &spec.sources.clamp(1, 250).to_string()])
                .args(["--concurrency", &spec.concurrency.to_string()])
                .args(["--max-seconds", "1800"])
                .args(["--cookie-bytes", &spec.cookie_bytes.to_string()])
                .args(spec.reconnect.then_some("--reconnect"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
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
        let ready = |a| matches!(a, Answer::Ready).then_some(());
        subscribers.answers("ready", Duration::from_secs(30), ready).await?;
        Ok(subscribers)
    }

    pub fn count(&self) -> usize {
        self.processes.len()
    }

    /// Resident memory of all the processes, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.processes.iter().filter_map(|p| sys::rss_kib(p.pid)).sum()
    }

    /// CPU seconds used by the processes so far.
    pub fn cpu_s(&self) -> f64 {
        self.processes.iter().filter_map(|p| sys::cpu_seconds(p.pid)).sum()
    }

    async fn send_all(&mut self, command: &str) -> Result<(), String> {
        for p in &mut self.processes {
            p.stdin
                .write_all(format!("{command}\n").as_bytes())
                .await
                .map_err(|e| format!("subscriber process {} is gone: {e}", p.pid))?;
        }
        Ok(())
    }

    /// One answer from every process: the first that `pick` takes (named
    /// `event` in errors), skipping others; an error if one reports an error.
    async fn answers<T>(
        &mut self,
        event: &str,
        timeout: Duration,
        pick: impl Fn(Answer) -> Option<T>,
    ) -> Result<Vec<T>, String> {
        let mut out = Vec::new();
        for p in &mut self.processes {
            let answer = tokio::time::timeout(timeout, async {
                loop {
                    let Ok(Some(line)) = p.lines.next_line().await else {
                        return Err(format!("subscriber process {} ended", p.pid));
                    };
                    match serde_json::from_str(&line) {
                        Ok(Answer::Error { message }) => return Err(format!("subscriber process: {message}")),
                        Ok(answer) => {
                            if let Some(picked) = pick(answer) {
                                return Ok(picked);
                            }
                        }
                        Err(e) => return Err(format!("bad answer {line:?}: {e}")),
                    }
                }
            })
            .await
            .map_err(|_| format!("subscriber process {} did not answer {event:?} within {timeout:?}", p.pid))??;
            out.push(answer);
        }
        Ok(out)
    }

    /// Opens every stream; returns once every process has tried them all.
    pub async fn open(&mut self, timeout: Duration) -> Result<Opened, String> {
        self.send_all("open").await?;
        let answers = self.answers("opened", timeout, |a| match a {
            Answer::Opened(opened) => Some(opened),
            _ => None,
        });
        let mut all = Opened::default();
        for a in answers.await? {
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
        self.send_all(&format!("phase {tag}")).await?;
        let phase = |a| matches!(a, Answer::Phase).then_some(());
        self.answers("phase", Duration::from_secs(10), phase).await.map(drop)
    }

    /// The processes' counters added up; with the latencies for `report`.
    async fn tally(&mut self, command: &str) -> Result<Counters, String> {
        self.send_all(command).await?;
        let answers = self.answers(command, Duration::from_secs(10), |a| match a {
            Answer::Stats(counters) => Some(counters),
            _ => None,
        });
        let (mut all, mut latency) = (Counters::default(), Hist::default());
        for a in answers.await? {
            all.received += a.received;
            all.bytes += a.bytes;
            all.open += a.open;
            all.closed += a.closed;
            all.reconnects += a.reconnects;
            all.duplicates += a.duplicates;
            add(&mut all.close_reasons, a.close_reasons);
            a.latency.iter().for_each(|h| latency.merge(h));
        }
        all.latency = Some(latency);
        Ok(all)
    }

    pub async fn stats(&mut self) -> Result<Counters, String> {
        self.tally("stats").await
    }

    /// The counters with the latency histogram.
    pub async fn report(&mut self) -> Result<(Counters, Hist), String> {
        let mut counters = self.tally("report").await?;
        let latency = counters.latency.take().unwrap_or_default();
        Ok((counters, latency))
    }

    /// Waits until `expected` deliveries arrived, or nothing arrived for
    /// `quiet`, or `limit` passed.
    pub async fn wait_for(&mut self, expected: u64, quiet: Duration, limit: Duration) -> Result<(), String> {
        let start = tokio::time::Instant::now();
        let mut last = self.stats().await?.received;
        let mut last_change = start;
        while last < expected && start.elapsed() < limit && last_change.elapsed() < quiet {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.stats().await?.received;
            if now != last {
                last_change = tokio::time::Instant::now();
            }
            last = now;
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

/// Adds counts of kinds (errors, close reasons) into `into`.
pub fn add(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k).or_default() += v;
    }
}

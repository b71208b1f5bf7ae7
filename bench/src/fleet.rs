//! The coordinator's side of the `subscribe` child processes: spawning
//! them, sending commands, adding up their answers.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::child::{Answer, Counters, OpenedAnswer};
use crate::hist::Hist;
use crate::sys;

/// Streams per child process: well under the 20,000 open files a process may have.
pub const STREAMS_PER_CHILD: usize = 5000;

pub struct Spec {
    pub exe: PathBuf,
    pub server: SocketAddr,
    pub path_template: String,
    pub channels: usize,
    pub streams: usize,
    /// Connecting at a time per child; 0: all at once.
    pub concurrency: usize,
    pub connect_timeout: Duration,
    pub max_seconds: f64,
    pub sources: usize,
}

struct Member {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    pid: u32,
}

pub struct Fleet {
    members: Vec<Member>,
}

#[derive(Debug, Default)]
pub struct Opened {
    pub ok: u64,
    pub failed: u64,
    pub errors: BTreeMap<String, u64>,
    pub connect: Hist,
    /// Until the slowest child had every answer.
    pub elapsed: Duration,
}

#[derive(Debug, Default)]
pub struct Tally {
    pub received: u64,
    pub stale: u64,
    pub bytes: u64,
    pub open: u64,
    pub closed: u64,
    pub close_reasons: BTreeMap<String, u64>,
    pub latency: Hist,
}

/// The source addresses 127.0.0.2..: the kernel gives each its own
/// ephemeral ports, so tens of thousands of streams fit.
pub fn source_addresses(n: usize) -> String {
    format!("127.0.0.2-127.0.0.{}", 1 + n.clamp(1, 250))
}

impl Fleet {
    pub async fn spawn(spec: &Spec) -> Result<Fleet, String> {
        let children = spec
            .streams
            .div_ceil(STREAMS_PER_CHILD)
            .max(if spec.streams >= 2 { 2 } else { 1 });
        let per = spec.streams.div_ceil(children);
        let mut members = Vec::new();
        let mut first = 0;
        while first < spec.streams {
            let count = per.min(spec.streams - first);
            let mut child = Command::new(&spec.exe)
                .arg("subscribe")
                .args(["--server", &spec.server.to_string()])
                .args(["--path", &spec.path_template])
                .args(["--channels", &spec.channels.to_string()])
                .args(["--first", &first.to_string(), "--count", &count.to_string()])
                .args(["--sources", &source_addresses(spec.sources)])
                .args(["--concurrency", &spec.concurrency.to_string()])
                .args([
                    "--connect-timeout",
                    &spec.connect_timeout.as_secs_f64().to_string(),
                ])
                .args(["--max-seconds", &spec.max_seconds.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot run {} subscribe: {e}", spec.exe.display()))?;
            let pid = child.id().unwrap_or(0);
            let stdin = child.stdin.take().ok_or("no stdin")?;
            let lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
            members.push(Member {
                child,
                stdin,
                lines,
                pid,
            });
            first += count;
        }
        let mut fleet = Fleet { members };
        fleet
            .answers("ready", Duration::from_secs(30), |a| {
                matches!(a, Answer::Ready).then_some(())
            })
            .await?;
        Ok(fleet)
    }

    pub fn processes(&self) -> usize {
        self.members.len()
    }

    /// Resident memory of all the children, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.members
            .iter()
            .filter_map(|m| sys::rss_kib(m.pid))
            .sum()
    }

    /// CPU seconds used by the children so far.
    pub fn cpu_s(&self) -> f64 {
        self.members
            .iter()
            .filter_map(|m| sys::cpu_seconds(m.pid, false))
            .sum()
    }

    async fn send_all(&mut self, command: &str) -> Result<(), String> {
        for m in &mut self.members {
            m.stdin
                .write_all(format!("{command}\n").as_bytes())
                .await
                .map_err(|e| format!("subscriber process {} is gone: {e}", m.pid))?;
        }
        Ok(())
    }

    /// One answer from every child: the first that `pick` takes (named
    /// `event` in errors), skipping others; an error if one reports an error.
    async fn answers<T>(
        &mut self,
        event: &str,
        timeout: Duration,
        pick: impl Fn(Answer) -> Option<T>,
    ) -> Result<Vec<T>, String> {
        let mut out = Vec::new();
        for m in &mut self.members {
            let answer = tokio::time::timeout(timeout, async {
                loop {
                    match m.lines.next_line().await {
                        Ok(Some(line)) => {
                            let answer: Answer = serde_json::from_str(&line)
                                .map_err(|e| format!("bad answer {line:?}: {e}"))?;
                            if let Answer::Error { message } = answer {
                                return Err(format!("subscriber process: {message:?}"));
                            }
                            if let Some(picked) = pick(answer) {
                                return Ok(picked);
                            }
                        }
                        _ => return Err(format!("subscriber process {} ended", m.pid)),
                    }
                }
            })
            .await
            .map_err(|_| {
                format!(
                    "subscriber process {} did not answer {event:?} within {timeout:?}",
                    m.pid
                )
            })??;
            out.push(answer);
        }
        Ok(out)
    }

    /// Opens every stream; returns once every child has tried them all.
    pub async fn open(&mut self, timeout: Duration) -> Result<Opened, String> {
        self.send_all("open").await?;
        let answers: Vec<OpenedAnswer> = self
            .answers("opened", timeout, |a| match a {
                Answer::Opened(opened) => Some(opened),
                _ => None,
            })
            .await?;
        let mut o = Opened::default();
        for a in answers {
            o.ok += a.ok;
            o.failed += a.failed;
            for (k, v) in a.errors {
                *o.errors.entry(k).or_default() += v;
            }
            o.connect.merge(&a.connect);
            o.elapsed = o.elapsed.max(Duration::from_micros(a.elapsed_us));
        }
        Ok(o)
    }

    pub async fn phase(&mut self, tag: u32) -> Result<(), String> {
        self.send_all(&format!("phase {tag}")).await?;
        self.answers("phase", Duration::from_secs(10), |a| {
            matches!(a, Answer::Phase { .. }).then_some(())
        })
        .await
        .map(|_| ())
    }

    /// Adds up the children's counters; `report` also has their latencies.
    async fn tally(&mut self, with_latency: bool) -> Result<Tally, String> {
        let command = if with_latency { "report" } else { "stats" };
        self.send_all(command).await?;
        let answers: Vec<Counters> = self
            .answers(command, Duration::from_secs(10), |a| match a {
                Answer::Report(counters) if with_latency => Some(counters),
                Answer::Stats(counters) if !with_latency => Some(counters),
                _ => None,
            })
            .await?;
        let mut t = Tally::default();
        for a in answers {
            t.received += a.received;
            t.stale += a.stale;
            t.bytes += a.bytes;
            t.open += a.open;
            t.closed += a.closed;
            for (k, v) in a.close_reasons {
                *t.close_reasons.entry(k).or_default() += v;
            }
            if let Some(latency) = &a.latency {
                t.latency.merge(latency);
            }
        }
        Ok(t)
    }

    pub async fn stats(&mut self) -> Result<Tally, String> {
        self.tally(false).await
    }

    pub async fn report(&mut self) -> Result<Tally, String> {
        self.tally(true).await
    }

    /// Waits until `expected` deliveries arrived, or nothing arrived for
    /// `quiet`, or `limit` passed. Returns the last stats.
    pub async fn wait_for(
        &mut self,
        expected: u64,
        quiet: Duration,
        limit: Duration,
    ) -> Result<Tally, String> {
        let start = tokio::time::Instant::now();
        let mut last = self.stats().await?;
        let mut last_change = start;
        while last.received < expected && start.elapsed() < limit && last_change.elapsed() < quiet {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.stats().await?;
            if now.received != last.received {
                last_change = tokio::time::Instant::now();
            }
            last = now;
        }
        Ok(last)
    }

    pub async fn quit(mut self) {
        let _ = self.send_all("quit").await;
        for m in &mut self.members {
            if tokio::time::timeout(Duration::from_secs(10), m.child.wait())
                .await
                .is_err()
            {
                let _ = m.child.kill().await;
            }
        }
    }
}

pub fn parse_sources(text: &str) -> Result<Vec<Ipv4Addr>, String> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let a: Ipv4Addr = a.parse().map_err(|_| format!("bad address {a:?}"))?;
    let b: Ipv4Addr = b.parse().map_err(|_| format!("bad address {b:?}"))?;
    let (a, b) = (u32::from(a), u32::from(b));
    if a > b || a >> 24 != 127 || b >> 24 != 127 || b - a > 65_535 {
        return Err(format!(
            "{text:?}: a range of loopback addresses (127.x.x.x) is needed"
        ));
    }
    Ok((a..=b).map(Ipv4Addr::from).collect())
}

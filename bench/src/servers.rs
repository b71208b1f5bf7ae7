//! The processes under test, started and stopped by the harness: one
//! redis-server for the whole run, and for each scenario a fresh redisse,
//! nginx+nchan (memory store) or nginx+nchan (Redis store).

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::http::open_stream;
use crate::sys;

/// A server under test. Written in records by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Kind {
    Redisse,
    Nchan,
    NchanRedis,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Redisse, Kind::Nchan, Kind::NchanRedis];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Redisse => "redisse",
            Kind::Nchan => "nchan",
            Kind::NchanRedis => "nchan+redis",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == name || k.name().replace('+', "-") == name)
    }

    /// The path of an event stream on `channel`.
    pub fn stream_path(self, channel: &str) -> String {
        match self {
            Kind::Redisse => format!("/?{channel}"),
            _ => format!("/sub/{channel}"),
        }
    }
}

impl From<Kind> for &'static str {
    fn from(kind: Kind) -> &'static str {
        kind.name()
    }
}

impl TryFrom<String> for Kind {
    type Error = String;

    fn try_from(name: String) -> Result<Kind, String> {
        Kind::parse(&name).ok_or_else(|| format!("unknown server {name:?}"))
    }
}

/// What every server needs to know.
pub struct Env {
    pub work: PathBuf,
    pub redisse_bin: PathBuf,
    pub nchan_conf: PathBuf,
    /// The fleet scenario's nginx configuration template.
    pub fleet_conf: PathBuf,
    /// Seconds between heartbeats (redisse) and pings (nchan) on every
    /// stream in the idle scenario, short to make their cost visible.
    pub heartbeat: u32,
    pub redis_port: u16,
}

impl Env {
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.redis_port)
    }
}

pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A process that is killed when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        sys::signal(self.pid(), libc::SIGTERM);
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "bench: {} did not stop within {grace:?}; killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn log_file(dir: &Path, name: &str) -> std::io::Result<(Stdio, Stdio)> {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))?;
    Ok((Stdio::from(file.try_clone()?), Stdio::from(file)))
}

pub fn start_redis(work: &Path) -> Result<(Proc, u16), String> {
    let port = free_port().map_err(|e| e.to_string())?;
    let dir = work.join("redis");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (out, err) = log_file(&dir, "redis.log").map_err(|e| e.to_string())?;
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--daemonize", "no", "--maxclients", "1000"])
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run redis-server: {e}"))?;
    let mut proc = Proc {
        child,
        name: "redis-server".into(),
    };
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok((proc, port));
        }
        if proc.exited() || Instant::now() > until {
            return Err(format!(
                "redis-server did not start (see {})",
                dir.join("redis.log").display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server under test.
pub struct Server {
    pub kind: Kind,
    pub addr: SocketAddr,
    proc: Proc,
    /// The process that holds the connections: redisse itself, nginx's worker.
    pub pid: u32,
    dir: PathBuf,
}

/// Heartbeat interval of the other scenarios: redisse's default.
pub const DEFAULT_HEARTBEAT: u32 = 15;

impl Server {
    /// Starts a server; `heartbeat` is the seconds between heartbeats (redisse) or pings (nchan).
    pub async fn start(
        kind: Kind,
        env: &Env,
        label: &str,
        heartbeat: u32,
    ) -> Result<Server, String> {
        let port = free_port().map_err(|e| e.to_string())?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let (dir, (out, err)) = server_dir(
            &env.work,
            &format!("{label}-{}", kind.name().replace('+', "-")),
        )?;
        let child = match kind {
            Kind::Redisse => Command::new(&env.redisse_bin)
                .args([
                    "--redis",
                    &env.redis_url(),
                    "-p",
                    &port.to_string(),
                    "-a",
                    "127.0.0.1",
                ])
                .args(["--heartbeat", &heartbeat.to_string(), "--stdout"])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", env.redisse_bin.display()))?,
            Kind::Nchan | Kind::NchanRedis => {
                let template = fs::read_to_string(&env.nchan_conf)
                    .map_err(|e| format!("cannot read {}: {e}", env.nchan_conf.display()))?;
                let conf = template
                    .replace("@PORT@", &port.to_string())
                    .replace("@REDIS_URL@", &env.redis_url())
                    .replace(
                        "@USE_REDIS@",
                        if kind == Kind::NchanRedis {
                            "on"
                        } else {
                            "off"
                        },
                    )
                    .replace("@PING@", &heartbeat.to_string());
                spawn_nginx(&dir, &conf, (out, err))?
            }
        };
        let mut proc = Proc {
            child,
            name: kind.name().into(),
        };
        wait_for_stream(&mut proc, addr, &kind.stream_path("bench_probe"), &dir).await?;
        let pid = match kind {
            Kind::Redisse => proc.pid(),
            _ => {
                let workers = sys::children_of(proc.pid());
                match workers.as_slice() {
                    [worker] => *worker,
                    other => return Err(format!("expected one nginx worker, found {other:?}")),
                }
            }
        };
        // Let the probe's close settle so the baseline is quiet.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Server {
            kind,
            addr,
            proc,
            pid,
            dir,
        })
    }

    pub fn alive(&mut self) -> bool {
        !self.proc.exited() && sys::alive(self.pid)
    }

    pub fn rss_kib(&self) -> u64 {
        sys::rss_kib(self.pid).unwrap_or(0)
    }

    pub fn fds(&self) -> usize {
        sys::fd_count(self.pid).unwrap_or(0)
    }

    /// The most streams redisse says it will hold at once (its log's
    /// "at most N streams" line at start: its --max-streams default follows
    /// the open-file limit); none for nchan.
    pub fn max_streams(&self) -> Option<u64> {
        let log = fs::read_to_string(self.dir.join("logs/server.log")).ok()?;
        let (_, rest) = log.split_once("at most ")?;
        rest.split_once(" streams")?.0.parse().ok()
    }

    /// Stops the server; returns false if it had died before.
    pub fn stop(mut self) -> bool {
        let was_alive = self.alive();
        self.proc.stop(Duration::from_secs(10));
        was_alive
    }
}

/// A fresh directory for a server's files, with logs/ and tmp/, and its
/// output going to logs/server.log.
pub fn server_dir(work: &Path, name: &str) -> Result<(PathBuf, (Stdio, Stdio)), String> {
    let dir = work.join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("logs")).map_err(|e| e.to_string())?;
    fs::create_dir_all(dir.join("tmp")).map_err(|e| e.to_string())?;
    let output = log_file(&dir.join("logs"), "server.log").map_err(|e| e.to_string())?;
    Ok((dir, output))
}

/// Writes `conf` into `dir` (which has logs/ and tmp/) and runs nginx on it
/// in the foreground.
pub fn spawn_nginx(dir: &Path, conf: &str, (out, err): (Stdio, Stdio)) -> Result<Child, String> {
    let conf_path = dir.join("nginx.conf");
    fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run nginx: {e}"))
}

/// Waits up to 15 s until `addr` answers an event-stream request for
/// `path`; an error if the process exits first (its logs are in `dir`).
pub async fn wait_for_stream(
    proc: &mut Proc,
    addr: SocketAddr,
    path: &str,
    dir: &Path,
) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        if proc.exited() {
            return Err(format!(
                "{} exited at start (see {})",
                proc.name,
                dir.join("logs").display()
            ));
        }
        let mut buf = Vec::new();
        let ok = tokio::time::timeout(
            Duration::from_secs(1),
            open_stream(None, addr, path, &mut buf),
        )
        .await;
        if matches!(ok, Ok(Ok(_))) {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(format!(
                "{} did not answer an event-stream request within 15 s: {:?}",
                proc.name,
                ok.map(|r| r.err())
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! The processes under test, started and stopped by the harness: one
//! redis-server for the whole run, and for each case a fresh redisse,
//! nginx+nchan (memory store) or nginx+nchan (Redis store).

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::subscribe::open_stream;
use crate::sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Redisse,
    Nchan,
    #[value(name = "nchan-redis")]
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

    pub fn stream_path(self, channel: &str) -> String {
        match self {
            Kind::Redisse => format!("/?{channel}"),
            _ => format!("/sub/{channel}"),
        }
    }
}

/// What every server needs to know: the repository, where work files go, and Redis.
pub struct Env {
    pub root: PathBuf,
    pub work: PathBuf,
    pub redis_port: u16,
}

impl Env {
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.redis_port)
    }

    /// bench/`name`/nginx.conf, a template whose `@FIELD@`s the caller fills in.
    pub fn nginx_template(&self, name: &str) -> Result<String, String> {
        let path = self.root.join("bench").join(name).join("nginx.conf");
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }
}

/// Heartbeat interval of the other scenarios: redisse's default.
pub const DEFAULT_HEARTBEAT: u32 = 15;

pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// A process of ours, its output in `dir`/logs/server.log; stopped when dropped.
pub struct Proc {
    child: Child,
    name: String,
    pub dir: PathBuf,
}

impl Proc {
    /// Runs `command` with a fresh `dir` (with logs/ and tmp/).
    pub fn spawn(name: &str, command: &mut Command, dir: PathBuf) -> Result<Proc, String> {
        let _ = fs::remove_dir_all(&dir);
        for sub in ["logs", "tmp"] {
            fs::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
        }
        let log = fs::File::create(dir.join("logs/server.log")).map_err(|e| e.to_string())?;
        command.stdin(Stdio::null()).stdout(log.try_clone().map_err(|e| e.to_string())?).stderr(log);
        let child = command.spawn().map_err(|e| format!("cannot run {name}: {e}"))?;
        Ok(Proc { child, name: name.into(), dir })
    }

    /// nginx in the foreground on the configuration `conf`, written next to `dir`.
    pub fn nginx(name: &str, conf: &str, dir: PathBuf) -> Result<Proc, String> {
        let conf_path = dir.with_extension("conf");
        fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let mut command = Command::new("nginx");
        command.arg("-p").arg(&dir).arg("-c").arg(&conf_path);
        Proc::spawn(name, command.args(["-g", "daemon off;"]), dir)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let until = Instant::now() + grace;
        if !self.exited() {
            sys::signal(self.pid(), libc::SIGTERM);
        }
        while !self.exited() {
            if Instant::now() > until {
                eprintln!("bench: {} did not stop within {grace:?}; killing it", self.name);
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to 15 s until `addr` answers an event-stream request for
    /// `path`; an error if the process exits first.
    pub async fn wait_for_stream(&mut self, addr: SocketAddr, path: &str) -> Result<(), String> {
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            if self.exited() {
                return Err(format!("{} exited at start (see {})", self.name, self.dir.join("logs").display()));
            }
            let Err(e) = open_stream(addr, None, path, &[], Duration::from_secs(1)).await else { return Ok(()) };
            if Instant::now() > until {
                return Err(format!("{} did not open a stream within 15 s: {e}", self.name));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Stopped as `stop` does, not killed at once: a killed nginx leaves its
/// workers running, and with them whatever they inherited.
impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

pub fn start_redis(work: &Path) -> Result<(Proc, u16), String> {
    let port = free_port()?;
    let dir = work.join("redis");
    let options = format!("--port {port} --bind 127.0.0.1 --appendonly no --daemonize no --maxclients 1000");
    let mut command = Command::new("redis-server");
    command.args(options.split(' ')).args(["--save", "", "--dir"]).arg(&dir);
    let mut proc = Proc::spawn("redis-server", &mut command, dir)?;
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if proc.exited() || Instant::now() > until {
            return Err(format!("redis-server did not start (see {})", proc.dir.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((proc, port))
}

/// A server under test.
pub struct Server {
    pub kind: Kind,
    pub addr: SocketAddr,
    proc: Proc,
    /// The process that holds the connections: redisse itself, nginx's worker.
    pub pid: u32,
}

impl Server {
    /// Starts a server; `heartbeat` is the seconds between heartbeats (redisse) or pings (nchan).
    pub async fn start(kind: Kind, env: &Env, label: &str, heartbeat: u32) -> Result<Server, String> {
        Server::start_on(kind, env, label, heartbeat, free_port()?, &[]).await
    }

    /// Starts a server on `port`, redisse with `options` added.
    pub async fn start_on(
        kind: Kind,
        env: &Env,
        label: &str,
        heartbeat: u32,
        port: u16,
        options: &[String],
    ) -> Result<Server, String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let dir = env.work.join(format!("{label}-{}", kind.name().replace('+', "-")));
        let mut proc = match kind {
            Kind::Redisse => {
                let mut command = Command::new(env.root.join("target/release/redisse"));
                command.args(["--redis", &env.redis_url(), "-p", &port.to_string(), "-a", "127.0.0.1"]);
                command.args(["--heartbeat", &heartbeat.to_string(), "--stdout"]).args(options);
                Proc::spawn(kind.name(), &mut command, dir)?
            }
            Kind::Nchan | Kind::NchanRedis => {
                let template = env.nginx_template("nchan")?;
                let use_redis = if kind == Kind::NchanRedis { "on" } else { "off" };
                let conf = template
                    .replace("@PORT@", &port.to_string())
                    .replace("@REDIS_URL@", &env.redis_url())
                    .replace("@USE_REDIS@", use_redis)
                    .replace("@PING@", &heartbeat.to_string());
                Proc::nginx(kind.name(), &conf, dir)?
            }
        };
        proc.wait_for_stream(addr, &kind.stream_path("bench_probe")).await?;
        let pid = match (kind, &sys::children_of(proc.pid())[..]) {
            (Kind::Redisse, _) => proc.pid(),
            (_, [worker]) => *worker,
            (_, other) => return Err(format!("expected one nginx worker, found {other:?}")),
        };
        // Let the probe's close settle so the baseline is quiet.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Server { kind, addr, proc, pid })
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
        let log = fs::read_to_string(self.proc.dir.join("logs/server.log")).ok()?;
        let (_, rest) = log.split_once("at most ")?;
        rest.split_once(" streams")?.0.parse().ok()
    }

    /// Sends SIGTERM, as a deploy does, without waiting.
    pub fn terminate(&self) {
        sys::signal(self.pid, libc::SIGTERM);
    }

    /// Stops the server; returns false if it had died before.
    pub fn stop(mut self) -> bool {
        let was_alive = self.alive();
        self.proc.stop(Duration::from_secs(10));
        was_alive
    }
}

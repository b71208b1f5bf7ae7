//! The `redisse` command line (SPEC §2), shared by the plain binary and the
//! gem's executable: options, logging, pid file, and a server running on
//! its own threads that the caller waits on.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches};
use thiserror::Error;
use tokio::sync::Notify;
use tracing::{info, warn, Level};

use crate::blocking::{BlockingQueue, Popped};
use crate::redis_url::{InvalidUrl, RedisUrl};
use crate::server::{self, channels::ChannelSource, Config};
use crate::signal_mask;

/// The defaults that the caller knows: the gem's configured Redis URL and port.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub redis: String,
    pub port: String,
}

impl Defaults {
    /// `$REDISSE_REDIS` and `$REDISSE_PORT`, else the 0.4 gem's defaults.
    pub fn from_env() -> Self {
        Defaults {
            redis: std::env::var("REDISSE_REDIS")
                .unwrap_or_else(|_| "redis://localhost:6379/".into()),
            port: std::env::var("REDISSE_PORT").unwrap_or_else(|_| "8080".into()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub redis: String,
    pub address: String,
    pub port: u16,
    pub stdout: bool,
    pub verbose: bool,
    pub log: Option<PathBuf>,
    pub pid: Option<PathBuf>,
    pub heartbeat: Duration,
    /// Options of the 0.4 server that are accepted but ignored, with why.
    pub notices: Vec<String>,
}

pub enum Command {
    Help(String),
    Serve(Options),
}

#[derive(Debug, Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
}

fn command(defaults: &Defaults) -> clap::Command {
    clap::Command::new("redisse")
        .about("Server-Sent Events server backed by Redis")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(
            Arg::new("redis")
                .long("redis")
                .value_name("URL")
                .default_value(defaults.redis.clone())
                .help(
                    "Redis URL: redis://[:password@]host[:port][/db], rediss://..., unix:///path",
                ),
        )
        .arg(
            Arg::new("port")
                .short('p')
                .long("port")
                .value_name("PORT")
                .default_value(defaults.port.clone())
                .help("Port to listen on"),
        )
        .arg(
            Arg::new("address")
                .short('a')
                .long("address")
                .value_name("HOST")
                .default_value("0.0.0.0")
                .help("Address to bind to"),
        )
        .arg(
            Arg::new("stdout")
                .short('s')
                .long("stdout")
                .action(ArgAction::SetTrue)
                .help("Log to standard output"),
        )
        .arg(
            Arg::new("verbose")
                .short('v')
                .long("verbose")
                .action(ArgAction::SetTrue)
                .help("Log every event (debug level)"),
        )
        .arg(
            Arg::new("log")
                .short('l')
                .long("log")
                .value_name("FILE")
                .help("Log to FILE"),
        )
        .arg(
            Arg::new("pid")
                .short('P')
                .long("pid")
                .value_name("FILE")
                .help("Write the process id to FILE"),
        )
        .arg(
            Arg::new("heartbeat")
                .long("heartbeat")
                .value_name("SECONDS")
                .default_value("15")
                .help("Seconds between heartbeat comments on each stream"),
        )
        .arg(
            Arg::new("environment")
                .short('e')
                .long("environment")
                .value_name("NAME")
                .help(
                    "Accepted for compatibility; the server behaves the same in every environment",
                ),
        )
        .arg(
            Arg::new("daemonize")
                .short('d')
                .long("daemonize")
                .action(ArgAction::SetTrue)
                .help("Not supported: run under a process manager (systemd, foreman...)"),
        )
        .arg(
            Arg::new("config")
                .short('c')
                .long("config")
                .value_name("FILE")
                .help("Not supported: configure Redisse in Ruby, or with the options above"),
        )
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::SetTrue)
                .help("Show this help"),
        )
}

/// Reads the arguments (without the program name).
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    defaults: &Defaults,
) -> Result<Command, CliError> {
    let mut command = command(defaults);
    let args = std::iter::once(OsString::from("redisse")).chain(args);
    let matches = command
        .try_get_matches_from_mut(args)
        .map_err(|e| CliError::Usage(e.render().to_string()))?;
    if matches.get_flag("help") {
        return Ok(Command::Help(command.render_help().to_string()));
    }
    options(&matches).map(Command::Serve)
}

fn options(matches: &ArgMatches) -> Result<Options, CliError> {
    let value = |name: &str| matches.get_one::<String>(name).cloned();
    let usage =
        |message: String| CliError::Usage(format!("redisse: {message}\nTry 'redisse --help'."));
    if matches.get_flag("daemonize") {
        return Err(usage("--daemonize is not supported: run redisse in the foreground under a process manager (systemd, foreman, ...)".into()));
    }
    if let Some(file) = value("config") {
        return Err(usage(format!("--config {file} is not supported: configure Redisse in Ruby (Redisse.redis_server=, Redisse.channels) or with --redis and --port")));
    }
    let port_text = value("port").unwrap_or_default();
    let port = port_text
        .parse()
        .map_err(|_| usage(format!("invalid port {port_text:?}")))?;
    let heartbeat_text = value("heartbeat").unwrap_or_default();
    let heartbeat = heartbeat_text
        .parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0 && s.is_finite())
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            usage(format!(
                "invalid heartbeat {heartbeat_text:?}: a number of seconds above 0"
            ))
        })?;
    let mut notices = Vec::new();
    if let Some(environment) = value("environment") {
        notices.push(format!("--environment {environment} is ignored: the server behaves the same in every environment"));
    }
    Ok(Options {
        redis: value("redis").unwrap_or_default(),
        address: value("address").unwrap_or_default(),
        port,
        stdout: matches.get_flag("stdout"),
        verbose: matches.get_flag("verbose"),
        log: value("log").map(PathBuf::from),
        pid: value("pid").map(PathBuf::from),
        heartbeat,
        notices,
    })
}

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    InvalidUrl(#[from] InvalidUrl),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: io::Error },
    #[error("cannot open the log file {path}: {source}")]
    Log { path: String, source: io::Error },
    #[error("cannot write the pid file {path}: {source}")]
    PidFile { path: String, source: io::Error },
    #[error("cannot start the server's threads: {0}")]
    Runtime(io::Error),
}

/// A server running on its own threads.
pub struct RunningServer {
    pub local_addr: SocketAddr,
    stop: Arc<Notify>,
    /// Closed once the server has stopped; waiting on it can be interrupted.
    stopped: Arc<BlockingQueue<()>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Where a wait on the server ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Waited {
    Stopped,
    Interrupted,
}

impl RunningServer {
    /// Stops accepting and ends the streams; `wait` returns once done.
    pub fn shutdown(&self) {
        self.stop.notify_one();
    }

    /// Blocks until the server stopped, or `interrupt` was called.
    pub fn wait(&self) -> Waited {
        match self.stopped.pop() {
            Popped::Interrupted => Waited::Interrupted,
            Popped::Item(()) | Popped::Closed => {
                if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    let _ = thread.join();
                }
                Waited::Stopped
            }
        }
    }

    pub fn interrupt(&self) {
        self.stopped.interrupt();
    }
}

/// Sets up logging, binds, writes the pid file and starts serving.
/// `handle_signals`: stop on SIGTERM/SIGINT (the binary; in Ruby, Ruby owns signals).
pub fn start(
    options: Options,
    channels: ChannelSource,
    handle_signals: bool,
) -> Result<RunningServer, StartError> {
    init_logging(&options)?;
    for notice in &options.notices {
        warn!("{notice}");
    }
    let redis = RedisUrl::parse(&options.redis)?;
    match server::raise_fd_limit() {
        Ok(limit) => info!("open file limit: {limit}"),
        Err(e) => warn!("cannot raise the open file limit: {e}"),
    }
    let address = format!("{}:{}", options.address, options.port);
    let bind_error = |source| StartError::Bind {
        address: address.clone(),
        source,
    };
    let addr = address
        .to_socket_addrs()
        .map_err(bind_error)?
        .next()
        .ok_or_else(|| bind_error(io::Error::new(io::ErrorKind::NotFound, "no such address")))?;
    let listener = listen(addr).map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    let pid_file = options
        .pid
        .as_ref()
        .map(|path| PidFile::write(path.clone()))
        .transpose()?;
    let stop = Arc::new(Notify::new());
    let stopped = Arc::new(BlockingQueue::default());
    let config = Config {
        redis,
        heartbeat: options.heartbeat,
        channels,
    };
    let serve = {
        let (stop, stopped) = (stop.clone(), stopped.clone());
        move || -> Result<std::thread::JoinHandle<()>, StartError> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("redisse")
                .build()
                .map_err(StartError::Runtime)?;
            std::thread::Builder::new()
                .name("redisse-server".into())
                .spawn(move || {
                    runtime.block_on(async move {
                        let shutdown = async move {
                            tokio::select! {
                                _ = stop.notified() => {}
                                _ = signals(handle_signals) => info!("signal received"),
                            }
                        };
                        match tokio::net::TcpListener::from_std(listener) {
                            Ok(listener) => {
                                if let Err(e) = server::run(listener, config, shutdown).await {
                                    tracing::error!("server failed: {e}");
                                }
                            }
                            Err(e) => tracing::error!("cannot listen: {e}"),
                        }
                    });
                    runtime.shutdown_timeout(Duration::from_secs(1));
                    drop(pid_file);
                    stopped.close();
                })
                .map_err(StartError::Runtime)
        }
    };
    // Without our own handlers (in Ruby), the server's threads take no signal.
    let thread = if handle_signals {
        serve()?
    } else {
        signal_mask::with_signals_blocked(serve)?
    };
    Ok(RunningServer {
        local_addr,
        stop,
        stopped,
        thread: Mutex::new(Some(thread)),
    })
}

/// Connections the kernel may hold for `accept`; it caps this at
/// `net.core.somaxconn`. The usual 128 overflows when thousands of
/// browsers reconnect at once (a server restart), and every dropped SYN
/// costs its client a second or more before it tries again.
const LISTEN_BACKLOG: i32 = 4096;

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

async fn signals(enabled: bool) {
    if !enabled {
        return std::future::pending().await;
    }
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot handle signals; stop the server another way");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Removed when the server stops.
struct PidFile(PathBuf);

impl PidFile {
    fn write(path: PathBuf) -> Result<Self, StartError> {
        std::fs::write(&path, format!("{}\n", std::process::id())).map_err(|source| {
            StartError::PidFile {
                path: path.display().to_string(),
                source,
            }
        })?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Logs to `--log FILE`, else standard output with `--stdout`, else
/// standard error. The first server of a process sets it up.
fn init_logging(options: &Options) -> Result<(), StartError> {
    let level = if options.verbose {
        Level::DEBUG
    } else {
        Level::INFO
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false);
    let result = if let Some(path) = &options.log {
        let file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| StartError::Log {
                path: path.display().to_string(),
                source,
            })?;
        // A Mutex of a file is a writer that threads share, line by line.
        builder.with_writer(Mutex::new(file)).try_init()
    } else if options.stdout {
        builder.with_writer(io::stdout).try_init()
    } else {
        builder.with_writer(io::stderr).try_init()
    };
    // Already set up by an earlier server in this process: keep it.
    let _ = result;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Command, CliError> {
        let defaults = Defaults {
            redis: "redis://default/".into(),
            port: "8080".into(),
        };
        parse(args.iter().map(OsString::from), &defaults)
    }

    fn serve(args: &[&str]) -> Options {
        match parse_args(args) {
            Ok(Command::Serve(options)) => options,
            Ok(Command::Help(_)) => panic!("help"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_and_options() {
        let o = serve(&[]);
        assert_eq!(
            (o.redis.as_str(), o.port, o.address.as_str()),
            ("redis://default/", 8080, "0.0.0.0")
        );
        assert_eq!(o.heartbeat, Duration::from_secs(15));
        let o = serve(&[
            "--redis",
            "redis://r/2",
            "-p",
            "9000",
            "-a",
            "127.0.0.1",
            "-s",
            "-v",
            "-P",
            "x.pid",
            "--heartbeat",
            "0.5",
        ]);
        assert_eq!(
            (o.redis.as_str(), o.port, o.address.as_str()),
            ("redis://r/2", 9000, "127.0.0.1")
        );
        assert!(o.stdout && o.verbose);
        assert_eq!(o.pid, Some(PathBuf::from("x.pid")));
        assert_eq!(o.heartbeat, Duration::from_millis(500));
        assert_eq!(
            serve(&["-l", "server.log"]).log,
            Some(PathBuf::from("server.log"))
        );
    }

    #[test]
    fn help() {
        let Ok(Command::Help(text)) = parse_args(&["-h"]) else {
            panic!("no help")
        };
        for option in [
            "--redis",
            "--port",
            "--address",
            "--stdout",
            "--verbose",
            "--log",
            "--pid",
            "--heartbeat",
        ] {
            assert!(text.contains(option), "{option} missing from help");
        }
    }

    #[test]
    fn old_options_are_accepted_or_explained() {
        assert_eq!(serve(&["-e", "production"]).notices.len(), 1);
        let Err(CliError::Usage(message)) = parse_args(&["-d"]) else {
            panic!()
        };
        assert!(message.contains("--daemonize is not supported"));
        let Err(CliError::Usage(message)) = parse_args(&["-c", "config.rb"]) else {
            panic!()
        };
        assert!(message.contains("--config config.rb is not supported"));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse_args(&["-p", "http"]).is_err());
        assert!(parse_args(&["--heartbeat", "0"]).is_err());
        assert!(parse_args(&["--nonsense"]).is_err());
    }
}

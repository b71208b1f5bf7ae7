//! The server's life cycle, for the plain binary and the gem alike: set up
//! logging, bind, write the pid file, run [`super::run`] on a tokio runtime
//! of its own threads, and let the caller stop it and wait for it.
//!
//! ```text
//! start(settings, channels, signals) ──▶ RunningServer
//!     .shutdown()   stop accepting, end the streams
//!     .wait()       until stopped (interruptible, for Ruby)
//! ```

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;
use tracing::{info, warn, Level};

use super::channel_source::ChannelSource;
use super::{Access, Config, Limits, Stop};
use crate::blocking::{BlockingQueue, Popped};
use crate::protocol::cors::Origins;
use crate::redis_url::{InvalidUrl, RedisUrl};
use crate::signal_mask;

/// What a server is started with: the command line's options (see `cli`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub redis: String,
    pub address: String,
    pub port: u16,
    pub stdout: bool,
    pub verbose: bool,
    pub log: Option<PathBuf>,
    pub pid: Option<PathBuf>,
    pub heartbeat: Duration,
    /// See `Limits::send_timeout`.
    pub send_timeout: Duration,
    /// See `Config::drain`.
    pub drain: Duration,
    pub max_channels: usize,
    /// `None`: derived from the open-file limit (see `Limits::max_streams_for`).
    pub max_streams: Option<usize>,
    /// Where the token secret is; else `$REDISSE_SECRET`. Never the secret
    /// itself: a command line is visible to every user of the machine.
    pub secret_file: Option<PathBuf>,
    /// The secret the application gave (`Redisse.secret`, for a server
    /// started from Ruby): used unless `secret_file` is given.
    pub secret: Option<Vec<u8>>,
    /// The previous secret, during a rotation; else `$REDISSE_SECRET_PREVIOUS`.
    pub previous_secret_file: Option<PathBuf>,
    /// `--cors-origin` values.
    pub cors_origins: Vec<String>,
    /// Options of the 0.4 server that are accepted but ignored, with why.
    pub notices: Vec<String>,
}

/// Who handles SIGTERM and SIGINT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signals {
    /// The server stops on them (the plain binary).
    Handle,
    /// The caller owns them (Ruby): the server's threads never take a signal.
    LeaveToCaller,
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
    #[error("cannot read the secret file {path}: {source}")]
    SecretFile { path: String, source: io::Error },
    /// A secret was asked for, and is empty: the server would open every
    /// stream to anybody.
    #[error("{0} is empty: give it the secret, or remove it to run without tokens")]
    EmptySecret(String),
    #[error("cannot start the server's threads: {0}")]
    Runtime(io::Error),
}

/// A server running on its own threads.
pub struct RunningServer {
    local_addr: SocketAddr,
    /// How many times it was asked to stop: the first drains (with
    /// `--drain`), the second ends every stream at once.
    stops: watch::Sender<u32>,
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
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and ends the streams (spread over `--drain`, if
    /// set; at once when called again); `wait` returns once done.
    pub fn shutdown(&self) {
        self.stops.send_modify(|stops| *stops += 1);
    }

    /// Blocks until the server stopped, or `interrupt` was called.
    pub fn wait(&self) -> Waited {
        match self.stopped.pop() {
            Popped::Interrupted => Waited::Interrupted,
            Popped::Item(()) | Popped::Closed => {
                let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(thread) = thread {
                    let _ = thread.join();
                }
                Waited::Stopped
            }
        }
    }

    /// Makes a `wait` in progress return `Interrupted`.
    pub fn interrupt(&self) {
        self.stopped.interrupt();
    }
}

/// Sets up logging, binds, writes the pid file and starts serving.
pub fn start(
    settings: Settings,
    channels: ChannelSource,
    signals: Signals,
) -> Result<RunningServer, StartError> {
    init_logging(&settings)?;
    for notice in &settings.notices {
        warn!("{notice}");
    }
    let redis = RedisUrl::parse(&settings.redis)?;
    let access = Access {
        secrets: secrets(&settings)?,
        cors: Origins::from_options(&settings.cors_origins),
    };
    if !access.secrets.is_empty() {
        info!(
            "streams need a token signed with the secret ({} in use)",
            access.secrets.len()
        );
    }
    let fd_limit = raise_fd_limit().unwrap_or_else(|e| {
        warn!("cannot raise the open file limit: {e}");
        1024
    });
    let limits = Limits {
        send_timeout: settings.send_timeout,
        max_channels: settings.max_channels,
        max_streams: settings
            .max_streams
            .unwrap_or_else(|| Limits::max_streams_for(fd_limit, open_descriptors())),
    };
    info!(
        "open file limit: {fd_limit}; at most {} streams, {} channels each",
        limits.max_streams, limits.max_channels
    );
    let listener = bind(&settings.address, settings.port)?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
        address: format!("{}:{}", settings.address, settings.port),
        source,
    })?;
    let pid_file = settings.pid.clone().map(PidFile::write).transpose()?;
    let config = Config {
        redis,
        heartbeat: settings.heartbeat,
        drain: settings.drain,
        channels,
        limits,
        access,
    };
    let stops = watch::Sender::new(0u32);
    let stopped = Arc::new(BlockingQueue::default());
    // In Ruby, the server's threads never take a signal (see signal_mask).
    let mask = move || {
        if signals == Signals::LeaveToCaller {
            signal_mask::block_async_signals();
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("redisse")
        .on_thread_start(mask)
        .build()
        .map_err(StartError::Runtime)?;
    let thread = {
        let (stop_requests, stopped) = (stops.clone(), stopped.clone());
        std::thread::Builder::new()
            .name("redisse-server".into())
            .spawn(move || {
                mask();
                runtime.block_on(async move {
                    // Signals count as stop requests, as `shutdown` calls do.
                    let counting = count_signals(signals, stop_requests.clone());
                    tokio::spawn(counting);
                    let stop = Stop::new(stop_requests.subscribe());
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            if let Err(e) = super::run(listener, config, stop).await {
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
            .map_err(StartError::Runtime)?
    };
    Ok(RunningServer {
        local_addr,
        stops,
        stopped,
        thread: Mutex::new(Some(thread)),
    })
}

/// Connections the kernel may hold for `accept`; it caps this at
/// `net.core.somaxconn`. The usual 128 overflows when thousands of
/// browsers reconnect at once (a server restart), and every dropped SYN
/// costs its client a second or more before it tries again.
const LISTEN_BACKLOG: i32 = 4096;

fn bind(address: &str, port: u16) -> Result<TcpListener, StartError> {
    let address = format!("{address}:{port}");
    let bind_error = |source| StartError::Bind {
        address: address.clone(),
        source,
    };
    let addr = address
        .to_socket_addrs()
        .map_err(bind_error)?
        .next()
        .ok_or_else(|| bind_error(io::Error::new(io::ErrorKind::NotFound, "no such address")))?;
    listen(addr).map_err(bind_error)
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Counts SIGTERM and SIGINT as stop requests (the plain binary).
async fn count_signals(signals: Signals, stops: watch::Sender<u32>) {
    if signals == Signals::LeaveToCaller {
        return;
    }
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot handle signals; stop the server another way");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        info!("signal received");
        stops.send_modify(|stops| *stops += 1);
    }
}

/// Descriptors this process has open now (0 if it cannot tell).
fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count() as u64)
}

/// Raises the soft limit on open files to the hard one: every stream is a
/// socket. Returns the limit now in force.
fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// The current secret, then the previous one, each from its file, else
/// (the current one) the application's, else its environment variable. One
/// that was asked for but is empty stops the server: an unset secret turns
/// tokens off, and must never come from a typo.
fn secrets(settings: &Settings) -> Result<Vec<Vec<u8>>, StartError> {
    let read = |file: &Option<PathBuf>,
                given: Option<&Vec<u8>>,
                variable: &str|
     -> Result<Option<Vec<u8>>, StartError> {
        let (secret, source) = match (file, given) {
            (Some(path), _) => {
                let secret = std::fs::read(path).map_err(|source| StartError::SecretFile {
                    path: path.display().to_string(),
                    source,
                })?;
                (secret, format!("the secret file {}", path.display()))
            }
            (None, Some(given)) => (given.clone(), "the secret given by the application".into()),
            (None, None) => match std::env::var_os(variable) {
                Some(value) => (value.into_encoded_bytes(), format!("${variable}")),
                None => return Ok(None),
            },
        };
        // A file usually ends with a newline that is not part of the secret.
        let secret = secret.trim_ascii().to_vec();
        if secret.is_empty() {
            return Err(StartError::EmptySecret(source));
        }
        Ok(Some(secret))
    };
    Ok([
        read(
            &settings.secret_file,
            settings.secret.as_ref(),
            "REDISSE_SECRET",
        )?,
        read(
            &settings.previous_secret_file,
            None,
            "REDISSE_SECRET_PREVIOUS",
        )?,
    ]
    .into_iter()
    .flatten()
    .collect())
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
fn init_logging(settings: &Settings) -> Result<(), StartError> {
    let level = if settings.verbose {
        Level::DEBUG
    } else {
        Level::INFO
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false);
    let result = if let Some(path) = &settings.log {
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
    } else if settings.stdout {
        builder.with_writer(io::stdout).try_init()
    } else {
        builder.with_writer(io::stderr).try_init()
    };
    // Already set up by an earlier server in this process: keep it.
    let _ = result;
    Ok(())
}

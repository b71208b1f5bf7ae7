//! The SSE server: accepts connections, answers each with hyper, and keeps
//! the shared parts (hub, store, stats) that streams use.
//!
//! `run(listener, config, shutdown)` serves until `shutdown` completes, then
//! stops accepting, ends every stream cleanly and returns.

pub mod channels;
pub mod http;
pub mod hub;
pub mod mailbox;
pub mod store;
pub mod stream;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tracing::{error, info, warn};

use self::channels::ChannelSource;
use self::http::Peer;
use self::hub::Hub;
use self::store::Store;
use crate::protocol::stats::Stats;
use crate::redis_url::RedisUrl;

/// The largest request head accepted; a longer one gets a 431. Room for a
/// few hundred long channel names in a redirect URL.
const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// How long streams get to end once the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Pause after `accept` failed, e.g. out of file descriptors: the listener
/// stays readable, so retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub struct Config {
    pub redis: RedisUrl,
    pub heartbeat: Duration,
    pub channels: ChannelSource,
}

/// What every connection shares.
pub struct Shared {
    pub hub: Hub,
    pub store: Store,
    pub stats: Arc<Stats>,
    pub channels: ChannelSource,
}

/// Serves until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let (hub, hub_task) = Hub::start(config.redis.clone(), config.heartbeat, stopped);
    let shared = Arc::new(Shared {
        hub,
        store: Store::new(config.redis),
        stats: Arc::default(),
        channels: config.channels,
    });
    let graceful = GracefulShutdown::new();
    info!("listening on http://{}", listener.local_addr()?);
    tokio::pin!(shutdown);
    let mut accept_failing = false;
    loop {
        let (socket, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    accept_failing = false;
                    accepted
                }
                Err(e) => {
                    if !accept_failing {
                        error!("cannot accept connections ({e}); retrying every {ACCEPT_BACKOFF:?}");
                        accept_failing = true;
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let peer = Peer {
            remote,
            local: socket.local_addr()?,
            abort: Arc::new(Notify::new()),
        };
        let abort = peer.abort.clone();
        let shared = shared.clone();
        let peer = Arc::new(peer);
        let service = service_fn(move |request| {
            let shared = shared.clone();
            let peer = peer.clone();
            async move { Ok::<_, std::convert::Infallible>(http::respond(shared, request, &peer).await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .max_buf_size(MAX_REQUEST_HEAD)
            .serve_connection(TokioIo::new(socket), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                _ = abort.notified() => {}
            }
        });
    }
    drop(listener);
    info!("stopping: ending every stream");
    if let ChannelSource::Application(requests) = &shared.channels {
        requests.shut();
    }
    let _ = stop.send(true);
    let _ = hub_task.await;
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("some connections did not end within {SHUTDOWN_GRACE:?}");
    }
    info!("stopped");
    Ok(())
}

/// Raises the soft limit on open files to the hard one: every stream is a
/// socket. Returns the limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
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
    Ok(limit.rlim_cur as u64)
}

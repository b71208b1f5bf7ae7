//! The SSE server: accepts connections, answers each with hyper, and keeps
//! the shared parts (hub, store, stats) that streams use.
//!
//! `run(listener, config, shutdown)` serves until `shutdown` completes, then
//! stops accepting, ends every stream cleanly and returns.

pub mod channels;
pub mod connection;
pub mod hub;
pub mod mailbox;
pub mod respond;
pub mod store;
pub mod stream;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use self::channels::ChannelSource;
use self::hub::Hub;
use self::store::Store;
use crate::protocol::stats::Stats;
use crate::redis_url::RedisUrl;

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
    let (hub, hub_task) = Hub::start(config.redis.clone(), config.heartbeat, stopped.clone());
    let shared = Arc::new(Shared {
        hub,
        store: Store::new(config.redis),
        stats: Arc::default(),
        channels: config.channels,
    });
    // Every connection holds a sender; all are gone once every connection ended.
    let (connection_alive, mut connections_done) = mpsc::channel::<()>(1);
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
        // Everything else per connection happens in its own task, so that
        // this loop only accepts: thousands of browsers may arrive at once.
        let (shared, stopped, alive) = (shared.clone(), stopped.clone(), connection_alive.clone());
        tokio::spawn(async move {
            connection::serve(socket, remote, shared, stopped).await;
            drop(alive);
        });
    }
    drop(listener);
    info!("stopping: ending every stream");
    if let ChannelSource::Application(requests) = &shared.channels {
        requests.shut();
    }
    let _ = stop.send(true);
    let _ = hub_task.await;
    drop(connection_alive);
    if tokio::time::timeout(SHUTDOWN_GRACE, connections_done.recv())
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
    Ok(limit.rlim_cur)
}

//! The SSE server: accepts connections, serves each in a task of its own
//! (HTTP/1.1 parsed with httparse, see `protocol::http`), and keeps the
//! shared parts (hub, store, stats) that streams use.
//!
//! `run(listener, config, shutdown)` serves until `shutdown` completes, then
//! stops accepting, ends every stream cleanly and returns. `runtime` runs
//! it on threads of its own, for the binary and the gem.
//!
//! - `connection`: one client connection: request heads in, answers out.
//! - `respond`: what a request gets (stats, an error, a stream).
//! - `stream`: one event stream: opening it, then its live events.
//! - `mailbox`: a stream's bounded queue, filled by the hub.
//! - `hub`: the one pub/sub connection, fanning events out to mailboxes.
//! - `store`: the one command connection (counter, histories).
//! - `channels`: where a stream's channels come from (query or application).

pub mod channels;
pub mod connection;
pub mod hub;
pub mod mailbox;
pub mod respond;
pub mod runtime;
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
use self::connection::Connection;
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
        store: Store::new(&config.redis).map_err(io::Error::other)?,
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
            Connection::new(socket, remote, &shared)
                .serve(&shared, stopped)
                .await;
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

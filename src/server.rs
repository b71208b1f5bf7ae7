//! The SSE server: accepts connections, serves each in a task of its own
//! (HTTP/1.1 parsed with httparse, see `protocol::http`), and keeps the
//! shared parts (hub, history reader, stats) that streams use.
//!
//! `run(listener, config, stop)` serves until asked to stop, then stops
//! accepting, ends every stream cleanly (spread over `Config::drain`, or
//! at once when asked again) and returns. `runtime` runs it on threads of
//! its own, for the binary and the gem.
//!
//! - `accept`: the accept loop's connections, also out of descriptors.
//! - `connection`: one client connection: request heads in, answers out.
//! - `respond`: what a request gets (stats, an error, a stream).
//! - `stream`: one event stream: opening it, then its live events.
//! - `mailbox`: a stream's bounded queue, filled by the hub.
//! - `metrics`: the stats of 0.4, and more for Prometheus and health checks.
//! - `hub`: the one pub/sub connection, fanning events out to mailboxes.
//! - `history_reader`: the one command connection (counter, histories).
//! - `heap`: gives the memory of a burst of openings back to the system.
//! - `channel_source`: where a stream's channels come from (query or
//!   application).
//! - `runtime`: the server on threads of its own, for the binary and the gem.

pub mod accept;
pub mod channel_source;
pub mod connection;
pub mod heap;
pub mod history_reader;
pub mod hub;
pub mod mailbox;
pub mod metrics;
pub mod respond;
pub mod runtime;
pub mod stream;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use self::accept::Acceptor;
use self::channel_source::ChannelSource;
use self::connection::ClientConnection;
use self::history_reader::HistoryReader;
use self::hub::{Heartbeat, Hub};
use self::metrics::Metrics;
use crate::redis_url::RedisUrl;

/// How long streams get to end once the server stops (after the drain).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub struct Config {
    pub redis: RedisUrl,
    pub heartbeat: Duration,
    /// How long a stopping server takes to end its streams, spread evenly,
    /// so that their clients come back to the other servers a few at a
    /// time; zero ends them all at once (as 0.4 did).
    pub drain: Duration,
    pub channels: ChannelSource,
    pub limits: Limits,
    pub access: Access,
}

/// Who may open which streams, and from which pages.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// With secrets, a stream request must carry a token signed with one of
    /// them (the current first, then the previous); its channels are the
    /// token's.
    pub secrets: Vec<Vec<u8>>,
    pub cors: crate::protocol::cors::Origins,
}

/// What one client may ask for, and how many may be served at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Channels per stream; more get a 400.
    pub max_channels: usize,
    /// Streams open at once; more get a 503 with `Retry-After`.
    pub max_streams: usize,
    /// How long a client may take nothing of what is written to it before
    /// it is dropped: a stream (its opening included), or a plain answer.
    pub send_timeout: Duration,
}

impl Limits {
    pub const DEFAULT_MAX_CHANNELS: usize = 1000;
    /// Long enough that a loaded machine is not mistaken for stalled
    /// clients (dropping them all at once would bring them all back at once).
    pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);

    /// Streams that fit in `fd_limit` descriptors of which `open` are in
    /// use already (the log, the listener, whatever the process inherited
    /// or Ruby opened), leaving room for the Redis connections, requests
    /// that are not streams (stats, refusals) and a reserve: a twentieth
    /// of the limit, 16 to 256.
    pub fn max_streams_for(fd_limit: u64, open: u64) -> usize {
        let fd_limit = usize::try_from(fd_limit).unwrap_or(usize::MAX);
        let open = usize::try_from(open).unwrap_or(usize::MAX);
        let headroom = (fd_limit / 20).clamp(16, 256);
        fd_limit
            .saturating_sub(open)
            .saturating_sub(headroom)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::Limits;

    #[test]
    fn streams_fit_in_the_descriptors_left() {
        assert_eq!(Limits::max_streams_for(20_000, 0), 19_744);
        assert_eq!(Limits::max_streams_for(20_000, 100), 19_644);
        assert_eq!(Limits::max_streams_for(128, 3), 109);
        assert_eq!(Limits::max_streams_for(16, 40), 1);
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_channels: Self::DEFAULT_MAX_CHANNELS,
            max_streams: usize::MAX,
            send_timeout: Self::DEFAULT_SEND_TIMEOUT,
        }
    }
}

/// What every connection shares.
pub struct Shared {
    pub hub: Hub,
    pub history: HistoryReader,
    pub metrics: Arc<Metrics>,
    pub channels: ChannelSource,
    pub limits: Limits,
    pub access: Access,
    /// Streams open or opening, for `max_streams`.
    pub streams: Arc<StreamSlots>,
    /// The server is ending its streams: new ones are refused.
    pub draining: AtomicBool,
}

/// When a server stops: once asked (it drains, with `Config::drain`), and
/// when asked again (every stream ends at once). Each request adds one to
/// the count it watches: a signal, or `RunningServer::shutdown`.
pub struct Stop {
    requests: watch::Receiver<u32>,
}

impl Stop {
    pub fn new(requests: watch::Receiver<u32>) -> Self {
        Stop { requests }
    }

    async fn asked(&mut self, times: u32) {
        // An error means every sender is gone: nobody can ask any more.
        if self
            .requests
            .wait_for(|asked| *asked >= times)
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }
}

/// Counts streams against `max_streams`.
#[derive(Debug, Default)]
pub struct StreamSlots(AtomicUsize);

/// One stream's place among `max_streams`, given back when dropped.
pub struct StreamSlot(Arc<StreamSlots>);

impl StreamSlots {
    pub fn reserve(self: &Arc<Self>, max: usize) -> Option<StreamSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .ok()
            .map(|_| StreamSlot(self.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves until asked to stop.
pub async fn run(listener: TcpListener, config: Config, mut stop: Stop) -> io::Result<()> {
    // Turns true when every stream and connection is to end.
    let (end_all, ending) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let (hub, hub_task) = Hub::start(
        config.redis.clone(),
        Heartbeat::new(config.heartbeat, config.limits.send_timeout),
        metrics.clone(),
        ending.clone(),
    );
    let shared = Arc::new(Shared {
        hub,
        history: HistoryReader::new(&config.redis, metrics.clone()),
        metrics,
        channels: config.channels,
        limits: config.limits,
        access: config.access,
        streams: Arc::default(),
        draining: AtomicBool::new(false),
    });
    tokio::spawn(heap::give_back_after_bursts(shared.metrics.clone(), ending.clone()));
    // Every connection holds a sender; all are gone once every connection ended.
    let (connection_alive, mut connections_done) = mpsc::channel::<()>(1);
    let mut acceptor = Acceptor::new(listener, shared.metrics.clone());
    info!("listening on http://{}", acceptor.local_addr()?);
    loop {
        let (socket, remote) = tokio::select! {
            _ = stop.asked(1) => break,
            accepted = acceptor.accept() => accepted,
        };
        // Everything else per connection happens in its own task, so that
        // this loop only accepts: thousands of browsers may arrive at once.
        let (shared, ending, alive) = (shared.clone(), ending.clone(), connection_alive.clone());
        tokio::spawn(async move {
            ClientConnection::new(socket, remote, &shared)
                .serve(&shared, ending)
                .await;
            drop(alive);
        });
    }
    drop(acceptor);
    if !config.drain.is_zero() {
        shared.draining.store(true, Ordering::Release);
        info!(
            "stopping: ending the streams over {:?} (--drain); asked again, ends them at once",
            config.drain
        );
        tokio::select! {
            _ = shared.hub.drain(config.drain) => info!("every stream was drained"),
            _ = stop.asked(2) => info!("asked again: ending the streams at once"),
        }
    }
    info!("stopping: ending every stream");
    if let ChannelSource::Application(requests) = &shared.channels {
        requests.shut();
    }
    let _ = end_all.send(true);
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

//! Accepting connections, also when the process is out of file descriptors.
//!
//! At the open-file limit `accept` fails with EMFILE while the connection
//! stays in the kernel's backlog: its client waits for an answer that never
//! comes, and the listener stays readable, so a naive loop spins. So one
//! descriptor is kept in reserve: at EMFILE it is freed, the waiting
//! connection accepted on it, answered 503 with `Retry-After` and closed,
//! and the reserve taken again. Nobody hangs in the backlog, and the log
//! says it once per episode.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tracing::{error, info};

use super::metrics::Metrics;
use crate::protocol::http::{response_head, Framing, Status};

/// Pause after `accept` failed for another reason, or when no descriptor
/// could be kept in reserve: the listener stays readable, so retrying at
/// once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// What a client is told to wait before trying again, in seconds.
pub const RETRY_AFTER: &str = "5";
const BUSY: &str = "503 Service Unavailable\nThe server is full: try again later.\n";
/// An episode of failures ends after this long without one: at the limit,
/// descriptors come and go, and the log must not flap with them.
const EPISODE_END: Duration = Duration::from_secs(1);

pub struct Acceptor {
    listener: TcpListener,
    metrics: Arc<Metrics>,
    reserve: Option<File>,
    /// The last failure of the episode under way, already logged.
    failing_since: Option<Instant>,
    /// Connections answered 503 in this episode.
    turned_away: u64,
}

impl Acceptor {
    pub fn new(listener: TcpListener, metrics: Arc<Metrics>) -> Self {
        Acceptor {
            listener,
            metrics,
            reserve: take_reserve(),
            failing_since: None,
            turned_away: 0,
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next connection to serve.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(accepted) => {
                    if self
                        .failing_since
                        .is_some_and(|last| last.elapsed() > EPISODE_END)
                    {
                        info!(
                            "accepting connections again ({} turned away meanwhile)",
                            self.turned_away
                        );
                        self.failing_since = None;
                        self.turned_away = 0;
                    }
                    return accepted;
                }
                Err(e) => self.failed(e).await,
            }
        }
    }

    async fn failed(&mut self, e: io::Error) {
        let out_of_descriptors = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
        if self.failing_since.is_none() {
            error!("cannot accept connections ({e}); answering 503 until descriptors are free");
        }
        self.failing_since = Some(Instant::now());
        if out_of_descriptors && self.reserve.take().is_some() {
            // The reserve's descriptor is now free for the waiting connection.
            if let Ok((socket, _)) = self.listener.accept().await {
                turn_away(socket);
                self.turned_away += 1;
                self.metrics.unavailable.fetch_add(1, Ordering::Relaxed);
            }
            self.reserve = take_reserve();
            if self.reserve.is_some() {
                return;
            }
        }
        tokio::time::sleep(ACCEPT_BACKOFF).await;
        if self.reserve.is_none() {
            self.reserve = take_reserve();
        }
    }
}

fn take_reserve() -> Option<File> {
    File::open("/dev/null").ok()
}

/// Answers 503 without waiting: the client's request has been read by the
/// kernel already, and is dropped so that closing does not reset the
/// answer away.
fn turn_away(socket: TcpStream) {
    let mut answer = response_head(
        Status::ServiceUnavailable,
        &[("Content-Type", "text/plain"), ("Retry-After", RETRY_AFTER)],
        Framing::Length(BUSY.len()),
        false,
    );
    answer.extend_from_slice(BUSY.as_bytes());
    let mut scratch = [0u8; 4096];
    while matches!(socket.try_read(&mut scratch), Ok(n) if n > 0) {}
    let _ = socket.try_write(&answer);
    if let Ok(socket) = socket.into_std() {
        let _ = socket.shutdown(std::net::Shutdown::Write);
    }
}

//! Draining: the streams ended one after the other, spread evenly over a
//! window, each told when to reconnect (`retry:`), so that a server that
//! stops sends its clients to the rest of the fleet a few at a time rather
//! than all at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::server::mailbox::Mailbox;

/// A request to drain, answered once every stream was ended.
pub(super) struct DrainRequest {
    pub over: Duration,
    pub done: oneshot::Sender<()>,
}

/// A drain under way.
pub(super) struct Draining {
    queue: VecDeque<Arc<Mailbox>>,
    every: Duration,
    next: Instant,
    /// Dropped (the drain is over) when the queue is empty.
    done: Option<oneshot::Sender<()>>,
}

/// The reconnection delay told to a drained stream's client: from 1 s to
/// 2 s, by stream, so that clients of servers drained together do not
/// come back in step either.
fn retry_after(stream: u64) -> Duration {
    let spread = stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54; // 0..1024
    Duration::from_millis(1000 + spread)
}

impl Draining {
    pub(super) fn start(streams: Vec<Arc<Mailbox>>, request: DrainRequest) -> Self {
        let count = streams.len().max(1) as u32;
        Draining {
            queue: streams.into(),
            every: request.over / count,
            next: Instant::now(),
            done: Some(request.done),
        }
    }

    /// When the next stream ends.
    pub(super) fn next(&self) -> Instant {
        self.next
    }

    /// Ends the streams whose time came; `true` once all are ended.
    pub(super) fn step(&mut self) -> bool {
        while self.next <= Instant::now() {
            let Some(mailbox) = self.queue.pop_front() else {
                break;
            };
            mailbox.drain(retry_after(mailbox.id()));
            self.next += self.every;
        }
        if self.queue.is_empty() {
            self.done.take();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_spread_over_a_second() {
        let retries: Vec<u128> = (0..1000).map(|id| retry_after(id).as_millis()).collect();
        assert!(retries.iter().all(|&ms| (1000..2024).contains(&ms)));
        let early = retries.iter().filter(|&&ms| ms < 1512).count();
        assert!(
            (350..650).contains(&early),
            "{early} of 1000 in the first half"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn streams_end_evenly_over_the_window() {
        let streams: Vec<_> = (0..4).map(|_| Mailbox::new()).collect();
        let (done, drained) = oneshot::channel();
        let mut draining = Draining::start(
            streams.clone(),
            DrainRequest {
                over: Duration::from_secs(8),
                done,
            },
        );
        let started = Instant::now();
        let mut ended_at = Vec::new();
        while !draining.step() {
            ended_at.push(streams.iter().filter(|m| m.is_closed()).count());
            tokio::time::sleep_until(draining.next()).await;
        }
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(6),
            "the last at 3/4 of 8 s"
        );
        assert_eq!(ended_at, vec![1, 2, 3]);
        assert!(drained.await.is_err(), "answered by dropping");
    }
}

//! One event stream: the body of a `text/event-stream` response.
//!
//! It writes the opening (missed events, history or `lastEventId`), then
//! live events from its mailbox, never an id it already sent and never an
//! older one. Whatever is waiting when the socket can take more goes out as
//! one chunk, so a burst costs one write, not one per event. With long
//! polling it ends one second after its first event.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::time::Sleep;
use tracing::info;

use super::hub::Hub;
use super::mailbox::{Batch, Mailbox};
use crate::protocol::history::{self, Opening};
use crate::protocol::stats::Stats;

/// How long a long-polling stream stays open after its first event, so
/// that events published close together arrive in one response.
pub const POLLING_LINGER: Duration = Duration::from_secs(1);
pub const HEARTBEAT: &[u8] = b": hb\n";

pub struct EventStream {
    /// The opening, written first.
    opening: Option<Bytes>,
    mailbox: Arc<Mailbox>,
    /// The newest id sent.
    position: u64,
    polling: bool,
    closing: Option<Pin<Box<Sleep>>>,
    batch: Batch,
    done: bool,
    registration: Registration,
}

/// Keeps the stream counted and subscribed while it lives.
struct Registration {
    hub: Hub,
    stream: u64,
    stats: Arc<Stats>,
    peer: SocketAddr,
    opened: Instant,
    events_sent: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.stream);
        self.stats.connected.fetch_sub(1, Relaxed);
        self.stats.served.fetch_add(1, Relaxed);
        info!(
            "stream closed: {} after {:.1}s, {} event(s)",
            self.peer,
            self.opened.elapsed().as_secs_f64(),
            self.events_sent
        );
    }
}

impl EventStream {
    /// A stream whose mailbox the hub already fills.
    pub fn new(
        opening: Opening,
        mailbox: Arc<Mailbox>,
        polling: bool,
        hub: Hub,
        stats: Arc<Stats>,
        peer: SocketAddr,
    ) -> Self {
        stats.connected.fetch_add(1, Relaxed);
        let mut text = BytesMut::new();
        let mut count = 0;
        if opening.missed {
            stats.missing.fetch_add(1, Relaxed);
            text.extend_from_slice(history::MISSED_EVENTS);
            count += 1;
        }
        for event in &opening.events {
            text.extend_from_slice(&event.text);
            count += 1;
        }
        // The `lastEventId` event is not an event for long polling: it does not end the poll.
        let starts_poll = count > 0;
        if let Some(id) = opening.last_event_id {
            text.extend_from_slice(&history::last_event_id_event(id));
            count += 1;
        }
        stats.events.fetch_add(count, Relaxed);
        let stream = mailbox.id();
        let mut this = EventStream {
            opening: (!text.is_empty()).then(|| text.freeze()),
            mailbox,
            position: opening.position,
            polling,
            closing: None,
            batch: Batch::default(),
            done: false,
            registration: Registration {
                hub,
                stream,
                stats,
                peer,
                opened: Instant::now(),
                events_sent: count,
            },
        };
        if starts_poll {
            this.start_closing();
        }
        this
    }

    fn start_closing(&mut self) {
        if self.polling && self.closing.is_none() {
            self.closing = Some(Box::pin(tokio::time::sleep(POLLING_LINGER)));
        }
    }

    /// The live events of a batch that the client has not had yet, and the
    /// heartbeat if one is due, as one chunk.
    fn write_batch(&mut self) -> Option<Bytes> {
        let position = &mut self.position;
        self.batch.deliveries.retain(|delivery| match delivery.id {
            Some(id) if id <= *position => false,
            Some(id) => {
                *position = id;
                true
            }
            None => true,
        });
        let fresh = self.batch.deliveries.len() as u64;
        if fresh > 0 {
            self.registration.stats.events.fetch_add(fresh, Relaxed);
            self.registration.events_sent += fresh;
            self.start_closing();
        }
        let heartbeat = std::mem::take(&mut self.batch.heartbeat);
        let text = match (self.batch.deliveries.len(), heartbeat) {
            (0, false) => None,
            // The common case: the hub's buffer goes out as is.
            (1, false) => self.batch.deliveries.pop().map(|delivery| delivery.text),
            _ => {
                let size = self
                    .batch
                    .deliveries
                    .iter()
                    .map(|d| d.text.len())
                    .sum::<usize>()
                    + HEARTBEAT.len();
                let mut text = BytesMut::with_capacity(size);
                for delivery in self.batch.deliveries.drain(..) {
                    text.extend_from_slice(&delivery.text);
                }
                if heartbeat {
                    text.extend_from_slice(HEARTBEAT);
                }
                Some(text.freeze())
            }
        };
        self.batch.release_burst();
        text
    }
}

impl EventStream {
    /// The opening (missed events, history, lastEventId), if not written yet.
    pub fn take_opening(&mut self) -> Option<Bytes> {
        self.opening.take()
    }

    /// The next text to write, `None` once the stream has ended.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(opening) = self.opening.take() {
            return Poll::Ready(Some(opening));
        }
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            if let Some(closing) = self.closing.as_mut() {
                if closing.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
            }
            if self.mailbox.poll_take(cx, &mut self.batch).is_pending() {
                return Poll::Pending;
            }
            // Events queued before the mailbox closed still go out; an overflowed one has none.
            self.done = self.batch.closed.is_some();
            if let Some(text) = self.write_batch() {
                return Poll::Ready(Some(text));
            }
        }
    }
}

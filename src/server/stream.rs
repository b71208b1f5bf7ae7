//! One event stream: the body of a `text/event-stream` response.
//!
//! [`EventStream::open`] is where a stream starts: it subscribes to the
//! channels, then reads the history (in that order, so that nothing
//! published in between is lost, SPEC §2), and builds the opening: missed
//! events, history or `lastEventId`. Then the stream hands out the live
//! events of its mailbox, but those that the opening sent already.
//! Whatever is waiting when the socket can take more goes out in one
//! write, so a burst costs one write, not one per event. It hands out body
//! bytes ready to write, framed for its response (chunks for HTTP/1.1; a
//! live event comes framed once, by the hub, for every stream). With long
//! polling it ends one second after its first event.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::time::Sleep;
use tracing::info;

use super::history_reader::ReadError;
use super::hub::{Hub, SubscribeError};
use super::mailbox::{Batch, Closed, Mailbox, StreamId};
use super::metrics::Metrics;
use super::{Shared, StreamSlot};
use crate::channel::Channel;
use crate::protocol::history::{self, plan_opening, Opening, Replayed, Start};
use crate::protocol::http::{frame_body, Framing};
use crate::unix_time;

/// How long a long-polling stream stays open after its first event, so
/// that events published close together arrive in one response.
pub const POLLING_LINGER: Duration = Duration::from_secs(1);
pub const HEARTBEAT: &[u8] = b": hb\n";
/// The heartbeat as a chunk, for the common case of a heartbeat alone.
const HEARTBEAT_CHUNK: &[u8] = b"5\r\n: hb\n\r\n";
/// The last event of a stream whose token expired: the page asks the
/// application for a new token, and connects again with its last id.
pub const TOKEN_EXPIRED: &[u8] = b"event: tokenExpired\ndata: \n\n";

/// Why a stream could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
    /// Redis is not there: the request gets a 503.
    #[error("the Redis pub/sub connection is down")]
    HubDown,
    /// Redis refused a channel, to subscribe or to read: a 403 naming it.
    #[error(
        "Redis refused channel {:?}: {reason}",
        String::from_utf8_lossy(channel)
    )]
    Refused { channel: Channel, reason: String },
    /// A 503.
    #[error("cannot read the history: {0}")]
    Store(#[from] redis::RedisError),
}

impl From<SubscribeError> for OpenError {
    fn from(e: SubscribeError) -> Self {
        match e {
            SubscribeError::HubDown => OpenError::HubDown,
            SubscribeError::Refused { channel, reason } => OpenError::Refused { channel, reason },
        }
    }
}

impl From<ReadError> for OpenError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Refused { channel, reason } => OpenError::Refused { channel, reason },
            ReadError::Redis(e) => OpenError::Store(e),
        }
    }
}

/// What a stream asks for.
pub struct StreamRequest {
    pub channels: Vec<Channel>,
    pub last_event_id: Option<u64>,
    pub polling: bool,
    pub remote: SocketAddr,
    /// Its place among the server's `max_streams`.
    pub slot: StreamSlot,
    /// When its token expires (Unix seconds): the stream ends then.
    pub expires_at: Option<u64>,
    /// How its response's body is framed.
    pub framing: Framing,
}

pub struct EventStream {
    /// The opening, written first.
    opening: Option<Bytes>,
    framing: Framing,
    mailbox: Arc<Mailbox>,
    /// Sent from history: left out when they come live.
    replayed: Replayed,
    polling: bool,
    closing: Option<Pin<Box<Sleep>>>,
    expiry: Option<Pin<Box<Sleep>>>,
    batch: Batch,
    end: Option<Next>,
    /// Told to the client as the stream ends (a drain): when to reconnect.
    retry: Option<Duration>,
    registration: Registration,
}

/// What the connection does next with a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Body bytes, framed.
    Write(Bytes),
    /// The stream ended: finish the response.
    End,
    /// The client fell too far behind: close the connection.
    FellBehind,
}

impl EventStream {
    /// Subscribes, reads the history and builds the opening.
    pub async fn open(shared: &Shared, request: StreamRequest) -> Result<Self, OpenError> {
        let StreamRequest {
            channels,
            last_event_id,
            polling,
            remote,
            slot,
            expires_at,
            framing,
        } = request;
        let start = match last_event_id {
            Some(id) => Start::After(id),
            None => Start::Opened {
                counter: shared.history.counter().await?.unwrap_or(0),
            },
        };
        let mailbox = Mailbox::new();
        // Until the stream exists, leaving (an error, or the client going
        // away and this future dropped) must not leave it subscribed.
        let subscription = SubscriptionGuard::new(&shared.hub, mailbox.id());
        shared
            .hub
            .subscribe(mailbox.clone(), channels.clone())
            .await?;
        let reading = Instant::now();
        let snapshot = shared.history.snapshot(start, &channels).await?;
        shared
            .metrics
            .history_reads
            .observe(reading.elapsed().as_secs_f64());
        // From here on the stream's registration unsubscribes it.
        let registration = Registration::new(shared, subscription.disarm(), remote, slot);
        let opening = plan_opening(start, snapshot.histories, snapshot.counter);
        let mut stream = EventStream::new(opening, mailbox, polling, framing, registration);
        if let Some(expires_at) = expires_at {
            let left = Duration::from_secs(expires_at).saturating_sub(unix_time::since_epoch());
            stream.expiry = Some(Box::pin(tokio::time::sleep(left)));
        }
        Ok(stream)
    }

    fn new(
        opening: Opening,
        mailbox: Arc<Mailbox>,
        polling: bool,
        framing: Framing,
        mut registration: Registration,
    ) -> Self {
        let stats = &registration.metrics.stats;
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
        registration.events_sent = count;
        let mut this = EventStream {
            opening: (!text.is_empty()).then(|| frame_body(framing, &[&text])),
            framing,
            mailbox,
            replayed: Replayed::of(&opening),
            polling,
            closing: None,
            expiry: None,
            batch: Batch::default(),
            end: None,
            retry: None,
            registration,
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

    /// The opening (missed events, history, lastEventId), framed, if not
    /// taken yet.
    pub fn take_opening(&mut self) -> Option<Bytes> {
        self.opening.take()
    }

    /// What to do next, once the opening was taken: write a text, end the
    /// response, or drop the connection.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Next> {
        loop {
            if let Some(end) = &self.end {
                return Poll::Ready(end.clone());
            }
            if let Some(closing) = self.closing.as_mut() {
                if closing.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Next::End);
                }
            }
            if let Some(expiry) = self.expiry.as_mut() {
                if expiry.as_mut().poll(cx).is_ready() {
                    self.end = Some(Next::End);
                    self.registration.count_events(1);
                    return Poll::Ready(Next::Write(frame_body(self.framing, &[TOKEN_EXPIRED])));
                }
            }
            if self.mailbox.poll_take(cx, &mut self.batch).is_pending() {
                return Poll::Pending;
            }
            // Events queued before the mailbox ended still go out; an overflowed one has none.
            self.end = match self.batch.closed {
                None => None,
                Some(Closed::Ended) => Some(Next::End),
                Some(Closed::Overflowed) => Some(Next::FellBehind),
                Some(Closed::Drained { retry }) => {
                    self.retry = Some(retry);
                    Some(Next::End)
                }
            };
            if let Some(text) = self.write_batch() {
                return Poll::Ready(Next::Write(text));
            }
        }
    }

    /// Whether the client fell too far behind; a wake-up when it does, for
    /// a connection stuck writing to it.
    pub fn poll_fell_behind(&self, cx: &mut Context<'_>) -> bool {
        self.mailbox.poll_fell_behind(cx)
    }

    /// The live events of a batch that the client has not had yet, and the
    /// heartbeat if one is due, as one chunk.
    fn write_batch(&mut self) -> Option<Bytes> {
        if !self.replayed.is_empty() {
            let replayed = &mut self.replayed;
            self.batch
                .deliveries
                .retain(|delivery| !delivery.id.is_some_and(|id| replayed.take(id)));
        }
        let fresh = self.batch.deliveries.len() as u64;
        if fresh > 0 {
            self.registration.count_events(fresh);
            self.start_closing();
        }
        let heartbeat = std::mem::take(&mut self.batch.heartbeat);
        let chunked = self.framing == Framing::Chunked;
        let retry = self
            .retry
            .take()
            .map(|retry| format!("retry: {}\n\n", retry.as_millis()));
        let text = match (self.batch.deliveries.as_slice(), heartbeat) {
            ([], false) if retry.is_none() => None,
            // The common cases: what the hub framed goes out as it is.
            ([delivery], false) if chunked && retry.is_none() => Some(delivery.chunk().clone()),
            ([], true) if chunked && retry.is_none() => Some(Bytes::from_static(HEARTBEAT_CHUNK)),
            // Several at once: one write of them all.
            (deliveries, heartbeat) => {
                let mut parts: Vec<&[u8]> = deliveries.iter().map(|d| d.text()).collect();
                if heartbeat {
                    parts.push(HEARTBEAT);
                }
                if let Some(retry) = &retry {
                    parts.push(retry.as_bytes());
                }
                Some(frame_body(self.framing, &parts))
            }
        };
        self.batch.deliveries.clear();
        self.batch.release_burst();
        text
    }
}

/// Unsubscribes a stream that did not finish opening.
struct SubscriptionGuard<'a> {
    hub: &'a Hub,
    /// `None` once disarmed.
    stream: Option<StreamId>,
}

impl<'a> SubscriptionGuard<'a> {
    fn new(hub: &'a Hub, stream: StreamId) -> Self {
        SubscriptionGuard {
            hub,
            stream: Some(stream),
        }
    }

    /// The stream opened: gives its id to whoever unsubscribes it from now on.
    fn disarm(mut self) -> StreamId {
        self.stream.take().expect("armed until disarmed")
    }
}

impl Drop for SubscriptionGuard<'_> {
    fn drop(&mut self) {
        if let Some(stream) = self.stream {
            self.hub.unsubscribe(stream);
        }
    }
}

/// Keeps the stream counted and subscribed while it lives.
struct Registration {
    hub: Hub,
    stream: StreamId,
    metrics: Arc<Metrics>,
    peer: SocketAddr,
    opened: Instant,
    events_sent: u64,
    _slot: StreamSlot,
}

impl Registration {
    fn new(shared: &Shared, stream: StreamId, peer: SocketAddr, slot: StreamSlot) -> Self {
        shared.metrics.stats.connected.fetch_add(1, Relaxed);
        Registration {
            hub: shared.hub.clone(),
            stream,
            metrics: shared.metrics.clone(),
            peer,
            opened: Instant::now(),
            events_sent: 0,
            _slot: slot,
        }
    }

    fn count_events(&mut self, count: u64) {
        self.metrics.stats.events.fetch_add(count, Relaxed);
        self.events_sent += count;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.stream);
        self.metrics.stats.connected.fetch_sub(1, Relaxed);
        self.metrics.stats.served.fetch_add(1, Relaxed);
        info!(
            "stream closed: {} after {:.1}s, {} event(s)",
            self.peer,
            self.opened.elapsed().as_secs_f64(),
            self.events_sent
        );
    }
}

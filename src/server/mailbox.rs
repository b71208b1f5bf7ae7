//! A stream's queue of live events: filled by the hub, drained by the
//! stream's body when the client's socket can take more.
//!
//! It is bounded: a client that stops reading must not grow the server's
//! memory. When it overflows, the queue is dropped and the connection
//! closed (see [`Mailbox::closed`]); the browser reconnects with its last id
//! and gets the rest from history.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::sync::Notify;

/// Events a stream may have waiting. Loopback and LAN clients drain far
/// faster; a client this far behind is stalled, not slow.
pub const MAX_QUEUED_EVENTS: usize = 4096;
/// Bytes a stream may have waiting, whatever the events' size.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

/// One live event as received from Redis: its id, read once by the hub,
/// and its text, shared by every stream it goes to.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: Option<u64>,
    pub text: Bytes,
}

/// Why a stream's mailbox stopped taking events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The server is stopping, or lost Redis: end the stream cleanly, once
    /// what is queued went out.
    Ended,
    /// The client fell too far behind: its queue is gone, drop its connection.
    Overflowed,
}

pub type StreamId = u64;

pub struct Mailbox {
    id: StreamId,
    state: Mutex<MailboxState>,
    /// Wakes [`Mailbox::closed`]: a stalled client is not reading, so the
    /// connection's task is stuck writing, not taking from the mailbox.
    closing: Notify,
}

#[derive(Default)]
struct MailboxState {
    queue: Vec<Delivery>,
    queued_bytes: usize,
    heartbeat_due: bool,
    /// Heartbeats that came while the previous one was still due.
    untaken_heartbeats: u32,
    closed: Option<Closed>,
    waker: Option<Waker>,
}

/// What a stream's body takes out of its mailbox in one go.
#[derive(Debug, Default)]
pub struct Batch {
    pub deliveries: Vec<Delivery>,
    pub heartbeat: bool,
    pub closed: Option<Closed>,
}

/// Capacity a stream keeps for its events between bursts.
const RETAINED_CAPACITY: usize = 16;

impl Batch {
    /// Gives back the memory of a burst once written, or every stream
    /// would keep the largest queue it ever had.
    pub fn release_burst(&mut self) {
        if self.deliveries.capacity() > RETAINED_CAPACITY {
            self.deliveries = Vec::new();
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Mailbox {
    pub fn new() -> Arc<Self> {
        Arc::new(Mailbox {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            state: Mutex::default(),
            closing: Notify::new(),
        })
    }

    pub fn id(&self) -> StreamId {
        self.id
    }

    fn lock(&self) -> MutexGuard<'_, MailboxState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn push(&self, delivery: Delivery) {
        let mut state = self.lock();
        if state.closed.is_some() {
            return;
        }
        if state.queue.len() >= MAX_QUEUED_EVENTS
            || state.queued_bytes + delivery.text.len() > MAX_QUEUED_BYTES
        {
            self.overflow(&mut state);
        } else {
            state.queued_bytes += delivery.text.len();
            state.queue.push(delivery);
        }
        wake(state);
    }

    /// A heartbeat is due. A stream that took none of the last
    /// `stalled_after` ones has been stuck writing all that time: its client
    /// stopped reading, and it is dropped like one that overflowed.
    pub fn heartbeat(&self, stalled_after: u32) {
        let mut state = self.lock();
        if state.closed.is_some() {
            return;
        }
        if state.heartbeat_due {
            state.untaken_heartbeats += 1;
            if state.untaken_heartbeats >= stalled_after {
                self.overflow(&mut state);
            }
        }
        state.heartbeat_due = true;
        wake(state);
    }

    fn overflow(&self, state: &mut MailboxState) {
        state.queue = Vec::new();
        state.queued_bytes = 0;
        state.closed = Some(Closed::Overflowed);
        self.closing.notify_waiters();
    }

    pub fn close(&self) {
        let mut state = self.lock();
        if state.closed.is_none() {
            state.closed = Some(Closed::Ended);
            self.closing.notify_waiters();
        }
        wake(state);
    }

    /// Completes once the mailbox is closed, with why: for a connection
    /// that is busy writing and must hear of an overflow at once.
    pub async fn closed(&self) -> Closed {
        loop {
            let notified = self.closing.notified();
            tokio::pin!(notified);
            // Registered before looking, so a close in between is not missed.
            notified.as_mut().enable();
            if let Some(closed) = self.lock().closed {
                return closed;
            }
            notified.await;
        }
    }

    /// Everything waiting, or `Pending` (and a wake-up later) if nothing is.
    pub fn poll_take(&self, cx: &mut Context<'_>, into: &mut Batch) -> Poll<()> {
        let mut state = self.lock();
        if state.queue.is_empty() && !state.heartbeat_due && state.closed.is_none() {
            if !state
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                state.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        // The filled queue changes places with the batch's empty one: no copy.
        if into.deliveries.is_empty() {
            std::mem::swap(&mut state.queue, &mut into.deliveries);
        } else {
            into.deliveries.append(&mut state.queue);
        }
        state.queued_bytes = 0;
        into.heartbeat = std::mem::take(&mut state.heartbeat_due);
        state.untaken_heartbeats = 0;
        into.closed = state.closed;
        Poll::Ready(())
    }
}

fn wake(mut state: MutexGuard<'_, MailboxState>) {
    let waker = state.waker.take();
    drop(state);
    if let Some(waker) = waker {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::task::Waker;

    fn take(m: &Mailbox) -> Option<Batch> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut batch = Batch::default();
        m.poll_take(&mut cx, &mut batch).is_ready().then_some(batch)
    }

    #[test]
    fn delivers_in_order_then_waits() {
        let m = Mailbox::new();
        assert!(take(&m).is_none());
        m.push(Delivery {
            id: Some(1),
            text: Bytes::from_static(b"a"),
        });
        m.push(Delivery {
            id: Some(2),
            text: Bytes::from_static(b"b"),
        });
        m.heartbeat(2);
        let batch = take(&m).unwrap();
        assert_eq!(
            batch
                .deliveries
                .iter()
                .map(|d| d.id.unwrap())
                .collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(batch.heartbeat);
        assert!(take(&m).is_none());
    }

    #[test]
    fn a_burst_s_memory_is_given_back() {
        let m = Mailbox::new();
        for id in 0..1000 {
            m.push(Delivery {
                id: Some(id),
                text: Bytes::from_static(b"x"),
            });
        }
        let mut batch = take(&m).unwrap();
        assert_eq!(batch.deliveries.len(), 1000);
        batch.deliveries.clear();
        batch.release_burst();
        assert_eq!(batch.deliveries.capacity(), 0);
    }

    #[test]
    fn overflow_empties_the_queue_and_says_so() {
        let m = Mailbox::new();
        let closed = m.closed();
        futures_util::pin_mut!(closed);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(closed.as_mut().poll(&mut cx).is_pending());
        for id in 0..=MAX_QUEUED_EVENTS as u64 {
            m.push(Delivery {
                id: Some(id),
                text: Bytes::from_static(b"x"),
            });
        }
        assert_eq!(
            closed.as_mut().poll(&mut cx),
            Poll::Ready(Closed::Overflowed),
            "the connection hears of it while writing"
        );
        let batch = take(&m).unwrap();
        assert!(batch.deliveries.is_empty());
        assert_eq!(batch.closed, Some(Closed::Overflowed));
    }

    #[test]
    fn an_ended_mailbox_keeps_what_was_queued() {
        let m = Mailbox::new();
        m.push(Delivery {
            id: Some(1),
            text: Bytes::from_static(b"a"),
        });
        m.close();
        let batch = take(&m).unwrap();
        assert_eq!(batch.deliveries.len(), 1);
        assert_eq!(batch.closed, Some(Closed::Ended));
    }

    #[test]
    fn a_heartbeat_never_taken_means_stalled() {
        let m = Mailbox::new();
        m.heartbeat(2);
        assert!(take(&m).unwrap().heartbeat);
        m.heartbeat(2);
        m.heartbeat(2);
        assert!(
            take(&m).unwrap().closed.is_none(),
            "one untaken heartbeat is a busy moment"
        );
        m.heartbeat(2);
        m.heartbeat(2);
        m.heartbeat(2);
        assert_eq!(take(&m).unwrap().closed, Some(Closed::Overflowed));
    }

    #[test]
    fn too_many_bytes_overflow_too() {
        let m = Mailbox::new();
        m.push(Delivery {
            id: None,
            text: Bytes::from(vec![b'x'; MAX_QUEUED_BYTES]),
        });
        m.push(Delivery {
            id: None,
            text: Bytes::from_static(b"y"),
        });
        assert_eq!(take(&m).unwrap().closed, Some(Closed::Overflowed));
    }
}

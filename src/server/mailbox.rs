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
use std::time::Duration;

use bytes::Bytes;

use crate::protocol::http::{frame_body, Framing};

/// Events a stream may have waiting. Loopback and LAN clients drain far
/// faster; a client this far behind is stalled, not slow.
pub const MAX_QUEUED_EVENTS: usize = 4096;
/// Bytes a stream may have waiting, whatever the events' size.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

/// One live event as received from Redis: its id, read once by the hub,
/// and its text framed once as a chunk (size line, text, CRLF), shared by
/// every stream it goes to: a stream writes it as it is.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: Option<u64>,
    chunk: Bytes,
    /// Where the text starts in the chunk.
    text_at: u8,
}

impl Delivery {
    pub fn new(id: Option<u64>, text: &[u8]) -> Self {
        let chunk = frame_body(Framing::Chunked, &[text]);
        let text_at = chunk.len().saturating_sub(text.len() + 2) as u8;
        Delivery { id, chunk, text_at }
    }

    /// The text framed for a chunked body.
    pub fn chunk(&self) -> &Bytes {
        &self.chunk
    }

    /// The text alone, unframed.
    pub fn text(&self) -> &[u8] {
        let end = self.chunk.len().saturating_sub(2).max(self.text_at.into());
        &self.chunk[usize::from(self.text_at)..end]
    }

    fn len(&self) -> usize {
        self.chunk.len()
    }
}

/// Why a stream's mailbox stopped taking events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The server is stopping, or lost Redis: end the stream cleanly, once
    /// what is queued went out.
    Ended,
    /// The client fell too far behind: its queue is gone, drop its connection.
    Overflowed,
    /// The server is stopping: end the stream once what is queued went out,
    /// telling the client to reconnect after this long.
    Drained { retry: Duration },
}

pub type StreamId = u64;

pub struct Mailbox {
    id: StreamId,
    state: Mutex<MailboxState>,
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
    /// The hub will wake it once its batch of events is handed out.
    wake_scheduled: bool,
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
        })
    }

    pub fn id(&self) -> StreamId {
        self.id
    }

    fn lock(&self) -> MutexGuard<'_, MailboxState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an event without waking the stream: `true` when the caller
    /// must [`Self::wake`] it once done handing out its batch, so that a
    /// stream given several events at once writes them in one go.
    pub fn push(&self, delivery: Delivery) -> bool {
        let mut state = self.lock();
        if state.closed.is_some() {
            return false;
        }
        if state.queue.len() >= MAX_QUEUED_EVENTS
            || state.queued_bytes + delivery.len() > MAX_QUEUED_BYTES
        {
            self.overflow(&mut state);
            wake(state);
            return false;
        }
        state.queued_bytes += delivery.len();
        state.queue.push(delivery);
        let wake_now = state.waker.is_some() && !state.wake_scheduled;
        state.wake_scheduled |= wake_now;
        wake_now
    }

    /// Wakes the stream for what [`Self::push`] queued.
    pub fn wake(&self) {
        let mut state = self.lock();
        state.wake_scheduled = false;
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
    }

    pub fn close(&self) {
        self.close_as(Closed::Ended);
    }

    /// Ends the stream, telling its client when to reconnect.
    pub fn drain(&self, retry: Duration) {
        self.close_as(Closed::Drained { retry });
    }

    fn close_as(&self, closed: Closed) {
        let mut state = self.lock();
        if state.closed.is_none() {
            state.closed = Some(closed);
        }
        wake(state);
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    /// Whether the client fell too far behind; if not, a wake-up when it
    /// does. For a connection that is busy writing, and not taking events:
    /// a stalled client is not reading, and must be dropped all the same.
    pub fn poll_fell_behind(&self, cx: &mut Context<'_>) -> bool {
        let mut state = self.lock();
        if state.closed == Some(Closed::Overflowed) {
            return true;
        }
        register(&mut state, cx);
        false
    }

    /// Everything waiting, or `Pending` (and a wake-up later) if nothing is.
    pub fn poll_take(&self, cx: &mut Context<'_>, into: &mut Batch) -> Poll<()> {
        let mut state = self.lock();
        if state.queue.is_empty() && !state.heartbeat_due && state.closed.is_none() {
            register(&mut state, cx);
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

fn register(state: &mut MailboxState, cx: &Context<'_>) {
    if !state
        .waker
        .as_ref()
        .is_some_and(|w| w.will_wake(cx.waker()))
    {
        state.waker = Some(cx.waker().clone());
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
    use std::task::{Wake, Waker};

    struct Counting(AtomicU64);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Waker, Arc<Counting>) {
        let counting = Arc::new(Counting(AtomicU64::new(0)));
        (Waker::from(counting.clone()), counting)
    }

    /// Pushes wake nobody by themselves: the hub wakes each stream once
    /// per batch, so a stream given several events writes them at once.
    #[test]
    fn a_batch_wakes_a_stream_once() {
        let m = Mailbox::new();
        let (waker, woken) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut batch = Batch::default();
        assert!(m.poll_take(&mut cx, &mut batch).is_pending());
        assert!(
            m.push(Delivery::new(Some(1), b"a")),
            "the first asks for a wake"
        );
        assert!(
            !m.push(Delivery::new(Some(2), b"b")),
            "the next ones do not"
        );
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
        m.wake();
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert!(m.poll_take(&mut cx, &mut batch).is_ready());
        assert_eq!(batch.deliveries.len(), 2);
    }

    #[test]
    fn a_delivery_is_framed_once() {
        let d = Delivery::new(Some(7), &[b'x'; 300]);
        assert!(d.chunk().starts_with(b"12c\r\nxxx"));
        assert!(d.chunk().ends_with(b"x\r\n"));
        assert_eq!(d.text(), &[b'x'; 300][..]);
    }

    fn take(m: &Mailbox) -> Option<Batch> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut batch = Batch::default();
        m.poll_take(&mut cx, &mut batch).is_ready().then_some(batch)
    }

    #[test]
    fn delivers_in_order_then_waits() {
        let m = Mailbox::new();
        assert!(take(&m).is_none());
        m.push(Delivery::new(Some(1), b"a"));
        m.push(Delivery::new(Some(2), b"b"));
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
            m.push(Delivery::new(Some(id), b"x"));
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
        let (waker, woken) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(!m.poll_fell_behind(&mut cx));
        for id in 0..=MAX_QUEUED_EVENTS as u64 {
            m.push(Delivery::new(Some(id), b"x"));
        }
        assert_eq!(
            woken.0.load(Ordering::SeqCst),
            1,
            "the connection hears of it while writing"
        );
        assert!(m.poll_fell_behind(&mut cx));
        let batch = take(&m).unwrap();
        assert!(batch.deliveries.is_empty());
        assert_eq!(batch.closed, Some(Closed::Overflowed));
    }

    #[test]
    fn an_ended_mailbox_keeps_what_was_queued() {
        let m = Mailbox::new();
        m.push(Delivery::new(Some(1), b"a"));
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
        m.push(Delivery::new(None, &vec![b'x'; MAX_QUEUED_BYTES - 10]));
        m.push(Delivery::new(None, b"y"));
        assert_eq!(take(&m).unwrap().closed, Some(Closed::Overflowed));
    }
}

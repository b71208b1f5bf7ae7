//! The hub: the one task that owns the Redis pub/sub connection.
//!
//! Streams ask it to subscribe them to channels; it subscribes each channel
//! in Redis once, whatever the number of listeners, and unsubscribes when
//! the last one leaves. Every message is read into one shared buffer and
//! handed to each listening stream's mailbox, so a broadcast costs a
//! reference count per stream, not a copy. The hub also beats the streams'
//! heartbeat, and when Redis goes away it ends every stream and reconnects.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::{info, warn};

mod drain;
mod listeners;

use self::drain::{DrainRequest, Draining};
use self::listeners::Listeners;
use super::mailbox::{Mailbox, StreamId};
use super::metrics::Metrics;
use crate::channel::Channel;
use crate::redis_url::RedisUrl;

/// How long Redis may stay silent, while the hub waits for an answer,
/// before it counts as gone.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages handed out before streams are woken, at most: enough to
/// batch a burst, few enough that the first event of it is not delayed.
const MESSAGES_PER_BATCH: usize = 256;
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Why a stream could not be subscribed.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The pub/sub connection is not up: the request gets a 503.
    #[error("the Redis pub/sub connection is down")]
    HubDown,
    /// Redis refused one of its channels (an ACL user limited to some
    /// channels): this request alone gets a 403; other streams go on.
    #[error(
        "Redis refused to subscribe to {:?}: {reason}",
        String::from_utf8_lossy(channel)
    )]
    Refused { channel: Channel, reason: String },
}

enum SubscriptionChange {
    Subscribe {
        mailbox: Arc<Mailbox>,
        channels: Vec<Channel>,
        done: oneshot::Sender<Result<(), SubscribeError>>,
    },
    Unsubscribe {
        stream: StreamId,
    },
}

/// Where the pub/sub connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Link {
    /// An attempt to connect is under way, and none has failed since the
    /// connection was last up (or the server started): streams wait for it.
    Connecting = 0,
    Up = 1,
    /// The last attempt failed: a stream that comes makes another one, and
    /// gets a 503 if it fails too.
    Down = 2,
}

/// The hub's [`Link`], shared with the connections.
#[derive(Debug, Default)]
struct LinkState(AtomicU8);

impl LinkState {
    fn get(&self) -> Link {
        match self.0.load(Ordering::Acquire) {
            0 => Link::Connecting,
            1 => Link::Up,
            _ => Link::Down,
        }
    }

    fn set(&self, link: Link) {
        self.0.store(link as u8, Ordering::Release);
    }
}

/// A handle on the hub, shared by the connections.
#[derive(Clone)]
pub struct Hub {
    commands: mpsc::UnboundedSender<SubscriptionChange>,
    drains: mpsc::UnboundedSender<DrainRequest>,
    link: Arc<LinkState>,
}

impl Hub {
    /// Starts the hub's task; it runs until `stop` turns true.
    pub fn start(
        url: RedisUrl,
        heartbeat: Heartbeat,
        metrics: Arc<Metrics>,
        stop: watch::Receiver<bool>,
    ) -> (Hub, tokio::task::JoinHandle<()>) {
        let (commands, receiver) = mpsc::unbounded_channel();
        let (drains, drain_requests) = mpsc::unbounded_channel();
        let link = Arc::new(LinkState::default());
        let task = HubTask {
            url,
            heartbeat,
            commands: receiver,
            drains: drain_requests,
            link: link.clone(),
            metrics,
            stop,
            listeners: Listeners::default(),
            early: Vec::new(),
        };
        (
            Hub {
                commands,
                drains,
                link,
            },
            tokio::spawn(task.run()),
        )
    }

    /// Where the pub/sub connection is now.
    pub fn link(&self) -> Link {
        self.link.get()
    }

    /// Adds a stream to channels; returns once Redis confirmed the
    /// subscriptions, so that reading history afterwards misses nothing.
    /// While the hub connects, that is once it did; when Redis is down, once
    /// an attempt made for it failed.
    pub async fn subscribe(
        &self,
        mailbox: Arc<Mailbox>,
        channels: Vec<Channel>,
    ) -> Result<(), SubscribeError> {
        let (done, confirmed) = oneshot::channel();
        self.commands
            .send(SubscriptionChange::Subscribe {
                mailbox,
                channels,
                done,
            })
            .map_err(|_| SubscribeError::HubDown)?;
        confirmed.await.map_err(|_| SubscribeError::HubDown)?
    }

    /// Ends the streams one after the other, spread evenly `over` this
    /// long; returns once all are ended (at once if Redis is away: then
    /// none is open).
    pub async fn drain(&self, over: Duration) {
        let (done, drained) = oneshot::channel();
        if self.drains.send(DrainRequest { over, done }).is_ok() {
            let _ = drained.await;
        }
    }

    /// Removes a stream from all its channels (it may not have been added).
    pub fn unsubscribe(&self, stream: StreamId) {
        let _ = self
            .commands
            .send(SubscriptionChange::Unsubscribe { stream });
    }
}

struct HubTask {
    url: RedisUrl,
    heartbeat: Heartbeat,
    commands: mpsc::UnboundedReceiver<SubscriptionChange>,
    /// Answered by dropping them while Redis is away: no stream is open.
    drains: mpsc::UnboundedReceiver<DrainRequest>,
    link: Arc<LinkState>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
    listeners: Listeners,
    /// Subscriptions that came between two attempts, for the next one.
    early: Vec<SubscriptionChange>,
}

enum Outcome {
    Stopped,
    Lost(String),
}

impl HubTask {
    async fn run(mut self) {
        let mut delay = RECONNECT_MIN;
        let mut reported_down = false;
        let mut connected_before = false;
        loop {
            // Subscribers arriving now wait in the queue for this attempt.
            let pubsub = tokio::select! {
                _ = stopping(&mut self.stop) => break,
                pubsub = tokio::time::timeout(REDIS_TIMEOUT, connect_pubsub(&self.url)) => pubsub,
            };
            let pubsub = match pubsub {
                Ok(Ok(pubsub)) => pubsub,
                failure => {
                    let reason = match failure {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_string(),
                    };
                    if !reported_down {
                        warn!(
                            "Redis at {} is unreachable ({reason}); retrying until it is back",
                            self.url
                        );
                        reported_down = true;
                    }
                    self.link.set(Link::Down);
                    // Those who waited for this attempt learn it failed.
                    for command in self.early.drain(..) {
                        answer_hub_down(command);
                    }
                    while let Ok(command) = self.commands.try_recv() {
                        answer_hub_down(command);
                    }
                    if self.pause_between_attempts(delay).await.is_break() {
                        break;
                    }
                    delay = (delay * 2).min(RECONNECT_MAX);
                    self.link.set(Link::Connecting);
                    continue;
                }
            };
            info!("connected to Redis at {}", self.url);
            if connected_before {
                self.metrics
                    .pubsub_reconnects
                    .fetch_add(1, Ordering::Relaxed);
            }
            connected_before = true;
            delay = RECONNECT_MIN;
            self.link.set(Link::Up);
            let outcome = self.serve(pubsub).await;
            // Reconnecting at once: who comes meanwhile waits for it.
            self.link.set(Link::Connecting);
            self.end_all_streams();
            match outcome {
                Outcome::Stopped => break,
                Outcome::Lost(reason) => {
                    warn!(
                        "lost Redis at {} ({reason}); streams closed, reconnecting",
                        self.url
                    );
                    reported_down = true;
                }
            }
        }
        self.link.set(Link::Down);
        self.end_all_streams();
        self.commands.close();
        for command in self.early.drain(..) {
            answer_hub_down(command);
        }
        while let Ok(command) = self.commands.try_recv() {
            answer_hub_down(command);
        }
    }

    /// Waits `delay` before the next attempt, or less: a stream that comes
    /// meanwhile makes the attempt now, and waits for it, rather than get a
    /// 503 while Redis may be back (a browser's EventSource gives up after
    /// a 503). `Break` when the server stops meanwhile.
    async fn pause_between_attempts(&mut self, delay: Duration) -> ControlFlow<()> {
        let pause = tokio::time::sleep(delay);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = stopping(&mut self.stop) => return ControlFlow::Break(()),
                _ = &mut pause => return ControlFlow::Continue(()),
                command = self.commands.recv() => match command {
                    Some(command @ SubscriptionChange::Subscribe { .. }) => {
                        self.early.push(command);
                        return ControlFlow::Continue(());
                    }
                    // Nothing is subscribed while Redis is away.
                    Some(SubscriptionChange::Unsubscribe { .. }) => {}
                    None => return ControlFlow::Break(()),
                },
                // No stream is open: drained already.
                _ = self.drains.recv() => {}
            }
        }
    }

    async fn serve(&mut self, pubsub: redis::aio::PubSub) -> Outcome {
        let (sink, mut messages) = pubsub.split();
        let HubTask {
            stop,
            commands,
            drains,
            listeners,
            heartbeat,
            metrics,
            early,
            ..
        } = self;
        let mut draining: Option<Draining> = None;
        let stalled_after = heartbeat.stalled_after();
        let mut heartbeat = heartbeat.ticks();
        // The streams that made this attempt, first.
        let mut batch = std::mem::take(early);
        if !batch.is_empty() {
            let applied = listeners.apply(&sink, batch.drain(..)).await;
            metrics
                .channels
                .store(listeners.channels.len() as u64, Ordering::Relaxed);
            if let Err(reason) = applied {
                return Outcome::Lost(reason);
            }
        }
        loop {
            tokio::select! {
                biased;
                _ = stopping(stop) => return Outcome::Stopped,
                received = commands.recv_many(&mut batch, 1024) => {
                    if received == 0 {
                        return Outcome::Stopped;
                    }
                    // A stream that joins a channel already subscribed gets
                    // only what Redis sends from now on: a PING's answer comes
                    // after every message Redis sent before it, and those go
                    // to the streams that were there. Else an event published
                    // before the stream read the counter could reach it late,
                    // after newer ones from its history.
                    if batch.iter().any(|c| matches!(c, SubscriptionChange::Subscribe { .. })) {
                        match tokio::time::timeout(REDIS_TIMEOUT, sink.clone().ping::<redis::Value>()).await {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => return Outcome::Lost(e.to_string()),
                            Err(_) => return Outcome::Lost("PING timed out".into()),
                        }
                        while let Some(message) = messages.next().now_or_never() {
                            let Some(message) = message else {
                                return Outcome::Lost("connection closed".into());
                            };
                            if let Err(lost) = dispatch_ready(listeners, message, &mut messages) {
                                return lost;
                            }
                        }
                    }
                    let applied = listeners.apply(&sink, batch.drain(..)).await;
                    metrics.channels.store(listeners.channels.len() as u64, Ordering::Relaxed);
                    if let Err(reason) = applied {
                        return Outcome::Lost(reason);
                    }
                }
                message = messages.next() => match message {
                    Some(message) => if let Err(lost) = dispatch_ready(listeners, message, &mut messages) {
                        return lost;
                    },
                    None => return Outcome::Lost("connection closed".into()),
                },
                drain = drains.recv() => if let Some(request) = drain {
                    let streams = listeners.streams.values().map(|(mailbox, _)| mailbox.clone()).collect();
                    draining = Some(Draining::start(streams, request));
                },
                _ = tokio::time::sleep_until(draining.as_ref().map_or_else(Instant::now, Draining::next)), if draining.is_some() => {
                    if draining.as_mut().is_some_and(Draining::step) {
                        draining = None;
                    }
                },
                _ = heartbeat.tick() => {
                    for (mailbox, _) in listeners.streams.values() {
                        mailbox.heartbeat(stalled_after);
                    }
                    // Also notices a Redis that stopped answering without closing the socket.
                    match tokio::time::timeout(REDIS_TIMEOUT, sink.clone().ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Outcome::Lost(e.to_string()),
                        Err(_) => return Outcome::Lost("PING timed out".into()),
                    }
                }
            }
        }
    }

    fn end_all_streams(&mut self) {
        for (mailbox, _) in self.listeners.streams.values() {
            mailbox.close();
        }
        self.listeners = Listeners::default();
        self.metrics.channels.store(0, Ordering::Relaxed);
    }
}

/// A subscriber while Redis is down gets a 503; a stream leaving has nothing to undo.
/// Dispatches `message` and the messages already here after it (a batch
/// at most): a stream wakes once for all of its events in the batch, and
/// writes them at once.
fn dispatch_ready(
    listeners: &Listeners,
    mut message: redis::Msg,
    messages: &mut (impl futures_util::Stream<Item = redis::Msg> + Unpin),
) -> Result<(), Outcome> {
    let mut to_wake = Vec::new();
    for _ in 0..MESSAGES_PER_BATCH {
        let channel: Vec<u8> = message.get_channel().unwrap_or_default();
        listeners.dispatch(&channel, message.get_payload_bytes(), &mut to_wake);
        match messages.next().now_or_never() {
            Some(Some(next)) => message = next,
            Some(None) => return Err(Outcome::Lost("connection closed".into())),
            None => break,
        }
    }
    for mailbox in to_wake {
        mailbox.wake();
    }
    Ok(())
}

fn answer_hub_down(command: SubscriptionChange) {
    if let SubscriptionChange::Subscribe { done, .. } = command {
        let _ = done.send(Err(SubscribeError::HubDown));
    }
}

/// A pub/sub connection to the server behind `url` now (for Sentinel, the
/// master of the moment).
async fn connect_pubsub(url: &RedisUrl) -> redis::RedisResult<redis::aio::PubSub> {
    url.client().await?.get_async_pubsub().await
}

/// The streams' heartbeat, which also finds the clients that stopped
/// taking what is written to them.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    every: Duration,
    send_timeout: Duration,
}

impl Heartbeat {
    pub fn new(every: Duration, send_timeout: Duration) -> Self {
        Heartbeat {
            every,
            send_timeout,
        }
    }

    /// The ticks, the first one a period from now. A tick missed (the
    /// process paused, the machine overloaded) is skipped, not made up:
    /// ticks fired back to back would count as heartbeats that streams
    /// failed to take, and drop healthy ones.
    fn ticks(self) -> Interval {
        let mut ticks = tokio::time::interval_at(Instant::now() + self.every, self.every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        ticks
    }

    /// After how many heartbeats not taken a stream has been unable to
    /// write for the send timeout: at least two, so one late tick is never
    /// enough.
    fn stalled_after(self) -> u32 {
        let beats = self.send_timeout.as_secs_f64() / self.every.as_secs_f64();
        (beats.ceil() as u32).max(2)
    }
}

async fn stopping(stop: &mut watch::Receiver<bool>) {
    // An error means the server dropped its end: stop as well.
    let _ = stop.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stalled_after(every: Duration) -> u32 {
        Heartbeat::new(every, Duration::from_secs(30)).stalled_after()
    }

    #[test]
    fn a_stream_is_stalled_after_thirty_seconds_of_heartbeats_or_two() {
        assert_eq!(stalled_after(Duration::from_secs(15)), 2);
        assert_eq!(stalled_after(Duration::from_secs(60)), 2);
        assert_eq!(stalled_after(Duration::from_secs(1)), 30);
        assert_eq!(stalled_after(Duration::from_millis(200)), 150);
        let short = Heartbeat::new(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(short.stalled_after(), 10);
    }

    /// A hub paused for ten periods ticks once when it resumes, then a
    /// period later: never ten times back to back.
    #[tokio::test(start_paused = true)]
    async fn ticks_missed_while_paused_are_skipped() {
        let every = Duration::from_secs(1);
        let mut ticks = Heartbeat::new(every, Duration::from_secs(30)).ticks();
        ticks.tick().await;
        tokio::time::advance(every * 10).await;
        let resumed = Instant::now();
        ticks.tick().await;
        assert_eq!(Instant::now(), resumed, "one tick at once");
        ticks.tick().await;
        assert!(Instant::now() >= resumed + every / 2, "the next one later");
    }
}

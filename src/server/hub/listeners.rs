//! Who listens to which channel, and the `SUBSCRIBE`s and `UNSUBSCRIBE`s
//! per batch of commands that keep Redis in step.
//!
//! A batch's new channels go to Redis as a pipeline of commands of at most
//! [`CHANNELS_PER_COMMAND`] channels, each confirmed on its own: a Redis
//! that keeps confirming is busy, not gone, however large the batch, and
//! only a silence of [`REDIS_TIMEOUT`] counts as losing it. A command that
//! Redis refuses (an ACL user limited to some channels refuses the whole
//! command) is sent again channel by channel, to find the refused ones:
//! only the streams that asked for one of them fail, and their neighbours
//! in the batch are subscribed.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::aio::PubSubSink;
use tracing::{debug, warn};

use super::{SubscribeError, SubscriptionChange, REDIS_TIMEOUT};
use crate::channel::Channel;
use crate::command_link::is_connection_error;
use crate::redis_layout;
use crate::server::mailbox::{Delivery, Mailbox, StreamId};

/// Channels in one `SUBSCRIBE` or `UNSUBSCRIBE`.
const CHANNELS_PER_COMMAND: usize = 512;

/// Who listens to what. A stream leaving costs time in proportion to its
/// own channels, whatever the number of other listeners: 20,000 streams
/// may leave at once (a deploy, a network blip).
#[derive(Default)]
pub(super) struct Listeners {
    pub(super) streams: HashMap<StreamId, (Arc<Mailbox>, Vec<Channel>)>,
    pub(super) channels: HashMap<Channel, HashMap<StreamId, Arc<Mailbox>>>,
}

/// Channels that Redis refused, with its reason.
type Refusals = HashMap<Channel, String>;

impl Listeners {
    /// Applies a batch of commands: one pipeline of UNSUBSCRIBEs, one of
    /// SUBSCRIBEs, so that a crowd of streams opening at once costs Redis
    /// a round trip, not one per stream. `Err` when the connection is lost.
    pub(super) async fn apply(
        &mut self,
        sink: &PubSubSink,
        commands: impl Iterator<Item = SubscriptionChange>,
    ) -> Result<(), String> {
        let mut new_channels: Vec<Channel> = Vec::new();
        let mut emptied: Vec<Channel> = Vec::new();
        let mut joined = Vec::new();
        for command in commands {
            match command {
                SubscriptionChange::Subscribe {
                    mailbox,
                    mut channels,
                    done,
                } => {
                    for channel in &mut channels {
                        // A channel listened to already: the stream keeps
                        // the hub's name, and its own copy goes.
                        if let Some((name, _)) = self.channels.get_key_value(&*channel) {
                            *channel = name.clone();
                        }
                        let listeners = self.channels.entry(channel.clone()).or_insert_with(|| {
                            new_channels.push(channel.clone());
                            HashMap::new()
                        });
                        listeners.insert(mailbox.id(), mailbox.clone());
                    }
                    joined.push((mailbox.id(), done));
                    self.streams.insert(mailbox.id(), (mailbox, channels));
                }
                SubscriptionChange::Unsubscribe { stream } => self.remove(stream, &mut emptied),
            }
        }
        let emptied = self.forget_empty(emptied);
        new_channels.retain(|channel| self.channels.contains_key(channel));
        let refused = async {
            send(sink, Verb::Unsubscribe, &emptied).await?;
            subscribe(sink, &new_channels).await
        };
        let refused = match refused.await {
            Ok(refused) => refused,
            Err(reason) => {
                // The streams are ended with every other, and their openers answer 503.
                for (_, done) in joined {
                    let _ = done.send(Err(SubscribeError::HubDown));
                }
                return Err(reason);
            }
        };
        let mut left = Vec::new();
        for (stream, done) in joined {
            let refusal = self.streams.get(&stream).and_then(|(_, channels)| {
                channels
                    .iter()
                    .find_map(|c| refused.get(c).map(|reason| (c.clone(), reason.clone())))
            });
            let answer = match refusal {
                None => Ok(()),
                Some((channel, reason)) => {
                    self.remove(stream, &mut left);
                    Err(SubscribeError::Refused { channel, reason })
                }
            };
            let _ = done.send(answer);
        }
        // Channels subscribed for refused streams alone; the refused ones
        // never were.
        let mut left = self.forget_empty(left);
        left.retain(|channel| !refused.contains_key(channel));
        send(sink, Verb::Unsubscribe, &left).await
    }

    /// Takes a stream off its channels; those it leaves empty go in `emptied`.
    fn remove(&mut self, stream: StreamId, emptied: &mut Vec<Channel>) {
        let Some((_, channels)) = self.streams.remove(&stream) else {
            return;
        };
        for channel in channels {
            if let Some(listeners) = self.channels.get_mut(&channel) {
                listeners.remove(&stream);
                if listeners.is_empty() {
                    emptied.push(channel);
                }
            }
        }
    }

    /// Forgets the channels of `emptied` that nobody listens to any more
    /// (one emptied then joined again within a batch stays), and gives them
    /// back once each, to be unsubscribed.
    fn forget_empty(&mut self, mut emptied: Vec<Channel>) -> Vec<Channel> {
        emptied.retain(|channel| self.channels.get(channel).is_some_and(HashMap::is_empty));
        emptied.sort_unstable();
        emptied.dedup();
        for channel in &emptied {
            self.channels.remove(channel);
        }
        emptied
    }

    /// Hands an event to the streams of its channel, framed once for all;
    /// the streams to wake go in `to_wake`, to be woken once the batch of
    /// events that came together is handed out.
    pub(super) fn dispatch<'a>(
        &'a self,
        channel: &[u8],
        payload: &[u8],
        to_wake: &mut Vec<&'a Arc<Mailbox>>,
    ) {
        let Some(listeners) = self.channels.get(channel) else {
            return;
        };
        let delivery = Delivery::new(redis_layout::id_of(payload), payload);
        debug!(
            "event {} on {:?} to {} stream(s)",
            delivery
                .id
                .map_or_else(|| "without id".to_string(), |id| id.to_string()),
            String::from_utf8_lossy(channel),
            listeners.len()
        );
        for mailbox in listeners.values() {
            if mailbox.push(delivery.clone()) {
                to_wake.push(mailbox);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Verb {
    Subscribe,
    Unsubscribe,
}

/// Subscribes to `channels`; gives back those Redis refused. A command
/// refused as a whole is sent again one channel at a time, to tell the
/// refused channels from their neighbours.
async fn subscribe(sink: &PubSubSink, channels: &[Channel]) -> Result<Refusals, String> {
    let mut refused = Refusals::new();
    for (failed, _) in
        pipeline(sink, Verb::Subscribe, channels.chunks(CHANNELS_PER_COMMAND)).await?
    {
        let singles = failed.chunks(1);
        for (single, reason) in pipeline(sink, Verb::Subscribe, singles).await? {
            let channel = single[0].clone();
            warn!(
                "Redis refused SUBSCRIBE {:?} ({reason}): the streams asking for it get a 403",
                String::from_utf8_lossy(&channel)
            );
            refused.insert(channel, reason);
        }
    }
    Ok(refused)
}

/// Sends `channels` with `verb`, in commands of [`CHANNELS_PER_COMMAND`].
/// Redis never refuses an UNSUBSCRIBE for a channel: a refusal is logged.
async fn send(sink: &PubSubSink, verb: Verb, channels: &[Channel]) -> Result<(), String> {
    if channels.is_empty() {
        return Ok(());
    }
    debug!("{verb:?} {} channel(s)", channels.len());
    for (_, reason) in pipeline(sink, verb, channels.chunks(CHANNELS_PER_COMMAND)).await? {
        warn!("Redis refused {verb:?} ({reason})");
    }
    Ok(())
}

/// Sends one command per group of channels, all at once, and waits for
/// their confirmations: the groups Redis refused, with its reason, or
/// `Err` when the connection failed or Redis said nothing for
/// [`REDIS_TIMEOUT`] (the time between two confirmations, however many
/// commands there are).
async fn pipeline<'a>(
    sink: &PubSubSink,
    verb: Verb,
    groups: impl Iterator<Item = &'a [Channel]>,
) -> Result<Vec<(&'a [Channel], String)>, String> {
    let mut pending: FuturesUnordered<_> = groups
        .map(|group| {
            let mut sink = sink.clone();
            async move {
                let names: Vec<&[u8]> = group.iter().map(|channel| &channel[..]).collect();
                let result = match verb {
                    Verb::Subscribe => sink.subscribe(names).await,
                    Verb::Unsubscribe => sink.unsubscribe(names).await,
                };
                (group, result)
            }
        })
        .collect();
    let mut refused = Vec::new();
    loop {
        match tokio::time::timeout(REDIS_TIMEOUT, pending.next()).await {
            Err(_) => return Err(format!("no answer to {verb:?} for {REDIS_TIMEOUT:?}")),
            Ok(None) => return Ok(refused),
            Ok(Some((_, Ok(())))) => {}
            Ok(Some((_, Err(e)))) if is_connection_error(&e) => return Err(e.to_string()),
            Ok(Some((group, Err(e)))) => refused.push((group, e.to_string())),
        }
    }
}

//! Who listens to which channel, and the one `SUBSCRIBE`/`UNSUBSCRIBE`
//! per batch of commands that keeps Redis in step.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tracing::debug;

use super::{Command, HubDown, REDIS_TIMEOUT};
use crate::event;
use crate::protocol::request::Channel;
use crate::server::mailbox::{Delivery, Mailbox, StreamId};

/// Who listens to what. A stream leaving costs time in proportion to its
/// own channels, whatever the number of other listeners: 20,000 streams
/// may leave at once (a deploy, a network blip).
#[derive(Default)]
pub(super) struct Listeners {
    pub(super) streams: HashMap<StreamId, (Arc<Mailbox>, Vec<Channel>)>,
    pub(super) channels: HashMap<Channel, HashMap<StreamId, Arc<Mailbox>>>,
}

impl Listeners {
    /// Applies a batch of commands with at most one UNSUBSCRIBE and one
    /// SUBSCRIBE, so that a crowd of streams opening at once costs Redis a
    /// round trip, not one per stream.
    pub(super) async fn apply(
        &mut self,
        sink: &mut redis::aio::PubSubSink,
        commands: impl Iterator<Item = Command>,
    ) -> Result<(), String> {
        let mut new_channels: Vec<Channel> = Vec::new();
        let mut emptied: Vec<Channel> = Vec::new();
        let mut confirmations = Vec::new();
        for command in commands {
            match command {
                Command::Subscribe {
                    mailbox,
                    channels,
                    done,
                } => {
                    for channel in &channels {
                        let listeners = self.channels.entry(channel.clone()).or_insert_with(|| {
                            new_channels.push(channel.clone());
                            HashMap::new()
                        });
                        listeners.insert(mailbox.id(), mailbox.clone());
                    }
                    self.streams.insert(mailbox.id(), (mailbox, channels));
                    confirmations.push(done);
                }
                Command::Unsubscribe { stream } => {
                    let Some((_, channels)) = self.streams.remove(&stream) else {
                        continue;
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
            }
        }
        // A channel emptied then joined again within the batch stays subscribed.
        emptied.retain(|channel| self.channels.get(channel).is_some_and(HashMap::is_empty));
        emptied.sort_unstable();
        emptied.dedup();
        for channel in &emptied {
            self.channels.remove(channel);
        }
        new_channels.retain(|channel| self.channels.contains_key(channel));
        let result = async {
            if !emptied.is_empty() {
                debug!("unsubscribing from {} channel(s)", emptied.len());
                sink.unsubscribe(names(&emptied)).await?;
            }
            if !new_channels.is_empty() {
                debug!("subscribing to {} channel(s)", new_channels.len());
                sink.subscribe(names(&new_channels)).await?;
            }
            Ok::<_, redis::RedisError>(())
        };
        let result = match tokio::time::timeout(REDIS_TIMEOUT, result).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("SUBSCRIBE timed out".into()),
        };
        // On failure the streams are ended with every other, and their openers answer 503.
        for done in confirmations {
            let _ = done.send(result.as_ref().map(|_| ()).map_err(|_| HubDown));
        }
        result
    }

    pub(super) fn dispatch(&self, channel: &[u8], payload: &[u8]) {
        let Some(listeners) = self.channels.get(channel) else {
            return;
        };
        let delivery = Delivery {
            id: event::id_of(payload),
            text: Bytes::copy_from_slice(payload),
        };
        debug!(
            "event {} on {:?} to {} stream(s)",
            delivery
                .id
                .map_or_else(|| "without id".to_string(), |id| id.to_string()),
            String::from_utf8_lossy(channel),
            listeners.len()
        );
        for mailbox in listeners.values() {
            mailbox.push(delivery.clone());
        }
    }
}

fn names(channels: &[Channel]) -> Vec<&[u8]> {
    channels.iter().map(|channel| &channel[..]).collect()
}

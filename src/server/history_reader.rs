//! The server's one connection for commands: the event counter and the
//! channels' histories. Multiplexed, so every opening stream shares it (see
//! `command_link`: a request arriving while it connects waits for that
//! attempt; one that fails gets a 503).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::{ErrorKind, ServerErrorKind, Value};

use super::metrics::{LinkHealth, Metrics};
use crate::channel::Channel;
use crate::command_link::{is_connection_error, CommandConnection, CommandLink};
use crate::protocol::history::{Start, StoredEvent};
use crate::redis_layout::{self, HISTORY_SIZE, LAST_EVENT_ID_KEY};
use crate::redis_url::RedisUrl;

const TIMEOUT: Duration = Duration::from_secs(5);

pub struct HistoryReader {
    link: CommandLink,
    health: LinkHealth,
    metrics: Arc<Metrics>,
}

/// What a stream reads after subscribing: the counter, then each channel's history.
pub struct Snapshot {
    pub counter: Option<u64>,
    pub histories: Vec<Vec<StoredEvent>>,
}

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The server's Redis user may not read this channel's key (NOPERM):
    /// the request gets a 403 that names it.
    #[error(
        "Redis refused to read the history of {:?}: {reason}",
        String::from_utf8_lossy(channel)
    )]
    Refused { channel: Channel, reason: String },
    #[error("cannot read the history: {0}")]
    Redis(#[from] redis::RedisError),
}

impl HistoryReader {
    /// Connects on first use.
    pub fn new(url: &RedisUrl, metrics: Arc<Metrics>) -> Self {
        HistoryReader {
            link: CommandLink::new(url.clone(), TIMEOUT, TIMEOUT),
            health: LinkHealth::default(),
            metrics,
        }
    }

    /// Whether the last command went through.
    pub fn is_up(&self) -> bool {
        self.health.is_up()
    }

    /// `PING`, to know whether the connection is up now.
    pub async fn ping(&self) -> bool {
        let mut pipe = redis::pipe();
        pipe.cmd("PING");
        self.query(pipe).await.is_ok()
    }

    /// `GET redisse:lastEventId`.
    pub async fn counter(&self) -> redis::RedisResult<Option<u64>> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(LAST_EVENT_ID_KEY);
        let mut values = self.query(pipe).await?.into_iter();
        Ok(values.next().transpose()?.as_ref().and_then(parse_counter))
    }

    /// The counter and the histories since `start`, in one round trip; the
    /// counter first, so that an event published in between shows up in
    /// the history (and is sent) rather than being skipped.
    ///
    /// Each history read is bounded by the history's size, and keeps only
    /// event text: a channel is any key of the database, which may be a
    /// sorted set of the application's own, or no sorted set at all.
    pub async fn snapshot(
        &self,
        start: Start,
        channels: &[Channel],
    ) -> Result<Snapshot, ReadError> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(LAST_EVENT_ID_KEY);
        let min = start.min_score();
        for channel in channels {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(&channel[..])
                .arg(&min)
                .arg("+inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(HISTORY_SIZE);
        }
        let mut values = self.query(pipe).await?.into_iter();
        let counter = values.next().transpose()?.as_ref().and_then(parse_counter);
        let histories = values
            .zip(channels)
            .map(|(value, channel)| match value {
                Ok(value) => Ok(parse_history(value)),
                // Not a sorted set: nothing to replay, and no word of what it is.
                Err(e) if e.code() == Some("WRONGTYPE") => Ok(Vec::new()),
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm) => {
                    Err(ReadError::Refused {
                        channel: channel.clone(),
                        reason: e.to_string(),
                    })
                }
                Err(e) => Err(e.into()),
            })
            .collect::<Result<_, _>>()?;
        Ok(Snapshot { counter, histories })
    }

    /// Runs the commands; a connection found broken (Redis restarted since
    /// its last use) is replaced and the commands sent once more, which is
    /// safe as they only read.
    /// Each command's own result, or `Err` if the connection failed.
    async fn query(&self, mut pipe: redis::Pipeline) -> redis::RedisResult<Vec<Replied>> {
        pipe.ignore_errors();
        let mut retried = false;
        let result = loop {
            let result = match self.link.connection().await {
                Ok(connection) if connection.is_cluster() => one_by_one(connection, &pipe).await,
                Ok(mut connection) => pipe.query_async::<Vec<Replied>>(&mut connection).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if !retried && (e.is_connection_dropped() || e.is_io_error()) => {
                    self.link.failed(&e);
                    retried = true;
                }
                result => break result,
            }
        };
        match &result {
            Err(e) if is_connection_error(e) => {
                self.link.failed(e);
                self.health.failed()
            }
            _ => {
                if self.health.worked() {
                    self.metrics
                        .commands_reconnects
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        result
    }
}

/// A cluster's keys live on several nodes: the first command (the counter)
/// first, as in a pipeline, then the others at once, each to its node.
async fn one_by_one(
    connection: CommandConnection,
    pipe: &redis::Pipeline,
) -> redis::RedisResult<Vec<Replied>> {
    let query = |command: &redis::Cmd| {
        let (command, mut connection) = (command.clone(), connection.clone());
        async move {
            match command.query_async::<Value>(&mut connection).await {
                Err(e) if is_connection_error(&e) => Err(e),
                replied => Ok(replied),
            }
        }
    };
    let mut commands = pipe.cmd_iter();
    let mut values = Vec::new();
    if let Some(first) = commands.next() {
        values.push(query(first).await?);
    }
    for value in futures_util::future::join_all(commands.map(query)).await {
        values.push(value?);
    }
    Ok(values)
}

/// One command's reply: a value, or the error Redis answered it with.
type Replied = redis::RedisResult<Value>;

fn parse_counter(value: &Value) -> Option<u64> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        Value::Int(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// `ZRANGEBYSCORE ... WITHSCORES`: member, score, member, score... Only
/// the members that are event text with the id of their score are events;
/// anything else is no event, and is neither sent nor counted.
fn parse_history(value: Value) -> Vec<StoredEvent> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    let mut events = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(member), Some(score)) = (items.next(), items.next()) {
        let Value::BulkString(text) = member else {
            continue;
        };
        let Some(id) = redis_layout::stored_id(&text) else {
            continue;
        };
        // A score is a double: above 2^53 it is the id, rounded.
        if parse_score(&score) == Some(id as f64) {
            events.push(StoredEvent {
                id,
                text: Bytes::from(text),
            });
        }
    }
    events
}

fn parse_score(value: &Value) -> Option<f64> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        Value::Double(d) => Some(*d),
        Value::Int(n) => Some(*n as f64),
        _ => None,
    }
}

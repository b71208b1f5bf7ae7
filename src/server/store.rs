//! The server's one connection for commands: the event counter and the
//! channels' histories. Multiplexed, so every opening stream shares it (see
//! `command_link`: a request arriving while it connects waits for that
//! attempt; one that fails gets a 503).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::Value;

use super::metrics::{LinkHealth, Metrics};
use crate::command_link::{is_connection_error, CommandLink, Connection};
use crate::event;
use crate::protocol::history::{Start, StoredEvent};
use crate::protocol::request::Channel;
use crate::publisher::LAST_EVENT_ID_KEY;
use crate::redis_url::RedisUrl;

const TIMEOUT: Duration = Duration::from_secs(5);

pub struct Store {
    link: CommandLink,
    health: LinkHealth,
    metrics: Arc<Metrics>,
}

/// What a stream reads after subscribing: the counter, then each channel's history.
pub struct Snapshot {
    pub counter: Option<u64>,
    pub histories: Vec<Vec<StoredEvent>>,
}

impl Store {
    /// Connects on first use.
    pub fn new(url: &RedisUrl, metrics: Arc<Metrics>) -> Self {
        Store {
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
        let values = self.query(pipe).await?;
        Ok(values.first().and_then(parse_counter))
    }

    /// The counter and the histories since `start`, in one round trip; the
    /// counter first, so that an event published in between shows up in
    /// the history (and is sent) rather than being skipped.
    pub async fn snapshot(
        &self,
        start: Start,
        channels: &[Channel],
    ) -> redis::RedisResult<Snapshot> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(LAST_EVENT_ID_KEY);
        let min = start.min_score();
        for channel in channels {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(&channel[..])
                .arg(&min)
                .arg("+inf")
                .arg("WITHSCORES");
        }
        let values = self.query(pipe).await?;
        let mut values = values.into_iter();
        let counter = values.next().as_ref().and_then(parse_counter);
        let histories = values
            .map(parse_history)
            .collect::<redis::RedisResult<_>>()?;
        Ok(Snapshot { counter, histories })
    }

    /// Runs the commands; a connection found broken (Redis restarted since
    /// its last use) is replaced and the commands sent once more, which is
    /// safe as they only read.
    async fn query(&self, pipe: redis::Pipeline) -> redis::RedisResult<Vec<Value>> {
        let mut retried = false;
        let result = loop {
            let result = match self.link.connection().await {
                Ok(connection) if connection.is_cluster() => one_by_one(connection, &pipe).await,
                Ok(mut connection) => pipe.query_async::<Vec<Value>>(&mut connection).await,
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
    connection: Connection,
    pipe: &redis::Pipeline,
) -> redis::RedisResult<Vec<Value>> {
    let mut commands = pipe.cmd_iter();
    let mut values = Vec::new();
    if let Some(first) = commands.next() {
        values.push(first.query_async::<Value>(&mut connection.clone()).await?);
    }
    let rest = commands.map(|command| {
        let mut connection = connection.clone();
        async move { command.query_async::<Value>(&mut connection).await }
    });
    for value in futures_util::future::join_all(rest).await {
        values.push(value?);
    }
    Ok(values)
}

fn parse_counter(value: &Value) -> Option<u64> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        Value::Int(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// `ZRANGEBYSCORE ... WITHSCORES`: member, score, member, score...
fn parse_history(value: Value) -> redis::RedisResult<Vec<StoredEvent>> {
    let items = match value {
        Value::Array(items) => items,
        Value::ServerError(e) => return Err(e.into()),
        other => return Err(unexpected(&other)),
    };
    let mut events = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(member), Some(score)) = (items.next(), items.next()) {
        let Value::BulkString(text) = member else {
            return Err(unexpected(&member));
        };
        // The id in the text is exact; a score is a double, rounded above 2^53.
        let Some(id) = event::id_of(&text).or_else(|| parse_score(&score)) else {
            return Err(unexpected(&score));
        };
        events.push(StoredEvent {
            id,
            text: Bytes::from(text),
        });
    }
    Ok(events)
}

fn parse_score(value: &Value) -> Option<u64> {
    let score: f64 = match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok()?,
        Value::Double(d) => *d,
        Value::Int(n) => *n as f64,
        _ => return None,
    };
    (score >= 0.0 && score.fract() == 0.0).then_some(score as u64)
}

fn unexpected(value: &Value) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected history reply",
        format!("{value:?}"),
    ))
}

//! The server's one connection for commands: the event counter and the
//! channels' histories. Multiplexed, so every opening stream shares it;
//! reopened on the next use after it failed.

use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use tokio::sync::Mutex;

use crate::protocol::history::{Start, StoredEvent};
use crate::protocol::request::Channel;
use crate::publisher::LAST_EVENT_ID_KEY;
use crate::redis_url::RedisUrl;

const TIMEOUT: Duration = Duration::from_secs(5);

pub struct Store {
    url: RedisUrl,
    connection: Mutex<Option<MultiplexedConnection>>,
}

/// What a stream reads after subscribing: the counter, then each channel's history.
pub struct Snapshot {
    pub counter: Option<u64>,
    pub histories: Vec<Vec<StoredEvent>>,
}

impl Store {
    pub fn new(url: RedisUrl) -> Self {
        Store {
            url,
            connection: Mutex::new(None),
        }
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
        loop {
            let mut connection = self.connection().await?;
            match pipe.query_async::<Vec<Value>>(&mut connection).await {
                Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                    *self.connection.lock().await = None;
                    if retried {
                        return Err(e);
                    }
                    retried = true;
                }
                result => return result,
            }
        }
    }

    async fn connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let connection = self
            .url
            .client()
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }
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
        let (Value::BulkString(text), Some(id)) = (member, parse_score(&score)) else {
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

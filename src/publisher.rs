//! Publishing an event: one round trip to Redis per event.
//!
//! The 0.4 gem sent INCR, PUBLISH, ZADD and ZREMRANGEBYRANK one after the
//! other. A server-side script does the same four commands atomically, so
//! what lands in Redis is identical, ids are published in order, and the
//! history holds every event that was published.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use thiserror::Error;

use crate::event::{EventText, InvalidEvent};
use crate::redis_url::{InvalidUrl, RedisUrl};

/// The key of the counter shared by every channel (SPEC §1).
pub const LAST_EVENT_ID_KEY: &str = "redisse:lastEventId";
/// Events kept per channel (SPEC §1): part of the format, not an option.
pub const HISTORY_SIZE: usize = 100;

/// The id is read back as a string: Lua's numbers are doubles, which
/// `..` writes as `1e+14` from 10^14 on and which round ids above 2^53.
const PUBLISH_SCRIPT: &str = r"
redis.call('INCR', KEYS[1])
local id = redis.call('GET', KEYS[1])
local text = ARGV[1] .. id .. ARGV[2]
redis.call('PUBLISH', KEYS[2], text)
redis.call('ZADD', KEYS[2], id, text)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[3]))
return id
";

#[derive(Debug, Error)]
pub enum PublishError {
    #[error(transparent)]
    InvalidEvent(#[from] InvalidEvent),
    #[error(transparent)]
    InvalidUrl(#[from] InvalidUrl),
    #[error("cannot reach Redis at {url}: {source}")]
    Connection {
        url: String,
        source: redis::RedisError,
    },
    #[error("Redis at {url} refused the publish: {source}")]
    Command {
        url: String,
        source: redis::RedisError,
    },
}

/// The script that publishes one event, for publishers that bring their own
/// connection (the benchmarks' async one, say).
pub fn publish_script() -> redis::Script {
    redis::Script::new(PUBLISH_SCRIPT)
}

/// Adds the script's keys and arguments for one event to an invocation.
pub fn prepare_publish<'a>(
    script: &'a redis::Script,
    channel: &[u8],
    text: &EventText,
) -> redis::ScriptInvocation<'a> {
    let mut invocation = script.key(LAST_EVENT_ID_KEY);
    invocation
        .key(channel)
        .arg(&text.head[..])
        .arg(&text.tail[..])
        .arg(HISTORY_SIZE);
    invocation
}

/// A blocking publisher, safe to share between threads and across `fork`.
///
/// Connections are pooled so that threads publish in parallel; each one
/// remembers the process that opened it, and a forked child never touches
/// its parent's connections (it drops them and opens its own).
pub struct Publisher {
    url: RedisUrl,
    connect_timeout: Duration,
    command_timeout: Duration,
    script: redis::Script,
    idle: Mutex<Vec<PooledConnection>>,
}

struct PooledConnection {
    connection: redis::Connection,
    pid: u32,
}

impl Publisher {
    pub fn new(
        url: &str,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self, PublishError> {
        Ok(Publisher {
            url: RedisUrl::parse(url)?,
            connect_timeout,
            command_timeout,
            script: publish_script(),
            idle: Mutex::new(Vec::new()),
        })
    }

    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// Publishes one event and returns its id.
    pub fn publish(
        &self,
        channel: &[u8],
        event_type: &[u8],
        data: &[u8],
    ) -> Result<u64, PublishError> {
        let text = EventText::new(data, Some(event_type), None)?;
        let (mut pooled, mut reused) = self.checkout()?;
        loop {
            let invocation = prepare_publish(&self.script, channel, &text);
            match invocation.invoke::<u64>(&mut pooled.connection) {
                Ok(id) => {
                    self.checkin(pooled);
                    return Ok(id);
                }
                // An idle connection found closed (Redis restarted meanwhile) never
                // delivered the command: publish once more on a new one.
                Err(source) if reused && source.is_connection_dropped() => {
                    pooled = self.open()?;
                    reused = false;
                }
                // A connection that failed mid-command may hold a late reply: never reuse it.
                Err(source) if is_connection_error(&source) => {
                    return Err(self.connection_error(source))
                }
                Err(source) => {
                    self.checkin(pooled);
                    let url = self.url.to_string();
                    return Err(PublishError::Command { url, source });
                }
            }
        }
    }

    /// An idle connection of this process (and `true`), or a new one.
    fn checkout(&self) -> Result<(PooledConnection, bool), PublishError> {
        let pid = std::process::id();
        {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.iter().any(|c| c.pid != pid) {
                // Inherited through fork: closing our copy of the socket leaves the parent's open.
                idle.retain(|c| c.pid == pid);
            }
            if let Some(pooled) = idle.pop() {
                return Ok((pooled, true));
            }
        }
        Ok((self.open()?, false))
    }

    fn open(&self) -> Result<PooledConnection, PublishError> {
        let connection = self.connect().map_err(|e| self.connection_error(e))?;
        Ok(PooledConnection {
            connection,
            pid: std::process::id(),
        })
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let connection = self
            .url
            .client()
            .get_connection_with_timeout(self.connect_timeout)?;
        connection.set_read_timeout(Some(self.command_timeout))?;
        connection.set_write_timeout(Some(self.command_timeout))?;
        Ok(connection)
    }

    fn checkin(&self, pooled: PooledConnection) {
        if pooled.pid == std::process::id() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(pooled);
        }
    }

    fn connection_error(&self, source: redis::RedisError) -> PublishError {
        PublishError::Connection {
            url: self.url.to_string(),
            source,
        }
    }
}

fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}

//! The connection for commands to the Redis behind a URL, shared by every
//! task of a process: the server's history reader, the gem's publisher.
//!
//! It is the `redis` crate's `ConnectionManager` (multiplexed; made again
//! in the background once found broken), made lazily and without retries
//! of its own: the first command connects, those arriving meanwhile wait
//! for that one attempt, and a failed attempt fails them. When the server
//! behind the URL can change (Sentinel), a connection that failed, or that
//! lands on a replica (READONLY), is dropped and the next one is made to
//! the master of the moment. For a Redis Cluster it is the crate's cluster
//! connection instead, which sends each command to its key's node and
//! follows resharding and failovers itself.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};

use crate::redis_url::RedisUrl;

pub struct CommandLink {
    url: RedisUrl,
    connect_timeout: Duration,
    response_timeout: Duration,
    current: Mutex<Option<CommandConnection>>,
}

/// A connection for commands, to one server or to a cluster.
#[derive(Clone)]
pub enum CommandConnection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl CommandConnection {
    /// Whether commands on several keys must go one by one, to each
    /// key's node (a pipeline or script must stay within one slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self, CommandConnection::Cluster(_))
    }
}

impl ConnectionLike for CommandConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            CommandConnection::Server(c) => c.req_packed_command(cmd),
            CommandConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            CommandConnection::Server(c) => c.req_packed_commands(pipeline, offset, count),
            CommandConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            CommandConnection::Server(c) => c.get_db(),
            CommandConnection::Cluster(c) => c.get_db(),
        }
    }
}

impl CommandLink {
    pub fn new(url: RedisUrl, connect_timeout: Duration, response_timeout: Duration) -> Self {
        CommandLink {
            url,
            connect_timeout,
            response_timeout,
            current: Mutex::new(None),
        }
    }

    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// The connection, made on first use; within the tokio runtime.
    pub async fn connection(&self) -> RedisResult<CommandConnection> {
        if let Some(connection) = self.lock().as_ref() {
            return Ok(connection.clone());
        }
        if let Some(cluster) = self.url.cluster() {
            // It finds the cluster's nodes, then keeps up with them.
            let connection = tokio::time::timeout(
                self.connect_timeout + self.response_timeout,
                cluster.client.get_async_connection(),
            )
            .await
            .map_err(|_| {
                RedisError::from((ErrorKind::Io, "timed out connecting to the cluster"))
            })??;
            return Ok(self
                .lock()
                .get_or_insert(CommandConnection::Cluster(connection))
                .clone());
        }
        let client = self.url.client().await?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            // A command waits for one attempt to connect, not for a series.
            .set_number_of_retries(0);
        let made = ConnectionManager::new_lazy_with_config(client, config)?;
        // Another task may have made one meanwhile: the first one stays.
        Ok(self
            .lock()
            .get_or_insert(CommandConnection::Server(made))
            .clone())
    }

    /// A command failed: when the server can change, the next command goes
    /// to the master of the moment.
    pub fn failed(&self, error: &RedisError) {
        let moved = error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
            || is_connection_error(error);
        if moved && self.url.follows_failovers() {
            self.forget();
        }
    }

    /// Drops the connection: the next command makes a new one.
    pub fn forget(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<CommandConnection>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The connection failed, not the command.
pub fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}

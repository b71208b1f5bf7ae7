//! The server's one connection for commands: the event counter and the
//! channels' histories. Multiplexed, so every opening stream shares it (see
//! `command_link`: a request arriving while it connects waits for that
//! attempt; one that fails gets a 503).
//!
//! Reads are merged: the requests that wait while earlier reads are under
//! way go to Redis together, in one pipeline, and the requests that ask
//! for the same channel from the same id share one read of it. A deploy
//! that brings thousands of browsers back at once, each with its
//! `Last-Event-Id`, costs Redis a few pipelines, not a read per browser
//! (in a burst, a pipeline waits for the rest of it, [`GATHERING`]);
//! and at most [`READS_IN_FLIGHT`] pipelines are ever under way, so Redis
//! is never flooded. A request that joins a pipeline subscribed before the
//! pipeline was sent, so what it reads misses nothing (SPEC §2).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::{ErrorKind, ServerErrorKind, Value};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::metrics::{LinkHealth, Metrics};
use crate::channel::Channel;
use crate::command_link::{is_connection_error, CommandConnection, CommandLink};
use crate::protocol::history::{Start, StoredEvent};
use crate::redis_layout::{self, HISTORY_SIZE, LAST_EVENT_ID_KEY};
use crate::redis_url::RedisUrl;

const TIMEOUT: Duration = Duration::from_secs(5);
/// Pipelines of reads under way at once, at most.
const READS_IN_FLIGHT: usize = 4;
/// Requests merged into one pipeline, at most.
const REQUESTS_PER_READ: usize = 1024;
/// In a burst (a pipeline went less than this ago), the next one waits
/// for the rest of the burst, as long as requests keep coming, [`STEP`]
/// apart, and this long at most: a deploy's reconnections arrive over a
/// second or so, rarely at the same instant, and each would otherwise
/// read alone. A lone request, or one of a client opening its streams one
/// after the other, waits one step at most.
const GATHERING: Duration = Duration::from_millis(20);
const STEP: Duration = Duration::from_millis(5);

pub struct HistoryReader {
    connection: Arc<Commands>,
    reads: mpsc::UnboundedSender<ReadRequest>,
}

/// The command connection itself, and what it reports to.
struct Commands {
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
#[derive(Debug, Clone, thiserror::Error)]
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

/// A stream's read, waiting for a pipeline: the counter, and the
/// histories of its channels since `start` (none without a start).
struct ReadRequest {
    start: Option<Start>,
    channels: Vec<Channel>,
    reply: oneshot::Sender<Result<Snapshot, ReadError>>,
}

impl HistoryReader {
    /// Connects on first use; within the runtime, where its reads are sent.
    pub fn new(url: &RedisUrl, metrics: Arc<Metrics>) -> Self {
        let connection = Arc::new(Commands {
            link: CommandLink::new(url.clone(), TIMEOUT, TIMEOUT),
            health: LinkHealth::default(),
            metrics,
        });
        let (reads, requests) = mpsc::unbounded_channel();
        tokio::spawn(send_reads(connection.clone(), requests));
        HistoryReader { connection, reads }
    }

    /// Whether the last command went through.
    pub fn is_up(&self) -> bool {
        self.connection.health.is_up()
    }

    /// `PING`, to know whether the connection is up now.
    pub async fn ping(&self) -> bool {
        let mut pipe = redis::pipe();
        pipe.cmd("PING");
        self.connection.query(pipe).await.is_ok()
    }

    /// `GET redisse:lastEventId`.
    pub async fn counter(&self) -> Result<Option<u64>, ReadError> {
        Ok(self.read(None, Vec::new()).await?.counter)
    }

    /// The counter and the histories since `start`; the counter read
    /// first, so that an event published in between shows up in the
    /// history (and is sent) rather than being skipped.
    ///
    /// Each history read is bounded by the history's size, and keeps only
    /// event text: a channel is any key of the database, which may be a
    /// sorted set of the application's own, or no sorted set at all.
    pub async fn snapshot(
        &self,
        start: Start,
        channels: &[Channel],
    ) -> Result<Snapshot, ReadError> {
        self.read(Some(start), channels.to_vec()).await
    }

    async fn read(
        &self,
        start: Option<Start>,
        channels: Vec<Channel>,
    ) -> Result<Snapshot, ReadError> {
        let (reply, replied) = oneshot::channel();
        let request = ReadRequest {
            start,
            channels,
            reply,
        };
        let stopped = || redis::RedisError::from((ErrorKind::Io, "the server is stopping"));
        self.reads.send(request).map_err(|_| stopped())?;
        replied.await.map_err(|_| stopped())?
    }
}

/// Sends the waiting requests as pipelines, [`READS_IN_FLIGHT`] at most
/// under way, one per [`GATHERING`] in a burst: those that come meanwhile
/// wait, and go together.
async fn send_reads(connection: Arc<Commands>, mut requests: mpsc::UnboundedReceiver<ReadRequest>) {
    let slots = Arc::new(Semaphore::new(READS_IN_FLIGHT));
    let mut last_sent: Option<tokio::time::Instant> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::new();
        if requests.recv_many(&mut batch, REQUESTS_PER_READ).await == 0 {
            return;
        }
        if last_sent.is_some_and(|at| at.elapsed() < GATHERING) {
            gather(&mut requests, &mut batch).await;
        }
        last_sent = Some(tokio::time::Instant::now());
        let connection = connection.clone();
        tokio::spawn(async move {
            connection.read(batch).await;
            drop(slot);
        });
    }
}

/// Adds to `batch` what comes while a burst lasts (see [`GATHERING`]).
async fn gather(requests: &mut mpsc::UnboundedReceiver<ReadRequest>, batch: &mut Vec<ReadRequest>) {
    let until = tokio::time::Instant::now() + GATHERING;
    while batch.len() < REQUESTS_PER_READ && tokio::time::Instant::now() < until {
        tokio::time::sleep(STEP).await;
        let before = batch.len();
        while batch.len() < REQUESTS_PER_READ {
            let Ok(request) = requests.try_recv() else {
                break;
            };
            batch.push(request);
        }
        if batch.len() == before {
            return;
        }
    }
}

impl Commands {
    /// One pipeline for `requests`: the counter, then each distinct
    /// (channel, start) once; each request gets its part.
    async fn read(&self, requests: Vec<ReadRequest>) {
        let mut keys: HashMap<(Channel, String), usize> = HashMap::new();
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(LAST_EVENT_ID_KEY);
        for request in &requests {
            let Some(start) = request.start else {
                continue;
            };
            let min = start.min_score();
            for channel in &request.channels {
                let next = keys.len();
                keys.entry((channel.clone(), min.clone()))
                    .or_insert_with(|| {
                        pipe.cmd("ZRANGEBYSCORE")
                            .arg(&channel[..])
                            .arg(&min)
                            .arg("+inf")
                            .arg("WITHSCORES")
                            .arg("LIMIT")
                            .arg(0)
                            .arg(HISTORY_SIZE);
                        next
                    });
            }
        }
        let metrics = &self.metrics;
        metrics
            .history_requests
            .fetch_add(requests.len() as u64, Ordering::Relaxed);
        metrics
            .history_commands
            .fetch_add(1 + keys.len() as u64, Ordering::Relaxed);
        let replies = match self.query(pipe).await {
            Ok(replies) => replies,
            Err(e) => {
                for request in requests {
                    let _ = request.reply.send(Err(ReadError::Redis(e.clone())));
                }
                return;
            }
        };
        let mut replies = replies.into_iter();
        let counter = match replies.next().transpose() {
            Ok(value) => value.as_ref().and_then(parse_counter),
            Err(e) => {
                for request in requests {
                    let _ = request.reply.send(Err(ReadError::Redis(e.clone())));
                }
                return;
            }
        };
        let histories: Vec<redis::RedisResult<Vec<StoredEvent>>> = replies
            .map(|reply| match reply {
                Ok(value) => Ok(parse_history(value)),
                // Not a sorted set: nothing to replay, and no word of what it is.
                Err(e) if e.code() == Some("WRONGTYPE") => Ok(Vec::new()),
                Err(e) => Err(e),
            })
            .collect();
        for request in requests {
            let answer = match request.start {
                None => Ok(Snapshot {
                    counter,
                    histories: Vec::new(),
                }),
                Some(start) => {
                    let min = start.min_score();
                    request
                        .channels
                        .iter()
                        .map(
                            |channel| match &histories[keys[&(channel.clone(), min.clone())]] {
                                Ok(events) => Ok(events.clone()),
                                // This server's Redis user may not read it.
                                Err(e)
                                    if e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm) =>
                                {
                                    Err(ReadError::Refused {
                                        channel: channel.clone(),
                                        reason: e.to_string(),
                                    })
                                }
                                Err(e) => Err(ReadError::Redis(e.clone())),
                            },
                        )
                        .collect::<Result<Vec<_>, _>>()
                        .map(|histories| Snapshot { counter, histories })
                }
            };
            // Its client may have left meanwhile.
            let _ = request.reply.send(answer);
        }
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

//! Publishing an event: one round trip to Redis per event, for callers that
//! block (the gem's Ruby threads).
//!
//! The 0.4 gem sent INCR, PUBLISH, ZADD and ZREMRANGEBYRANK one after the
//! other. A server-side script does the same four commands atomically, so
//! what lands in Redis is identical, ids are published in order, and the
//! history holds every event that was published.
//!
//! The I/O runs on a small runtime of this process's own, over one
//! multiplexed connection that every thread shares. A caller starts a
//! publish ([`Publisher::start`]) and waits for it ([`PendingPublish::wait`]);
//! the wait can be interrupted from another thread (Ruby's unblock
//! function), and the caller may then give up ([`PendingPublish::cancel`]):
//! the connection is then dropped, and the next publish opens a new one.
//! Runtime and connection are [`ProcessLocal`]: a forked child opens its own.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::blocking::{BlockingQueue, Popped};
use crate::command_link::{is_connection_error, CommandConnection, CommandLink};
use crate::event::{EventText, InvalidEvent};
use crate::process_local::ProcessLocal;
use crate::redis_layout::{HISTORY_SIZE, LAST_EVENT_ID_KEY};
use crate::redis_url::{InvalidUrl, RedisUrl};
use crate::signal_mask;

/// The id is read back as a string: Lua's numbers are doubles, which
/// `..` writes as `1e+14` from 10^14 on and which round ids above 2^53.
/// Permissions are checked first (Redis 7): a user the ACL forbids a
/// command gets an error that names it, and nothing is half done.
const PUBLISH_SCRIPT: &str = r"
local needed = {
  {'INCR', KEYS[1]}, {'GET', KEYS[1]}, {'PUBLISH', KEYS[2], ''},
  {'ZADD', KEYS[2], '0', ''}, {'ZREMRANGEBYRANK', KEYS[2], '0', '0'},
}
local refused = permission_refused(needed)
if refused then return refused end
redis.call('INCR', KEYS[1])
local id = redis.call('GET', KEYS[1])
local text = ARGV[1] .. id .. ARGV[2]
redis.call('PUBLISH', KEYS[2], text)
redis.call('ZADD', KEYS[2], id, text)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[3]))
return id
";
/// In a Redis Cluster the counter and the channel are keys of different
/// slots, which one script cannot touch: the id is taken first (INCR, on
/// the counter's node), then this script, on the channel's node, does the
/// rest with it. Ids of two publishers can then reach a channel out of
/// order, which the server handles (as for 0.4 publishers).
const CLUSTER_PUBLISH_SCRIPT: &str = r"
local needed = {
  {'PUBLISH', KEYS[1], ''}, {'ZADD', KEYS[1], '0', ''}, {'ZREMRANGEBYRANK', KEYS[1], '0', '0'},
}
local refused = permission_refused(needed)
if refused then return refused end
local text = ARGV[1] .. ARGV[2] .. ARGV[3]
redis.call('PUBLISH', KEYS[1], text)
redis.call('ZADD', KEYS[1], ARGV[2], text)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -1 - tonumber(ARGV[4]))
return 0
";

/// What both scripts start with: an error naming the first command the
/// ACL forbids (Redis 7; older Redis has no `acl_check_cmd`).
const PERMISSION_CHECK: &str = r"
local function permission_refused(needed)
  if not redis.acl_check_cmd then return nil end
  for _, command in ipairs(needed) do
    if not redis.acl_check_cmd(unpack(command)) then
      return redis.error_reply('NOPERM this Redis user may not run ' .. command[1] .. ' on ' .. command[2])
    end
  end
  return nil
end
";

/// A script with the permission check in front.
fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{PERMISSION_CHECK}{body}"))
}
#[derive(Debug, Error)]
pub enum PublishError {
    #[error(transparent)]
    InvalidEvent(#[from] InvalidEvent),
    #[error(transparent)]
    InvalidUrl(#[from] InvalidUrl),
    #[error("cannot reach Redis at {url}: {reason}")]
    Connection { url: String, reason: String },
    #[error("Redis at {url} refused the publish: {source}")]
    Command {
        url: String,
        source: redis::RedisError,
    },
    #[error("cannot start the publisher's thread: {0}")]
    Runtime(String),
    /// Its task ended without a result (it was cancelled, or failed).
    #[error("the publish ended without a result: the event may or may not have been published")]
    Lost,
}

/// The script that publishes one event, for publishers that bring their own
/// connection (the benchmarks' async one, say).
pub fn publish_script() -> redis::Script {
    script(PUBLISH_SCRIPT)
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

/// The publishers' runtime: one thread, which never takes a signal.
static RUNTIME: ProcessLocal<Result<Runtime, String>> = ProcessLocal::new();

fn runtime() -> Result<&'static Runtime, PublishError> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .max_blocking_threads(1)
                .thread_name("redisse-publish")
                .on_thread_start(signal_mask::block_async_signals)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| PublishError::Runtime(e.clone()))
}

/// A blocking publisher, safe to share between threads and across `fork`.
pub struct Publisher {
    url: RedisUrl,
    connect_timeout: Duration,
    command_timeout: Duration,
    script: Arc<redis::Script>,
    /// This process's connection (a forked child makes its own).
    link: ProcessLocal<Arc<CommandLink>>,
}

/// A publish under way.
pub struct PendingPublish {
    done: Arc<BlockingQueue<Result<u64, PublishError>>>,
    task: JoinHandle<()>,
    link: Arc<CommandLink>,
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
            script: Arc::new(publish_script()),
            link: ProcessLocal::new(),
        })
    }

    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// Publishes one event and returns its id, blocking until done.
    pub fn publish(
        &self,
        channel: &[u8],
        event_type: &[u8],
        data: &[u8],
    ) -> Result<u64, PublishError> {
        let pending = self.start(channel, event_type, data)?;
        loop {
            if let Some(result) = pending.wait() {
                return result;
            }
        }
    }

    /// Starts publishing one event; [`PendingPublish::wait`] gives its id.
    pub fn start(
        &self,
        channel: &[u8],
        event_type: &[u8],
        data: &[u8],
    ) -> Result<PendingPublish, PublishError> {
        let text = EventText::new(data, Some(event_type), None)?;
        let runtime = runtime()?;
        let link = self
            .link
            .get_or_init(|| {
                Arc::new(CommandLink::new(
                    self.url.clone(),
                    self.connect_timeout,
                    self.command_timeout,
                ))
            })
            .clone();
        let done = Arc::new(BlockingQueue::bounded(1));
        let publish = Publish {
            script: self.script.clone(),
            channel: channel.to_vec(),
            text,
            // Connecting, then the command: each has its own timeout inside.
            deadline: self.connect_timeout + self.command_timeout,
        };
        // However the task ends (done, aborted before or after it began,
        // panicked), the queue closes when the task drops it: a caller
        // never waits for a result that cannot come.
        let closing = CloseOnDrop(done.clone());
        let task = runtime.spawn({
            let link = link.clone();
            async move {
                let _ = closing.0.push(publish.run(&link).await);
            }
        });
        Ok(PendingPublish { done, task, link })
    }
}

/// Closes a queue when dropped.
struct CloseOnDrop<T>(Arc<BlockingQueue<T>>);

impl<T> Drop for CloseOnDrop<T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// One event on its way, on the runtime.
struct Publish {
    script: Arc<redis::Script>,
    channel: Vec<u8>,
    text: EventText,
    deadline: Duration,
}

impl Publish {
    async fn run(self, link: &CommandLink) -> Result<u64, PublishError> {
        let invoke = async {
            let mut retried = false;
            loop {
                let mut connection = link.connection().await?;
                if connection.is_cluster() {
                    return self.publish_to_cluster(&mut connection).await;
                }
                let invocation = prepare_publish(&self.script, &self.channel, &self.text);
                match invocation.invoke_async::<u64>(&mut connection).await {
                    // Found closed before the command went out (Redis restarted
                    // since the last publish), or on a replica (a failover): the
                    // publish never happened, and is sent once more, on a new
                    // connection (to the new master).
                    Err(e) if !retried && (e.is_connection_dropped() || is_read_only(&e)) => {
                        link.failed(&e);
                        retried = true;
                    }
                    result => return result,
                }
            }
        };
        let result = match tokio::time::timeout(self.deadline, invoke).await {
            Ok(result) => result,
            Err(_) => Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out"))),
        };
        let url = link.url().to_string();
        result.map_err(|source| {
            link.failed(&source);
            if is_connection_error(&source) {
                // A late reply may still come on it: never use it again.
                link.forget();
                PublishError::Connection {
                    url,
                    reason: source.to_string(),
                }
            } else {
                PublishError::Command { url, source }
            }
        })
    }
}

impl Publish {
    async fn publish_to_cluster(
        &self,
        connection: &mut CommandConnection,
    ) -> redis::RedisResult<u64> {
        let id: u64 = redis::cmd("INCR")
            .arg(LAST_EVENT_ID_KEY)
            .query_async(connection)
            .await?;
        static CLUSTER_SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| script(CLUSTER_PUBLISH_SCRIPT));
        CLUSTER_SCRIPT
            .key(&self.channel[..])
            .arg(&self.text.head[..])
            .arg(id)
            .arg(&self.text.tail[..])
            .arg(HISTORY_SIZE)
            .invoke_async::<()>(connection)
            .await?;
        Ok(id)
    }
}

impl PendingPublish {
    /// Blocks until the publish is done; `None` once [`Self::interrupt`] was
    /// called (from another thread), for the caller to see why.
    pub fn wait(&self) -> Option<Result<u64, PublishError>> {
        match self.done.pop() {
            Popped::Item(result) => Some(result),
            Popped::Interrupted => None,
            Popped::Closed => Some(Err(PublishError::Lost)),
        }
    }

    /// Wakes a thread blocked in `wait`.
    pub fn interrupt(&self) {
        self.done.interrupt();
    }

    /// Gives the publish up (the caller was interrupted for good): its
    /// connection is dropped, and the next publish opens a new one. The
    /// event may have been published all the same, if Redis had it already.
    pub fn cancel(&self) {
        self.task.abort();
        self.link.forget();
    }
}

fn is_read_only(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}

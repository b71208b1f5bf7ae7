//! Publishing an event: one round trip to Redis per event, for callers that
//! block (the gem's Ruby threads).
//!
//! The 0.4 gem sent INCR, PUBLISH, ZADD and ZREMRANGEBYRANK one after the
//! other. A server-side script does the same four commands atomically, so
//! what lands in Redis is identical, ids are published in order, and the
//! history holds every event that was published.
//!
//! A publish runs on the calling thread, with no hand-off to another
//! thread and back: a caller starts it ([`Publisher::start`]) and drives
//! it to its end in [`PendingPublish::wait`], in a small single-threaded
//! runtime with a connection of its own, which it checks out of the
//! publisher's pool of idle ones and gives back when done. So a process
//! holds as many connections as it ever had publishes at once (one per
//! publishing thread, at most), and a single thread pays one round trip
//! per event and nothing more. The wait can be interrupted from another
//! thread or a signal handler (Ruby's unblock function,
//! [`PendingPublish::interrupt`]: an atomic add and an eventfd write); the
//! publish stays where it was, to be waited for again, or given up
//! ([`PendingPublish::cancel`]): its connection is then dropped. The pool
//! is [`ProcessLocal`]: a forked child opens its own connections.

use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use thiserror::Error;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::runtime::Runtime;

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

/// A single-threaded runtime and a connection, for one publish at a time.
struct Context {
    runtime: OwnRuntime,
    link: Arc<CommandLink>,
    interrupts: Arc<Interrupts>,
}

/// A blocking publisher, safe to share between threads and across `fork`.
pub struct Publisher {
    url: RedisUrl,
    connect_timeout: Duration,
    command_timeout: Duration,
    script: Arc<redis::Script>,
    /// This process's idle contexts (a forked child makes its own).
    idle: ProcessLocal<Arc<Mutex<Vec<Context>>>>,
}

/// A publish under way: driven by [`Self::wait`], on the caller's thread.
pub struct PendingPublish {
    state: Mutex<Option<Running>>,
    interrupts: Arc<Interrupts>,
}

struct Running {
    publish: Pin<Box<dyn Future<Output = Result<u64, PublishError>> + Send>>,
    context: Context,
    /// Where the context goes back once the publish is over.
    idle: Arc<Mutex<Vec<Context>>>,
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
            idle: ProcessLocal::new(),
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

    /// Prepares the publish of one event; [`PendingPublish::wait`] sends
    /// it and gives its id.
    pub fn start(
        &self,
        channel: &[u8],
        event_type: &[u8],
        data: &[u8],
    ) -> Result<PendingPublish, PublishError> {
        let text = EventText::new(data, Some(event_type), None)?;
        let idle = self.idle.get_or_init(Arc::default).clone();
        let context = match lock(&idle).pop() {
            Some(context) => context,
            None => self.context()?,
        };
        let publish = Publish {
            script: self.script.clone(),
            channel: channel.to_vec(),
            text,
            // Connecting, then the command: each has its own timeout inside.
            deadline: self.connect_timeout + self.command_timeout,
        };
        let link = context.link.clone();
        let interrupts = context.interrupts.clone();
        Ok(PendingPublish {
            state: Mutex::new(Some(Running {
                publish: Box::pin(async move { publish.run(&link).await }),
                context,
                idle,
            })),
            interrupts,
        })
    }

    fn context(&self) -> Result<Context, PublishError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            // Its only threads are for blocking calls (a DNS lookup):
            // never the ones to take a signal meant for Ruby.
            .on_thread_start(signal_mask::block_async_signals)
            .thread_name("redisse-publish")
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .map_err(|e| PublishError::Runtime(e.to_string()))?;
        let interrupts = {
            let _entered = runtime.enter();
            Interrupts::new().map_err(|e| PublishError::Runtime(e.to_string()))?
        };
        Ok(Context {
            runtime: OwnRuntime(Some(runtime)),
            link: Arc::new(CommandLink::new(
                self.url.clone(),
                self.connect_timeout,
                self.command_timeout,
            )),
            interrupts: Arc::new(interrupts),
        })
    }
}

/// A runtime that may be dropped anywhere, async code included (a
/// publisher dropped in a test's `async fn`): it shuts down in the
/// background instead of blocking, which tokio refuses there.
struct OwnRuntime(Option<Runtime>);

impl std::ops::Deref for OwnRuntime {
    type Target = Runtime;
    fn deref(&self) -> &Runtime {
        self.0.as_ref().expect("present until dropped")
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wakes a wait from another thread, or a signal handler: a count, and an
/// eventfd the wait listens to.
struct Interrupts {
    count: AtomicU64,
    wake: AsyncFd<OwnedFd>,
}

/// How often a wait looks at the count by itself: an interrupt takes no
/// lock, so it can land between the wait's look and its sleep.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

impl Interrupts {
    /// Within the runtime that will wait on it.
    fn new() -> std::io::Result<Self> {
        // SAFETY: a plain system call; the descriptor is owned at once.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: just made, and owned by nothing else; the OwnedFd keeps
        // it open, the same descriptor, for as long as the AsyncFd lives.
        let wake = unsafe {
            let fd = OwnedFd::from_raw_fd(fd);
            AsyncFd::register_with_interest(fd, Interest::READABLE).map_err(|e| e.into_parts().1)?
        };
        Ok(Interrupts {
            count: AtomicU64::new(0),
            wake,
        })
    }

    /// Async-signal-safe: an atomic add and a write(2).
    fn interrupt(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local to our own eventfd.
        unsafe {
            libc::write(
                self.wake.get_ref().as_raw_fd(),
                (&one as *const u64).cast(),
                8,
            );
        }
    }

    /// Completes once the count moved from `seen`.
    async fn moved_from(&self, seen: u64) {
        while self.count.load(Ordering::Acquire) == seen {
            tokio::select! {
                ready = self.wake.readable() => if let Ok(mut ready) = ready {
                    let mut count = [0u8; 8];
                    // SAFETY: reads 8 bytes into a live local from our own eventfd.
                    unsafe {
                        libc::read(self.wake.get_ref().as_raw_fd(), count.as_mut_ptr().cast(), 8);
                    }
                    ready.clear_ready();
                },
                _ = tokio::time::sleep(INTERRUPT_POLL) => {}
            }
        }
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
    /// Sends the publish, or goes on with it, until it is done; `None` once
    /// [`Self::interrupt`] was called (from another thread), for the caller
    /// to see why, and call again or [`Self::cancel`].
    pub fn wait(&self) -> Option<Result<u64, PublishError>> {
        let mut state = lock(&self.state);
        let Some(running) = state.as_mut() else {
            return Some(Err(PublishError::Lost));
        };
        let seen = self.interrupts.count.load(Ordering::Acquire);
        let Running {
            publish, context, ..
        } = running;
        let interrupts = &self.interrupts;
        let mut drive = || {
            context.runtime.block_on(async {
                tokio::select! {
                    biased;
                    result = publish.as_mut() => Some(result),
                    _ = interrupts.moved_from(seen) => None,
                }
            })
        };
        let done = if tokio::runtime::Handle::try_current().is_ok() {
            // Called from async code: one runtime cannot block inside
            // another, so a thread of its own drives this one.
            std::thread::scope(|scope| scope.spawn(drive).join())
                .unwrap_or_else(|_| Some(Err(PublishError::Lost)))
        } else {
            drive()
        };
        if done.is_some() {
            if let Some(running) = state.take() {
                running.give_back(false);
            }
        }
        done
    }

    /// Wakes the thread blocked in `wait`. Async-signal-safe.
    pub fn interrupt(&self) {
        self.interrupts.interrupt();
    }

    /// Gives the publish up (the caller was interrupted for good): its
    /// connection is dropped, and the next publish opens a new one. The
    /// event may have been published all the same, if Redis had it already.
    pub fn cancel(&self) {
        if let Some(running) = lock(&self.state).take() {
            running.give_back(true);
        }
    }
}

impl Running {
    /// Puts the context back among the idle ones; with its connection
    /// dropped when the publish was left half way (a late reply may come).
    fn give_back(self, abandoned: bool) {
        let Running {
            publish,
            context,
            idle,
        } = self;
        drop(publish);
        if abandoned {
            context.link.forget();
        }
        lock(&idle).push(context);
    }
}

impl Drop for PendingPublish {
    fn drop(&mut self) {
        self.cancel();
    }
}

fn is_read_only(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}

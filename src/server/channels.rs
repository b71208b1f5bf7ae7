//! Where a stream's channels come from.
//!
//! In redirect mode (behind nginx) the application put them in the query
//! string. In in-process mode the application's own code picks them from the
//! request: the server queues the request for the application's threads
//! (Ruby threads, for the gem) and waits for their answer without holding
//! anything up, so a slow answer delays only its own request. The wait is
//! bounded: by a deadline, by the queue's capacity, and by the server
//! stopping; each gets the request a 503.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::blocking::{BlockingQueue, Popped, Refused};
use crate::protocol::request::Channel;

pub enum ChannelSource {
    /// The query string's items (SPEC §2, redirect mode).
    Query,
    /// The application answers each request queued here.
    Application(Arc<ChannelRequests>),
}

/// The parts of a request the application sees (a Rack env, for the gem).
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub remote_addr: SocketAddr,
    pub local_addr: SocketAddr,
}

/// What the application answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Channels(Vec<Channel>),
    /// Its code failed: the request gets a 500.
    Failed(String),
    /// No answer could be had (deadline, full queue, stopping): a 503.
    Unavailable(String),
}

/// A request waiting for the application to name its channels.
pub struct ChannelRequest {
    pub info: RequestInfo,
    answer: oneshot::Sender<Answer>,
}

impl ChannelRequest {
    /// Gives the channels; a client that left meanwhile is simply gone.
    pub fn reply(self, channels: Vec<Channel>) {
        let _ = self.answer.send(Answer::Channels(channels));
    }

    /// The application failed: the request gets a 500.
    pub fn fail(self, message: String) {
        let _ = self.answer.send(Answer::Failed(message));
    }

    /// The application cannot answer now (it is stopping): a 503.
    pub fn refuse(self, reason: String) {
        let _ = self.answer.send(Answer::Unavailable(reason));
    }
}

/// The queue between the server and the application's threads.
pub struct ChannelRequests {
    queue: BlockingQueue<ChannelRequest>,
    /// How long the application may take to answer one request.
    timeout: Duration,
    stopping: watch::Sender<bool>,
}

impl ChannelRequests {
    /// Requests that may wait for an application thread at once.
    pub const CAPACITY: usize = 1024;

    pub fn new(timeout: Duration) -> Self {
        ChannelRequests {
            queue: BlockingQueue::bounded(Self::CAPACITY),
            timeout,
            stopping: watch::Sender::new(false),
        }
    }

    /// Queues a request and waits for the application's answer.
    pub async fn ask(&self, info: RequestInfo) -> Answer {
        let (answer, answered) = oneshot::channel();
        let mut stopping = self.stopping.subscribe();
        if let Err(refused) = self.queue.push(ChannelRequest { info, answer }) {
            let reason = match refused {
                Refused::Closed(_) => "the server is stopping".to_string(),
                Refused::Full(_) => format!(
                    "{} requests already wait for the application",
                    Self::CAPACITY
                ),
            };
            return Answer::Unavailable(reason);
        }
        tokio::select! {
            answered = tokio::time::timeout(self.timeout, answered) => match answered {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Answer::Failed("the application dropped the request".into()),
                Err(_) => Answer::Unavailable(format!(
                    "the application did not answer within {:?}",
                    self.timeout
                )),
            },
            _ = stopping.wait_for(|stopping| *stopping) => {
                Answer::Unavailable("the server is stopping".into())
            }
        }
    }

    /// The next request for an application thread (see [`BlockingQueue::pop`]).
    pub fn pop(&self) -> Popped<ChannelRequest> {
        self.queue.pop()
    }

    /// Wakes the application threads waiting in `pop`.
    pub fn interrupt(&self) {
        self.queue.interrupt();
    }

    /// Stops taking requests; those waiting, taken or not, get a 503.
    pub fn shut(&self) {
        self.queue.close();
        self.stopping.send_replace(true);
        for request in self.queue.drain() {
            request.refuse("the server is stopping".into());
        }
    }
}

impl Default for ChannelRequests {
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}

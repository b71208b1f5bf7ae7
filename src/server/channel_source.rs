//! Where a stream's channels come from.
//!
//! In redirect mode (behind nginx) the application put them in the query
//! string. In in-process mode the application's own code picks them from the
//! request: the server queues the request for the application's threads
//! (Ruby threads, for the gem) and waits for their answer without holding
//! anything up, so a slow answer delays only its own request. The wait is
//! bounded: by a deadline, by the queue's capacity, and by the server
//! stopping; each gets the request a 503.
//!
//! The deadline is set here, once, when a request is queued, and only
//! here is it enforced: the application is told how much of it is left
//! ([`ChannelRequest::time_left`]), to give up a call nobody waits for.
//! A request that nobody waits for any more (its client left, or its
//! deadline passed) is never handed to the application, and never keeps
//! a live one out of a full queue.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::blocking::{BlockingQueue, NotQueued, Popped};
use crate::channel::Channel;

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
    deadline: Instant,
}

impl ChannelRequest {
    /// How long the application has left to answer.
    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Nobody waits for the answer any more: the client left, or the
    /// deadline passed and the request got its 503.
    pub fn is_abandoned(&self) -> bool {
        self.answer.is_closed()
    }

    /// Gives the channels; a client that left meanwhile is simply gone.
    pub fn reply(self, channels: Vec<Channel>) {
        let _ = self.answer.send(Answer::Channels(channels));
    }

    /// The application failed: the request gets a 500.
    pub fn fail(self, message: String) {
        let _ = self.answer.send(Answer::Failed(message));
    }

    /// The application cannot answer now (it is stopping): a 503.
    pub fn decline(self, reason: String) {
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
        let deadline = Instant::now() + self.timeout;
        let request = ChannelRequest {
            info,
            answer,
            deadline,
        };
        if let Err(refused) = self
            .queue
            .push_making_room(request, ChannelRequest::is_abandoned)
        {
            let reason = match refused {
                NotQueued::Closed(_) => "the server is stopping".to_string(),
                NotQueued::Full(_) => format!(
                    "{} requests already wait for the application",
                    Self::CAPACITY
                ),
            };
            return Answer::Unavailable(reason);
        }
        tokio::select! {
            answered = tokio::time::timeout_at(deadline, answered) => match answered {
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

    /// The next request for an application thread (see
    /// [`BlockingQueue::pop`]), passing over those nobody waits for.
    pub fn pop(&self) -> Popped<ChannelRequest> {
        loop {
            match self.queue.pop() {
                Popped::Item(request) if request.is_abandoned() => continue,
                popped => return popped,
            }
        }
    }

    /// Whether the server stopped taking requests.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
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
            request.decline("the server is stopping".into());
        }
    }
}

impl Default for ChannelRequests {
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> RequestInfo {
        RequestInfo {
            method: "GET".into(),
            path: "/".into(),
            query: String::new(),
            headers: Vec::new(),
            remote_addr: ([127, 0, 0, 1], 1).into(),
            local_addr: ([127, 0, 0, 1], 2).into(),
        }
    }

    fn answer_next(requests: &ChannelRequests, channel: &'static str) {
        match requests.pop() {
            Popped::Item(request) => request.reply(vec![channel.into()]),
            other => panic!("no request: {:?}", matches!(other, Popped::Closed)),
        }
    }

    /// A request whose deadline passed got its 503: the application never
    /// sees it, and sees the next one.
    #[tokio::test]
    async fn a_request_past_its_deadline_is_passed_over() {
        let requests = Arc::new(ChannelRequests::new(Duration::from_millis(10)));
        let late = requests.ask(info()).await;
        assert!(matches!(late, Answer::Unavailable(_)), "{late:?}");
        let requests = Arc::new(ChannelRequests::new(Duration::from_secs(5)));
        let asked = tokio::spawn({
            let requests = requests.clone();
            async move { requests.ask(info()).await }
        });
        let app = std::thread::spawn({
            let requests = requests.clone();
            move || answer_next(&requests, "live")
        });
        assert_eq!(asked.await.unwrap(), Answer::Channels(vec!["live".into()]));
        app.join().unwrap();
    }

    /// A full queue of requests whose clients left takes a live one: they
    /// make room, and the application is handed the live one alone.
    #[tokio::test]
    async fn abandoned_requests_make_room_and_are_never_handed_out() {
        let requests = Arc::new(ChannelRequests::new(Duration::from_secs(5)));
        for _ in 0..ChannelRequests::CAPACITY + 10 {
            // Dropped after its first poll: queued, then left.
            let ask = requests.ask(info());
            tokio::pin!(ask);
            assert!(futures_util::FutureExt::now_or_never(ask.as_mut()).is_none());
        }
        let live = tokio::spawn({
            let requests = requests.clone();
            async move { requests.ask(info()).await }
        });
        let app = std::thread::spawn({
            let requests = requests.clone();
            move || answer_next(&requests, "live")
        });
        assert_eq!(live.await.unwrap(), Answer::Channels(vec!["live".into()]));
        app.join().unwrap();
        assert!(requests.queue.drain().is_empty());
    }
}

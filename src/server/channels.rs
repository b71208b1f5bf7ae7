//! Where a stream's channels come from.
//!
//! In redirect mode (behind nginx) the application put them in the query
//! string. In in-process mode the application's own code picks them from the
//! request: the server queues the request for the application's threads
//! (Ruby threads, for the gem) and waits for their answer without holding
//! anything up, so a slow answer delays only its own request.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::blocking::BlockingQueue;
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

pub type Answer = Result<Vec<Channel>, String>;

/// A request waiting for the application to name its channels.
pub struct ChannelRequest {
    pub info: RequestInfo,
    answer: oneshot::Sender<Answer>,
}

impl ChannelRequest {
    /// Gives the channels; a client that left meanwhile is simply gone.
    pub fn reply(self, channels: Vec<Channel>) {
        let _ = self.answer.send(Ok(channels));
    }

    /// The application failed: the request gets a 500.
    pub fn fail(self, message: String) {
        let _ = self.answer.send(Err(message));
    }
}

pub type ChannelRequests = BlockingQueue<ChannelRequest>;

impl ChannelRequests {
    /// Queues a request; the answer comes back on the receiver.
    pub fn submit(&self, info: RequestInfo) -> oneshot::Receiver<Answer> {
        let (answer, receiver) = oneshot::channel();
        if let Err(request) = self.push(ChannelRequest { info, answer }) {
            request.fail("the server is stopping".into());
        }
        receiver
    }

    /// Stops taking requests and fails those nobody took.
    pub fn shut(&self) {
        self.close();
        for request in self.drain() {
            request.fail("the server is stopping".into());
        }
    }
}

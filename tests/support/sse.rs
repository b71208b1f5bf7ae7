//! The tests' SSE reader over loopback: a stream of the sse-client crate,
//! read until what a test waits for came, each read bounded by DEADLINE.

use sse_client::{EventStream, Item, Read};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::DEADLINE;

/// A response head, then the events of the body as they come.
pub struct SseReader {
    stream: EventStream,
    pub status: u16,
    events: Vec<Event>,
    ended: bool,
}

impl SseReader {
    pub async fn open(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Self {
        let mut all = vec![("Host", "test")];
        all.extend_from_slice(headers);
        let stream = tokio::time::timeout(DEADLINE, EventStream::open(addr, None, path, &all))
            .await
            .expect("response head in time")
            .expect("response head");
        SseReader {
            status: stream.head.status,
            stream,
            events: Vec::new(),
            ended: false,
        }
    }

    /// Reads what the server sent next; false once it closed the connection
    /// or nothing more can come after the last chunk.
    pub async fn read_more(&mut self) -> bool {
        let events = &mut self.events;
        let read = self.stream.read(|item| {
            if let Item::Event(e) = item {
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                let event = Event {
                    id: e.id.map(|id| text(id).parse().unwrap()),
                    kind: e.event.map(text).unwrap_or_default(),
                    data: text(e.data),
                };
                if event != Event::default() {
                    events.push(event);
                }
            }
        });
        match tokio::time::timeout(DEADLINE, read)
            .await
            .expect("data in time")
            .unwrap()
        {
            Read::Data(_) => true,
            Read::End => !std::mem::replace(&mut self.ended, true),
            Read::Closed => false,
        }
    }

    /// False once the last chunk came (events are decoded as they are read).
    pub fn decode(&mut self) -> bool {
        !self.ended
    }

    /// The events so far, comments left out.
    pub fn events(&self) -> Vec<Event> {
        self.events.clone()
    }

    /// The ids of the events so far (the `lastEventId` event included).
    pub fn ids(&self) -> Vec<u64> {
        self.events.iter().filter_map(|e| e.id).collect()
    }

    /// The ids of published events: neither `lastEventId` nor `missedevents`.
    pub fn published_ids(&self) -> Vec<u64> {
        self.events
            .iter()
            .filter(|e| e.kind != "lastEventId")
            .filter_map(|e| e.id)
            .collect()
    }

    /// Reads until `done` holds, failing if the stream ends first.
    pub async fn wait_for(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        while !done(self) {
            assert!(
                self.read_more().await,
                "stream ended before {what}: {:?}",
                self.events
            );
        }
    }

    pub async fn wait_for_ids(&mut self, count: usize) -> Vec<u64> {
        self.wait_for(&format!("{count} ids"), |s| s.ids().len() >= count)
            .await;
        self.ids()
    }
}

/// One event as read from a stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: Option<u64>,
    /// The `event:` field, empty when there is none.
    pub kind: String,
    pub data: String,
}

/// Sends raw bytes, returns everything the server answers until it closes.
pub async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(DEADLINE, socket.read_to_end(&mut response))
        .await
        .expect("closed in time")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

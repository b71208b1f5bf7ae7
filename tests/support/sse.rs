//! A small SSE reader over loopback: a response head, then the chunked
//! body as it comes, and the ids of the events in it.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::DEADLINE;

/// Reads a response head, then the (chunked) body as it comes.
pub struct SseReader {
    socket: TcpStream,
    pub status: u16,
    pub body: Vec<u8>,
    raw: Vec<u8>,
}

impl SseReader {
    pub async fn open(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Self {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let mut request =
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut reader = SseReader {
            socket,
            status: 0,
            body: Vec::new(),
            raw: Vec::new(),
        };
        while !reader.raw.windows(4).any(|w| w == b"\r\n\r\n") {
            assert!(
                reader.read_more().await,
                "connection closed before the response head"
            );
        }
        let head_end = reader
            .raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap()
            + 4;
        let head = String::from_utf8_lossy(&reader.raw[..head_end]).into_owned();
        reader.status = head[9..12].parse().unwrap();
        reader.raw.drain(..head_end);
        reader
    }

    pub async fn read_more(&mut self) -> bool {
        let mut buf = [0u8; 16384];
        let n = tokio::time::timeout(DEADLINE, self.socket.read(&mut buf))
            .await
            .expect("data in time")
            .unwrap();
        self.raw.extend_from_slice(&buf[..n]);
        n > 0
    }

    /// Moves complete chunks from `raw` to `body`; false once the last chunk came.
    pub fn decode(&mut self) -> bool {
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return true;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&self.raw[..line_end]).unwrap(), 16)
                    .unwrap();
            if size == 0 {
                return false;
            }
            if self.raw.len() < line_end + 2 + size + 2 {
                return true;
            }
            self.body
                .extend_from_slice(&self.raw[line_end + 2..line_end + 2 + size]);
            self.raw.drain(..line_end + 2 + size + 2);
        }
    }

    /// The complete events in the body so far, comments left out.
    pub fn events(&self) -> Vec<Event> {
        let body = String::from_utf8_lossy(&self.body);
        let mut events = Vec::new();
        let complete = body.rfind("\n\n").map_or("", |end| &body[..end + 2]);
        for block in complete.split("\n\n").filter(|b| !b.is_empty()) {
            let mut event = Event::default();
            for line in block.lines().filter(|l| !l.starts_with(':')) {
                if let Some(id) = line.strip_prefix("id: ") {
                    event.id = Some(id.parse().unwrap());
                } else if let Some(kind) = line.strip_prefix("event: ") {
                    event.kind = kind.to_string();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    event.data.push_str(data);
                }
            }
            if event != Event::default() {
                events.push(event);
            }
        }
        events
    }

    /// The ids of the events in the body so far (the `lastEventId` event included).
    pub fn ids(&self) -> Vec<u64> {
        self.events().iter().filter_map(|e| e.id).collect()
    }

    /// The ids of published events: neither `lastEventId` nor `missedevents`.
    pub fn published_ids(&self) -> Vec<u64> {
        self.events()
            .iter()
            .filter(|e| e.kind != "lastEventId")
            .filter_map(|e| e.id)
            .collect()
    }

    /// Reads until `done` holds, failing if the stream ends first.
    pub async fn wait_for(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        loop {
            self.decode();
            if done(self) {
                return;
            }
            assert!(
                self.read_more().await,
                "stream ended before {what}: {:?}",
                self.events()
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

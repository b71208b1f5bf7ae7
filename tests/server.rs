//! The server as a library: `server::run` in this process, against a real
//! Redis, read over loopback by a small SSE reader.

mod support;

use std::sync::Arc;
use std::time::Duration;

use redisse::blocking::Popped;
use redisse::publisher::Publisher;
use redisse::redis_url::RedisUrl;
use redisse::server::channels::{ChannelRequests, ChannelSource};
use redisse::server::{self, Config};
use support::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const DEADLINE: Duration = Duration::from_secs(10);

struct TestServer {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    async fn start(redis: &RedisServer, channels: ChannelSource) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config {
            redis: RedisUrl::parse(&redis.url()).unwrap(),
            heartbeat: Duration::from_secs(15),
            channels,
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            server::run(listener, config, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let server = TestServer {
            addr,
            stop: Some(stop),
            task,
        };
        // Up once a stream request no longer gets a 503.
        tokio::time::timeout(DEADLINE, async {
            loop {
                let reader = server.open("/?probe", &[]).await;
                if reader.status != 503 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("server connected to Redis");
        server
    }

    async fn open(&self, path: &str, headers: &[(&str, &str)]) -> SseReader {
        SseReader::open(self.addr, path, headers).await
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("stops in time")
            .unwrap();
    }
}

/// Reads a response head, then the (chunked) body as it comes.
struct SseReader {
    socket: TcpStream,
    status: u16,
    body: Vec<u8>,
    raw: Vec<u8>,
}

impl SseReader {
    async fn open(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Self {
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

    async fn read_more(&mut self) -> bool {
        let mut buf = [0u8; 16384];
        let n = tokio::time::timeout(DEADLINE, self.socket.read(&mut buf))
            .await
            .expect("data in time")
            .unwrap();
        self.raw.extend_from_slice(&buf[..n]);
        n > 0
    }

    /// Moves complete chunks from `raw` to `body`; false once the last chunk came.
    fn decode(&mut self) -> bool {
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

    /// The ids of the events in the body so far (the `lastEventId` event included).
    fn ids(&self) -> Vec<u64> {
        String::from_utf8_lossy(&self.body)
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .map(|id| id.parse().unwrap())
            .collect()
    }

    async fn wait_for_ids(&mut self, count: usize) -> Vec<u64> {
        while self.ids().len() < count {
            self.decode();
            if self.ids().len() >= count {
                break;
            }
            assert!(self.read_more().await, "stream ended with {:?}", self.ids());
        }
        self.ids()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_sends_an_id_twice_while_events_race_the_opening() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, ChannelSource::Query).await;
    let publisher = Arc::new(
        Publisher::new(&redis.url(), Duration::from_secs(1), Duration::from_secs(2)).unwrap(),
    );
    publisher.publish(b"a", b"message", b"first").unwrap();
    let racing = {
        let publisher = publisher.clone();
        tokio::task::spawn_blocking(move || {
            for i in 0..200 {
                publisher
                    .publish(if i % 2 == 0 { b"a" } else { b"b" }, b"message", b"x")
                    .unwrap();
            }
        })
    };
    let mut streams = Vec::new();
    for _ in 0..20 {
        streams.push(server.open("/?a&b", &[("Last-Event-Id", "1")]).await);
    }
    racing.await.unwrap();
    for stream in &mut streams {
        let ids = stream.wait_for_ids(1).await;
        let last = *ids.last().unwrap();
        let ids = stream.wait_for_ids(ids.len() + (201 - last) as usize).await;
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids strictly increase: {ids:?}"
        );
        assert_eq!(*ids.last().unwrap(), 201);
        assert_eq!(ids.len(), 200, "every event after 1, once");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_channels_answer_delays_only_its_own_request() {
    let redis = RedisServer::start();
    let requests = Arc::new(ChannelRequests::default());
    // The application: answers from the path, except `/slow`, which it
    // keeps until told to answer.
    let (release_slow, slow_released) = std::sync::mpsc::channel::<()>();
    let application = std::thread::spawn({
        let requests = requests.clone();
        move || {
            let mut held = Vec::new();
            loop {
                match requests.pop() {
                    Popped::Item(request) if request.info.path == "/slow" => held.push(request),
                    Popped::Item(request) => {
                        let channel = request.info.path.trim_start_matches('/').to_string();
                        request.reply(vec![channel.into()]);
                    }
                    Popped::Interrupted => {}
                    Popped::Closed => break,
                }
                if slow_released.try_recv().is_ok() {
                    for request in held.drain(..) {
                        request.reply(vec!["fast".into()]);
                    }
                }
            }
        }
    });
    let server = TestServer::start(&redis, ChannelSource::Application(requests)).await;
    let slow = tokio::spawn({
        let addr = server.addr;
        async move { SseReader::open(addr, "/slow", &[]).await }
    });
    let mut fast = server.open("/fast", &[]).await;
    assert_eq!(fast.status, 200);
    let publisher =
        Publisher::new(&redis.url(), Duration::from_secs(1), Duration::from_secs(2)).unwrap();
    let id = publisher
        .publish(b"fast", b"message", b"while the slow one waits")
        .unwrap();
    assert_eq!(fast.wait_for_ids(1).await, vec![id]);
    assert!(
        !slow.is_finished(),
        "the slow request is still waiting for its channels"
    );
    release_slow.send(()).unwrap();
    server.stop().await;
    application.join().unwrap();
    let _ = slow.await;
}

/// Sends raw bytes, returns everything the server answers until it closes.
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(DEADLINE, socket.read_to_end(&mut response))
        .await
        .expect("closed in time")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_clear_answer_and_the_server_goes_on() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, ChannelSource::Query).await;

    let garbage = exchange(server.addr, b"\x00\x01 nonsense\r\n\r\n").await;
    assert!(
        garbage.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{garbage}"
    );
    assert!(garbage.contains("malformed request"), "{garbage}");

    let mut huge = b"GET /?".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 70 * 1024));
    huge.extend_from_slice(b" HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n");
    let too_large = exchange(server.addr, &huge).await;
    assert!(
        too_large.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{too_large}"
    );

    let mut stream = server.open("/?still_serving", &[]).await;
    assert_eq!(stream.status, 200);
    let publisher =
        Publisher::new(&redis.url(), Duration::from_secs(1), Duration::from_secs(2)).unwrap();
    let id = publisher
        .publish(b"still_serving", b"message", b"x")
        .unwrap();
    assert_eq!(stream.wait_for_ids(1).await, vec![id]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_streams_are_not_chunked_and_end_with_the_connection() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, ChannelSource::Query).await;
    let publisher =
        Publisher::new(&redis.url(), Duration::from_secs(1), Duration::from_secs(2)).unwrap();
    publisher.publish(b"old", b"message", b"one").unwrap();
    publisher.publish(b"old", b"message", b"two").unwrap();
    let request =
        b"GET /?old&polling HTTP/1.0\r\nAccept: text/event-stream\r\nLast-Event-ID: 1\r\n\r\n";
    let response = exchange(server.addr, request).await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.contains("Connection: close"),
        "{head}"
    );
    assert!(!head.contains("Transfer-Encoding"), "{head}");
    assert_eq!(body, "id: 2\nevent: message\ndata: two\n\n");
    server.stop().await;
}

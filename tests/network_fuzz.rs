//! A seeded, bounded fuzz of the live server over loopback: thousands of
//! requests, valid ones bent out of shape and plain garbage, to a server
//! whose Redis user may only have the `news:*` channels. Every one gets an
//! answer or a close in time; afterwards the server answers stats with no
//! panic in its log, and a stream opened before it all still gets its
//! events. `FUZZ_SEED=n` replays a run.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use redisse::publisher::Publisher;
use support::{wait_until, RedisServer, ServerProcess, DEADLINE, SERVER_ACL_RULES};

const REQUESTS_PER_CLIENT: usize = 750;
const CLIENTS: u64 = 4;
/// How long one request may go unanswered (streams answer at once).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// xorshift64*: small, seeded, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "DELETE", "OPTIONS", "G\x00T", "get", "",
];
const TARGETS: &[&str] = &[
    "/?news:a",
    "/?news:a&forbidden",
    "/?user:42:logins",
    "/?%+0A&news:b",
    "/?%+A",
    "/?lastEventIds&lastEventIdx=1&lastEventId",
    "/?a",
    "/?a&b&polling",
    "/?lastEventId=3&c",
    "/?%zz",
    "/?%FF%00",
    "/",
    "*",
    "/?a&lastEventId=99999999999999999999999",
    "/\u{e9}?\u{e9}",
];
const HEADERS: &[&str] = &[
    "Accept: text/event-stream",
    "Accept: application/json",
    "Accept: text/event-stream;q=0",
    "Accept: text/html, text/event-stream;q=0.5",
    "Last-Event-Id: 2",
    "Last-Event-Id: -1",
    "Content-Length: 0",
    "Content-Length: 5",
    "Content-Length: x",
    "Transfer-Encoding: chunked",
    "Connection: close",
    "Connection: keep-alive",
    "Host: 127.0.0.1",
    "X_Forwarded_User: admin",
    "Cookie: _session=0123456789abcdef",
    ": no name",
    "No-Colon",
];

/// A request: a request line, some headers, maybe a body, then mutated.
fn request(rng: &mut Rng) -> Vec<u8> {
    let mut text = format!(
        "{} {} HTTP/1.{}\r\n",
        rng.pick(METHODS),
        rng.pick(TARGETS),
        rng.below(3)
    );
    for _ in 0..rng.below(6) {
        text.push_str(rng.pick(HEADERS));
        text.push_str("\r\n");
    }
    if rng.below(10) == 0 {
        // A long header value, up to past the head limit.
        let length = rng.below(80_000);
        text.push_str(&format!("X-Long: {}\r\n", "v".repeat(length)));
    }
    text.push_str("\r\n");
    if rng.below(20) == 0 {
        // A big head of many channels, then a stray byte after it.
        let channels: Vec<String> = (0..rng.below(1200))
            .map(|c| format!("news:{c:0>43}"))
            .collect();
        text = format!(
            "GET /?{} HTTP/1.1\r\nAccept: text/event-stream\r\nX-Padding: {}\r\n\r\nx",
            channels.join("&"),
            "p".repeat(8192)
        );
    }
    let mut bytes = text.into_bytes();
    if rng.below(4) == 0 {
        bytes.extend_from_slice(b"hello");
    }
    for _ in 0..rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(3) {
            0 => bytes.insert(at, rng.next() as u8),
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// Sends one request and reads until the first answer line, the close, or
/// the timeout: `true` if the server answered or closed in time.
fn exchange(port: u16, request: &[u8]) -> bool {
    let Ok(mut socket) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    socket.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    // The server may answer and close before it read everything.
    let _ = socket.write_all(request);
    let _ = socket.shutdown(std::net::Shutdown::Write);
    let mut buffer = [0u8; 4096];
    // Some bytes or the close (0), either way an answer.
    match socket.read(&mut buffer) {
        Ok(_answered_or_closed) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn thousands_of_bent_requests_leave_the_server_answering() {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_2026_u64);
    println!("FUZZ_SEED={seed}");
    let redis = RedisServer::start();
    redis.add_user("streamer", "fuzz-secret", SERVER_ACL_RULES);
    let url = redis.user_url("streamer", "fuzz-secret");
    let mut server = ServerProcess::spawn(&["--redis", &url, "--verbose"], None);
    server.wait_for_log("connected to Redis");
    let port = server.port;
    let mut bystander = server.connect();
    bystander
        .write_all(b"GET /?news:bystander HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    bystander.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut received = Vec::new();
    let mut read_until = |text: &str| {
        wait_until(&format!("the bystander gets {text:?}"), DEADLINE, || {
            let mut buffer = [0u8; 4096];
            let n = bystander.read(&mut buffer).unwrap();
            received.extend_from_slice(&buffer[..n]);
            String::from_utf8_lossy(&received).contains(text)
        })
    };
    read_until("HTTP/1.1 200 OK\r\n");
    let started = Instant::now();
    let unanswered: usize = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                scope.spawn(move || {
                    let mut rng = Rng(seed ^ (client + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    (0..REQUESTS_PER_CLIENT)
                        .filter(|_| !exchange(port, &request(&mut rng)))
                        .count()
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).sum()
    });
    println!(
        "{} requests in {:?}",
        REQUESTS_PER_CLIENT as u64 * CLIENTS,
        started.elapsed()
    );
    assert_eq!(
        unanswered, 0,
        "requests without an answer in {ANSWER_TIMEOUT:?} (seed {seed})"
    );
    let stats =
        server.get(b"GET / HTTP/1.1\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
    assert!(stats.starts_with("HTTP/1.1 200 OK\r\n"), "{stats}");
    // Refused channels failed their own requests: the hub stayed up.
    let publisher = Publisher::new(&redis.url(), DEADLINE, DEADLINE).unwrap();
    let id = publisher
        .publish(b"news:bystander", b"message", b"still here")
        .unwrap();
    read_until(&format!("id: {id}\n"));
    let panics: Vec<&String> = server
        .log()
        .iter()
        .filter(|l| l.contains("panicked"))
        .collect();
    assert!(panics.is_empty(), "seed {seed}: {panics:#?}");
}

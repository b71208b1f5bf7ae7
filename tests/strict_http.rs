//! What a client that does not play by the rules gets: strict HTTP/1.1
//! (RFC 9112), and limits that answer instead of stalling the server.

mod support;

use std::time::Duration;

use redisse::publisher::Publisher;
use redisse::server::channel_source::ChannelSource;
use redisse::server::Limits;
use std::io::Write;

use support::{exchange, wait_until, RedisServer, ServerProcess, Setup, TestServer, DEADLINE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn limited_server(redis: &RedisServer, limits: Limits) -> TestServer {
    let setup = Setup {
        limits,
        ..Setup::default()
    };
    TestServer::start_with(redis, ChannelSource::Query, setup).await
}

/// Every response head in what the server sent back.
fn statuses(response: &str) -> Vec<&str> {
    response
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| &response[at + 9..at + 12])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_framed_two_ways_is_refused_and_the_connection_closed() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, ChannelSource::Query).await;
    // A proxy that believes the second Content-Length sends the "body" as
    // part of this request; a server believing the first would serve it as
    // a second request: the two are desynchronized.
    let smuggled = "GET /?x HTTP/1.1\r\nAccept: application/json\r\n\r\n";
    for framing in [
        format!("Content-Length: 0\r\nContent-Length: {}", smuggled.len()),
        format!(
            "Content-Length: {}\r\nTransfer-Encoding: chunked",
            smuggled.len()
        ),
        "Transfer-Encoding: chunked\r\nContent-Length: 0".to_string(),
    ] {
        let request =
            format!("GET /?x HTTP/1.1\r\nAccept: text/event-stream\r\n{framing}\r\n\r\n{smuggled}");
        let response = exchange(server.addr, request.as_bytes()).await;
        assert_eq!(statuses(&response), vec!["400"], "{framing}:\n{response}");
        assert!(response.contains("ambiguous body framing"), "{response}");
        assert!(response.contains("Connection: close"), "{response}");
    }
    server.wait_for_streams(0).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_headers_get_a_431() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, ChannelSource::Query).await;
    let mut request = "GET /?x HTTP/1.1\r\nAccept: text/event-stream\r\n".to_string();
    for i in 0..200 {
        request.push_str(&format!("X-Filler-{i}: y\r\n"));
    }
    request.push_str("\r\n");
    let response = exchange(server.addr, request.as_bytes()).await;
    assert_eq!(statuses(&response), vec!["431"], "{response}");
    assert!(
        response.contains("more than 100 header fields"),
        "{response}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_get_and_head_are_served() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, ChannelSource::Query).await;
    let before = server.stats().await;
    for method in ["POST", "DELETE", "PUT", "PATCH"] {
        let request = format!(
            "{method} /?x HTTP/1.1\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
        );
        let response = exchange(server.addr, request.as_bytes()).await;
        assert_eq!(statuses(&response), vec!["405"], "{method}:\n{response}");
        assert!(response.contains("\r\nAllow: GET, HEAD\r\n"), "{response}");
    }
    // HEAD: the stream's head, and no stream opened.
    let response = exchange(
        server.addr,
        b"HEAD /?x HTTP/1.1\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.contains("text/event-stream"),
        "{head}"
    );
    assert_eq!(body, "");
    let stats = exchange(
        server.addr,
        b"HEAD / HTTP/1.1\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(stats.contains("Content-Length: "), "{stats}");
    assert!(stats.ends_with("\r\n\r\n"), "no body: {stats}");
    assert_eq!(server.stats().await, before, "no stream was ever opened");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_client_sends_during_its_stream_is_never_read_as_a_request() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, ChannelSource::Query).await;
    let publisher =
        Publisher::new(&redis.url(), Duration::from_secs(1), Duration::from_secs(2)).unwrap();
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    socket
        .write_all(b"GET /?poll&polling HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    server.wait_for_streams(1).await;
    // Sent while the stream is open: a request that must not be served.
    socket
        .write_all(b"GET / HTTP/1.1\r\nAccept: application/json\r\n\r\n")
        .await
        .unwrap();
    publisher
        .publish(b"poll", b"message", b"ends the poll")
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(DEADLINE, socket.read_to_end(&mut response))
        .await
        .expect("the connection is closed after the poll")
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert_eq!(statuses(&response), vec!["200"], "{response}");
    assert!(
        response.ends_with("0\r\n\r\n"),
        "the stream ended cleanly: {response}"
    );
    assert!(!response.contains("\"connected\""), "{response}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_over_the_channel_limit_gets_a_400_that_says_it() {
    let redis = RedisServer::start();
    let server = limited_server(
        &redis,
        Limits {
            max_channels: 5,
            ..Limits::default()
        },
    )
    .await;
    let reader = server.open("/?a&b&c&d&e&f", &[]).await;
    assert_eq!(reader.status, 400);
    let response = exchange(
        server.addr,
        b"GET /?a&b&c&d&e&f HTTP/1.1\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        response.contains("6 channels asked for; a stream may have 5 at most (--max-channels)"),
        "{response}"
    );
    // Repeated names count once.
    assert_eq!(server.open("/?a&a&b&c&d&e", &[]).await.status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_channel_limit_is_a_thousand() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, ChannelSource::Query).await;
    let channels = |n: usize| {
        (0..n)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    assert_eq!(
        server
            .open(&format!("/?{}", channels(1000)), &[])
            .await
            .status,
        200
    );
    assert_eq!(
        server
            .open(&format!("/?{}", channels(1001)), &[])
            .await
            .status,
        400
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_house_answers_503_with_retry_after_and_still_gives_stats() {
    let redis = RedisServer::start();
    let server = limited_server(
        &redis,
        Limits {
            max_streams: 2,
            ..Limits::default()
        },
    )
    .await;
    let first = server.open("/?a", &[]).await;
    let second = server.open("/?b", &[]).await;
    assert_eq!((first.status, second.status), (200, 200));
    let response = exchange(
        server.addr,
        b"GET /?c HTTP/1.1\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&response), vec!["503"], "{response}");
    assert!(response.contains("\r\nRetry-After: 5\r\n"), "{response}");
    assert!(response.contains("--max-streams"), "{response}");
    assert!(server.stats().await.contains("\"connected\": 2,"));
    // A place freed is a place taken.
    drop(first);
    server.wait_for_streams(1).await;
    assert_eq!(server.open("/?c", &[]).await.status, 200);
    server.stop().await;
}

/// A socket to the server that takes almost nothing: a receive window of
/// a few KiB, and nobody reading it.
fn slow_reader(port: u16) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

/// A client that never reads its stream's opening (a long history) is
/// dropped like one that stops reading later, and counted as such.
#[test]
fn a_client_that_never_reads_its_opening_is_dropped_after_the_send_timeout() {
    let redis = RedisServer::start();
    let mut con = redis.client();
    let data = "x".repeat(40 * 1024);
    for id in 1..=100 {
        let _: () = redis::cmd("ZADD")
            .arg("long")
            .arg(id)
            .arg(format!("id: {id}\nevent: m\ndata: {data}\n\n"))
            .query(&mut con)
            .unwrap();
    }
    let mut server = ServerProcess::spawn(
        &[
            "--redis",
            &redis.url(),
            "--heartbeat",
            "0.2",
            "--send-timeout",
            "1",
        ],
        None,
    );
    server.wait_for_log("connected to Redis");
    let mut socket = slow_reader(server.port);
    socket
        .write_all(b"GET /?long HTTP/1.1\r\nAccept: text/event-stream\r\nLast-Event-Id: 1\r\n\r\n")
        .unwrap();
    // Counted as dropped, then no longer connected: two moments.
    wait_until("the stream is dropped and gone", DEADLINE, || {
        server.metric("redisse_streams_dropped_slow_total") == 1
            && server.metric("redisse_streams_connected") == 0
    });
}

/// Plain answers too: a client that pipelines requests and never reads
/// their answers is closed after the send timeout.
#[test]
fn a_client_that_never_reads_its_answers_is_closed_after_the_send_timeout() {
    let redis = RedisServer::start();
    let mut server = ServerProcess::spawn(
        &["--redis", &redis.url(), "--send-timeout", "1", "--verbose"],
        None,
    );
    server.wait_for_log("connected to Redis");
    let mut socket = slow_reader(server.port);
    socket.set_write_timeout(Some(DEADLINE)).unwrap();
    // Far more answers than the socket buffers hold; the requests
    // themselves fit in the server's (it reads them one at a time).
    let requests = b"GET /metrics HTTP/1.1\r\n\r\n".repeat(20_000);
    let _ = socket.write_all(&requests);
    server.wait_for_log("took nothing of its answer");
}

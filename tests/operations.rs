//! Beyond 0.4: signed channel lists, CORS, Prometheus metrics and health
//! checks, against the server in this process and a real Redis.

mod support;

use std::time::Duration;

use bytes::Bytes;
use redisse::protocol::cors::Origins;
use redisse::publisher::Publisher;
use redisse::server::channel_source::ChannelSource;
use redisse::server::Access;
use redisse::token::{self, Grant};
use redisse::unix_time;
use support::{exchange, metric, RedisServer, Setup, TestServer, DEADLINE};

const SECRET: &[u8] = b"the current secret";
const PREVIOUS: &[u8] = b"the previous secret";

fn token_for(channels: &[&str], expires_in: u64, secret: &[u8]) -> String {
    let grant = Grant {
        channels: channels
            .iter()
            .map(|c| Bytes::from(c.to_string()))
            .collect(),
        expires_at: unix_time::now() + expires_in,
        key_id: None,
    };
    token::sign(&grant, secret)
}

async fn signed_server(redis: &RedisServer) -> TestServer {
    let access = Access {
        secrets: vec![SECRET.to_vec(), PREVIOUS.to_vec()],
        ..Access::default()
    };
    TestServer::start_with(
        redis,
        ChannelSource::Query,
        Setup {
            access,
            ..Setup::default()
        },
    )
    .await
}

/// The token with one character in its middle changed.
fn tampered(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let middle = chars.len() / 2;
    chars[middle] = if chars[middle] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

fn publisher(redis: &RedisServer) -> Publisher {
    Publisher::new(&redis.url(), Duration::from_secs(1), Duration::from_secs(2)).unwrap()
}

/// The whole answer to a GET with these headers, the connection closed.
async fn get(server: &TestServer, target: &str, headers: &[&str]) -> String {
    let mut request = format!("GET {target} HTTP/1.1\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    exchange(server.addr, request.as_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_token_opens_its_channels_and_nothing_else_does() {
    let redis = RedisServer::start();
    let server = signed_server(&redis).await;
    let token = token_for(&["granted"], 3600, SECRET);
    // Channels in the query are not the token's: they are ignored.
    let mut stream = server.open(&format!("/?other&token={token}"), &[]).await;
    assert_eq!(stream.status, 200);
    server.wait_for_streams(1).await;
    let publisher = publisher(&redis);
    publisher
        .publish(b"other", b"message", b"not for you")
        .unwrap();
    let id = publisher
        .publish(b"granted", b"message", b"for you")
        .unwrap();
    stream
        .wait_for("the granted event", |s| s.published_ids() == vec![id])
        .await;

    let refusals = [
        ("/?granted".to_string(), "missing token"),
        (format!("/?token={}", tampered(&token)), "bad signature"),
        (
            format!(
                "/?token={}",
                token_for(&["granted"], 3600, b"another secret")
            ),
            "bad signature",
        ),
        (
            format!("/?token={}", token_for(&["granted"], 0, SECRET)),
            "expired token",
        ),
        ("/?token=not-a-token".to_string(), "malformed token"),
    ];
    for (target, reason) in refusals {
        let response = get(&server, &target, &["Accept: text/event-stream"]).await;
        assert!(
            response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{target}: {response}"
        );
        assert!(
            response.ends_with(&format!("\r\n\r\n403 Forbidden\n{reason}\n")),
            "{target}: {response}"
        );
    }
    // A HEAD request needs its token too.
    let head = exchange(
        server.addr,
        b"HEAD /?granted HTTP/1.1\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{head}");
    // During a rotation, the previous secret still opens streams.
    let rotated = server
        .open(
            &format!("/?token={}", token_for(&["granted"], 3600, PREVIOUS)),
            &[],
        )
        .await;
    assert_eq!(rotated.status, 200);
    let metrics = get(&server, "/metrics", &[]).await;
    assert!(
        metrics.contains("\nredisse_tokens_refused_total 6\n"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_cleanly_when_its_token_expires() {
    let redis = RedisServer::start();
    let server = signed_server(&redis).await;
    // Whole seconds: the stream ends at the next one, or the one after.
    let mut stream = server
        .open(
            &format!("/?token={}", token_for(&["short"], 2, SECRET)),
            &[],
        )
        .await;
    assert_eq!(stream.status, 200);
    let ended = tokio::time::timeout(DEADLINE, async {
        while stream.decode() {
            assert!(stream.read_more().await, "closed without the last chunk");
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its token");
    let events = stream.events();
    assert_eq!(events.last().unwrap().kind, "tokenExpired", "{events:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_the_listed_origins_and_their_preflights() {
    let redis = RedisServer::start();
    let access = Access {
        cors: Origins::from_options(&["http://app.test".into()]),
        ..Access::default()
    };
    let server = TestServer::start_with(
        &redis,
        ChannelSource::Query,
        Setup {
            access,
            ..Setup::default()
        },
    )
    .await;
    let stream = get(
        &server,
        "/?polling&cors",
        &["Accept: text/event-stream", "Origin: http://app.test"],
    );
    let publisher = publisher(&redis);
    let (response, _) = tokio::join!(stream, async {
        server.wait_for_streams(1).await;
        publisher.publish(b"cors", b"message", b"x").unwrap()
    });
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains("\r\nAccess-Control-Allow-Origin: http://app.test\r\n"),
        "{response}"
    );
    assert!(
        response.contains("\r\nAccess-Control-Allow-Credentials: true\r\n"),
        "{response}"
    );
    // The browser client reads Retry-After after a 503: a page of another
    // origin may only if the answer exposes it.
    assert!(
        response.contains("\r\nAccess-Control-Expose-Headers: Retry-After\r\n"),
        "{response}"
    );

    let other = get(
        &server,
        "/",
        &["Accept: application/json", "Origin: http://evil.test"],
    )
    .await;
    assert!(!other.contains("Access-Control-Allow-Origin"), "{other}");
    assert!(other.contains("\r\nVary: Origin\r\n"), "{other}");

    let preflight = exchange(
        server.addr,
        b"OPTIONS /?cors HTTP/1.1\r\nOrigin: http://app.test\r\nAccess-Control-Request-Method: GET\r\n\
          Access-Control-Request-Headers: last-event-id\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        preflight.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{preflight}"
    );
    assert!(
        preflight
            .contains("\r\nAccess-Control-Allow-Headers: Last-Event-Id, Accept, Cache-Control\r\n"),
        "{preflight}"
    );
    assert!(
        preflight.contains("\r\nAccess-Control-Allow-Methods: GET, HEAD\r\n"),
        "{preflight}"
    );
    server.stop().await;

    // Without --cors-origin, nothing of it.
    let plain = TestServer::start(&redis, ChannelSource::Query).await;
    let options = exchange(
        plain.addr,
        b"OPTIONS / HTTP/1.1\r\nOrigin: http://app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        options.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{options}"
    );
    assert!(!options.contains("Access-Control"), "{options}");
    plain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_follow_the_streams_and_redis() {
    let mut redis = RedisServer::start();
    let server = TestServer::start(&redis, ChannelSource::Query).await;
    let scrape = || async { get(&server, "/metrics", &[]).await };
    let before = scrape().await;
    assert!(before.starts_with("HTTP/1.1 200 OK\r\n"), "{before}");
    assert!(
        before.contains("Content-Type: application/openmetrics-text"),
        "{before}"
    );
    assert_eq!(metric(&before, "redisse_redis_pubsub_up"), 1);
    assert_eq!(metric(&before, "redisse_streams_connected"), 0);

    let mut streams = Vec::new();
    for channel in ["m1", "m2", "m3"] {
        streams.push(server.open(&format!("/?{channel}&shared"), &[]).await);
    }
    server.wait_for_streams(3).await;
    let open = scrape().await;
    assert_eq!(metric(&open, "redisse_streams_connected"), 3);
    assert_eq!(metric(&open, "redisse_channels_subscribed"), 4);
    assert!(metric(&open, "redisse_history_read_seconds_count") >= 3);
    let served = metric(&open, "redisse_streams_served_total");
    drop(streams.pop());
    server.wait_for_streams(2).await;
    let closed = scrape().await;
    assert_eq!(metric(&closed, "redisse_streams_served_total"), served + 1);
    // The hub unsubscribes after the stream is gone.
    tokio::time::timeout(DEADLINE, async {
        while metric(&scrape().await, "redisse_channels_subscribed") != 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the closed stream's channel is unsubscribed");

    let health = get(&server, "/health", &[]).await;
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(
        health.ends_with("{\"status\":\"ok\",\"pubsub\":\"up\",\"commands\":\"up\"}\n"),
        "{health}"
    );
    // The 0.4 stats, unchanged, on any other path.
    let stats = get(&server, "/", &["Accept: application/json"]).await;
    assert!(stats.ends_with("{\n  \"connected\": 2,\n  \"events\":    0,\n  \"served\":    1,\n  \"missing\":   0\n}"), "{stats}");

    redis.stop();
    let down = tokio::time::timeout(DEADLINE, async {
        loop {
            let health = get(&server, "/health", &[]).await;
            if health.starts_with("HTTP/1.1 503 ") {
                return health;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("health says Redis is gone");
    assert!(
        down.contains("\"status\":\"unavailable\",\"reason\":\"the Redis "),
        "{down}"
    );
    let gone = scrape().await;
    assert_eq!(metric(&gone, "redisse_redis_pubsub_up"), 0);
    assert_eq!(
        metric(&gone, "redisse_streams_connected"),
        0,
        "every stream was closed"
    );
    assert!(
        metric(&gone, "redisse_responses_unavailable_total") >= 1,
        "health's 503s count"
    );

    redis.restart();
    tokio::time::timeout(DEADLINE, async {
        while !get(&server, "/health", &[])
            .await
            .starts_with("HTTP/1.1 200 OK\r\n")
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("health says Redis is back");
    let back = scrape().await;
    assert_eq!(metric(&back, "redisse_redis_pubsub_up"), 1);
    assert_eq!(metric(&back, "redisse_redis_commands_up"), 1);
    assert_eq!(metric(&back, "redisse_redis_pubsub_reconnects_total"), 1);
    assert_eq!(metric(&back, "redisse_redis_commands_reconnects_total"), 1);
    server.stop().await;
}

//! Three redisse servers on one Redis, behind one nginx
//! (`example/nginx-fleet.conf`): an event published once reaches every
//! stream on every server exactly once, and history replay works whichever
//! server a reconnection lands on.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use redisse::publisher::Publisher;
use support::{Nginx, RedisServer, ServerProcess, SseReader};

const STREAMS: usize = 30;
const STATS: &[u8] = b"GET / HTTP/1.1\r\nAccept: application/json\r\nConnection: close\r\n\r\n";

/// `connected` in a server's stats.
fn connected(server: &ServerProcess) -> u64 {
    let stats = server.get(STATS);
    let value = stats.split("\"connected\": ").nth(1).expect("stats");
    value[..value.find(',').unwrap()].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publish_reaches_every_stream_on_every_server_once() {
    let redis = RedisServer::start();
    let mut servers: Vec<ServerProcess> = (0..3)
        .map(|_| ServerProcess::spawn(&["--redis", &redis.url()], None))
        .collect();
    for server in &mut servers {
        server.wait_for_log("connected to Redis");
    }
    let upstream = servers
        .iter()
        .map(|s| format!("server 127.0.0.1:{};", s.port))
        .collect::<Vec<_>>()
        .join(" ");
    let nginx = Nginx::start("nginx-fleet.conf", &[("SERVERS", upstream)]);
    let front: SocketAddr = ([127, 0, 0, 1], nginx.port).into();

    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let stream = SseReader::open(front, "/?fleet", &[]).await;
        assert_eq!(stream.status, 200);
        streams.push(stream);
    }
    support::wait_until("every stream is open", Duration::from_secs(10), || {
        servers.iter().map(connected).sum::<u64>() == STREAMS as u64
    });
    let per_server: Vec<u64> = servers.iter().map(connected).collect();
    assert!(
        per_server.iter().all(|&n| n > 0),
        "round robin over the three: {per_server:?}"
    );

    let publisher =
        Publisher::new(&redis.url(), Duration::from_secs(1), Duration::from_secs(2)).unwrap();
    let ids: Vec<u64> = (0..3)
        .map(|i| {
            publisher
                .publish(b"fleet", b"message", format!("event {i}").as_bytes())
                .unwrap()
        })
        .collect();
    for stream in &mut streams {
        stream
            .wait_for("the three events", |s| s.published_ids().len() >= 3)
            .await;
        assert_eq!(stream.published_ids(), ids, "each event once");
    }

    // Reconnections land on any server: each replays the same history.
    for _ in 0..6 {
        let mut again =
            SseReader::open(front, "/?fleet", &[("Last-Event-Id", &ids[0].to_string())]).await;
        again
            .wait_for("the replay", |s| s.published_ids().len() >= 2)
            .await;
        assert_eq!(again.published_ids(), ids[1..]);
    }
}

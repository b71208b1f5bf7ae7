//! The publisher against a real Redis: what lands there is what the 0.4
//! gem wrote, byte for byte.

mod support;

use std::time::{Duration, Instant};

use redis::Commands;
use redisse::publisher::{PublishError, Publisher};
use support::RedisServer;

fn publisher(url: &str) -> Publisher {
    Publisher::new(url, Duration::from_millis(500), Duration::from_secs(2)).unwrap()
}

#[test]
fn writes_the_old_gems_keys_and_text() {
    let redis = RedisServer::start();
    let mut con = redis.client();
    let mut pubsub_con = redis.client();
    let mut pubsub = pubsub_con.as_pubsub();
    pubsub.subscribe("global").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();

    let p = publisher(&redis.url());
    assert_eq!(p.publish(b"global", b"message", b"hello").unwrap(), 1);
    assert_eq!(
        p.publish(b"global", b"notice", b"first\nsecond").unwrap(),
        2
    );

    let counter: String = con.get("redisse:lastEventId").unwrap();
    assert_eq!(counter, "2");
    let history: Vec<(Vec<u8>, String)> = con.zrange_withscores("global", 0, -1).unwrap();
    assert_eq!(
        history,
        vec![
            (
                b"id: 1\nevent: message\ndata: hello\n\n".to_vec(),
                "1".to_string()
            ),
            (
                b"id: 2\nevent: notice\ndata: first\ndata: second\n\n".to_vec(),
                "2".to_string()
            ),
        ]
    );
    let received: Vec<u8> = pubsub.get_message().unwrap().get_payload().unwrap();
    assert_eq!(received, b"id: 1\nevent: message\ndata: hello\n\n");
}

#[test]
fn keeps_the_newest_hundred_events_per_channel() {
    let redis = RedisServer::start();
    let mut con = redis.client();
    let p = publisher(&redis.url());
    for i in 0..105 {
        p.publish(b"a", b"message", format!("{i}").as_bytes())
            .unwrap();
    }
    p.publish(b"b", b"message", b"other").unwrap();
    let scores: Vec<(Vec<u8>, u64)> = con.zrange_withscores("a", 0, -1).unwrap();
    assert_eq!(scores.len(), 100);
    assert_eq!(scores.first().unwrap().1, 6);
    assert_eq!(scores.last().unwrap().1, 105);
    assert_eq!(con.zcard::<_, u64>("b").unwrap(), 1);
}

#[test]
fn threads_get_unique_ids() {
    let redis = RedisServer::start();
    let p = publisher(&redis.url());
    let mut ids: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    (0..100)
                        .map(|_| p.publish(b"c", b"message", b"x").unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                let ids = h.join().unwrap();
                assert!(
                    ids.windows(2).all(|w| w[0] < w[1]),
                    "ids increase within a thread"
                );
                ids
            })
            .collect()
    });
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 800);
}

#[test]
fn a_bad_type_publishes_nothing() {
    let redis = RedisServer::start();
    let mut con = redis.client();
    let p = publisher(&redis.url());
    assert!(matches!(
        p.publish(b"c", b"x\nevent: y", b"d"),
        Err(PublishError::InvalidEvent(_))
    ));
    assert_eq!(
        con.get::<_, Option<u64>>("redisse:lastEventId").unwrap(),
        None
    );
}

#[test]
fn redis_down_fails_fast_then_the_same_publisher_recovers() {
    let mut redis = RedisServer::start();
    let p = publisher(&redis.url());
    assert_eq!(p.publish(b"c", b"message", b"1").unwrap(), 1);
    redis.stop();
    let started = Instant::now();
    let err = p.publish(b"c", b"message", b"2").unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, PublishError::Connection { .. }), "{err}");
    redis.restart();
    // The restarted Redis kept no data: the id starts over.
    assert_eq!(p.publish(b"c", b"message", b"3").unwrap(), 1);
}

#[test]
fn connection_errors_name_the_url_without_its_password() {
    let port = support::free_port();
    let p = publisher(&format!("redis://:secret@127.0.0.1:{port}/"));
    let message = p.publish(b"c", b"message", b"x").unwrap_err().to_string();
    assert!(
        message.contains(&format!("redis://:****@127.0.0.1:{port}/")),
        "{message}"
    );
    assert!(!message.contains("secret"), "{message}");
}

#[test]
fn publishes_on_the_first_try_after_redis_restarted_behind_its_back() {
    let mut redis = RedisServer::start();
    let p = publisher(&redis.url());
    assert_eq!(p.publish(b"c", b"message", b"1").unwrap(), 1);
    redis.stop();
    redis.restart();
    assert_eq!(p.publish(b"c", b"message", b"2").unwrap(), 1);
}

#[test]
fn ids_are_exact_integers_at_any_size() {
    let redis = RedisServer::start();
    let mut con = redis.client();
    let p = publisher(&redis.url());
    // From 10^14 Lua writes its numbers as `1e+14`; from 2^53 it rounds them.
    for last in [99_999_999_999_999u64, (1 << 60) + 1] {
        let _: () = con.set("redisse:lastEventId", last).unwrap();
        let id = p.publish(b"big", b"message", b"x").unwrap();
        assert_eq!(id, last + 1);
        let history: Vec<Vec<u8>> = con.zrange("big", -1, -1).unwrap();
        assert_eq!(
            String::from_utf8(history[0].clone()).unwrap(),
            format!("id: {}\nevent: message\ndata: x\n\n", last + 1)
        );
    }
}

/// A publish whose task ends without a result (here, cancelled while Redis
/// says nothing) never leaves its caller waiting: `wait` says it was lost.
#[test]
fn a_publish_whose_task_ended_never_blocks_its_waiter() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/", silent.local_addr().unwrap());
    let held = std::thread::spawn(move || silent.accept().map(|(socket, _)| socket));
    let p = Publisher::new(&url, Duration::from_secs(60), Duration::from_secs(60)).unwrap();
    let pending = p.start(b"c", b"message", b"x").unwrap();
    pending.cancel();
    let (sender, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(pending.wait().map(|r| r.map_err(|e| e.to_string()))));
    let result = waited
        .recv_timeout(support::DEADLINE)
        .expect("wait returned");
    let message = result.expect("not an interrupt").unwrap_err();
    assert!(message.contains("without a result"), "{message}");
    drop(held);
}

//! ACL users (`redis://user:password@host`): the smallest rules the
//! publisher and the server need (doc/redis.md, "ACL users"), a clear error
//! for a user that may not publish, and passwords kept out of every
//! message and log line.

mod support;

use std::time::Duration;

use redisse::publisher::{PublishError, Publisher};
use support::{exchange, RedisServer, ServerProcess, SseReader, SERVER_ACL_RULES as SERVER_RULE};

/// What the publisher needs: the script, the commands it runs, the counter,
/// the channels' histories and their pub/sub channels.
pub const PUBLISHER_RULE: &str =
    "-@all +evalsha +script|load +incr +get +publish +zadd +zremrangebyrank \
                                  ~redisse:lastEventId ~news:* &news:*";
fn publisher(url: &str) -> Publisher {
    Publisher::new(url, Duration::from_secs(1), Duration::from_secs(2)).unwrap()
}

#[test]
fn users_with_exactly_the_documented_rules_publish_and_serve() {
    let redis = RedisServer::start();
    redis.add_user("publisher", "pub-secret-1", PUBLISHER_RULE);
    redis.add_user("streamer", "srv-secret-2", SERVER_RULE);
    let mut server = ServerProcess::spawn(
        &[
            "--redis",
            &redis.user_url("streamer", "srv-secret-2"),
            "--verbose",
        ],
        None,
    );
    server.wait_for_log("connected to Redis");
    let mut stream = server.connect();
    std::io::Write::write_all(
        &mut stream,
        b"GET /?news:today HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n",
    )
    .unwrap();
    server.wait_for_log("stream opened");
    let id = publisher(&redis.user_url("publisher", "pub-secret-1"))
        .publish(b"news:today", b"message", b"allowed")
        .unwrap();
    server.wait_for_log(&format!("event {id} on \"news:today\" to 1 stream(s)"));
    let log = server.log().join("\n");
    assert!(
        !log.contains("srv-secret-2"),
        "the password is never logged:\n{log}"
    );
}

#[test]
fn a_user_that_may_not_publish_gets_a_clear_error() {
    let redis = RedisServer::start();
    redis.add_user(
        "reader",
        "read-secret-3",
        &PUBLISHER_RULE.replace(" +publish", ""),
    );
    let error = publisher(&redis.user_url("reader", "read-secret-3"))
        .publish(b"news:today", b"message", b"refused")
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, PublishError::Command { .. }), "{message}");
    assert!(
        message.contains("NoPerm") && message.contains("may not run PUBLISH on news:today"),
        "{message}"
    );
    let counter: Option<u64> = redis::cmd("GET")
        .arg("redisse:lastEventId")
        .query(&mut redis.client())
        .unwrap();
    assert_eq!(counter, None, "nothing was half done");
    assert!(!message.contains("read-secret-3"), "{message}");
}

#[test]
fn a_wrong_password_is_never_shown() {
    let redis = RedisServer::start();
    redis.add_user("publisher", "the-right-one", PUBLISHER_RULE);
    let error = publisher(&redis.user_url("publisher", "wrong-pass-4"))
        .publish(b"news:today", b"message", b"x")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("redis://publisher:****@127.0.0.1"),
        "{error}"
    );
    assert!(!error.contains("wrong-pass-4"), "{error}");

    let mut server = ServerProcess::spawn(
        &["--redis", &redis.user_url("publisher", "wrong-pass-4")],
        None,
    );
    server.wait_for_log("is unreachable");
    let log = server.log().join("\n");
    assert!(log.contains("publisher:****@"), "{log}");
    assert!(!log.contains("wrong-pass-4"), "{log}");
}

/// A server whose user may subscribe to `news:*` alone: a request for
/// another channel is refused, with a 403 that names it, and nothing else
/// is disturbed, neither the streams already open nor those that opened
/// together with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_redis_refuses_fails_its_own_requests_alone() {
    let redis = RedisServer::start();
    redis.add_user("streamer", "srv-secret-5", SERVER_RULE);
    redis.add_user("publisher", "pub-secret-6", PUBLISHER_RULE);
    let mut server = ServerProcess::spawn(
        &["--redis", &redis.user_url("streamer", "srv-secret-5")],
        None,
    );
    server.wait_for_log("connected to Redis");
    let addr = server.addr();
    let mut open = SseReader::open(addr, "/?news:open", &[]).await;
    assert_eq!(open.status, 200);

    let refused = exchange(
        addr,
        b"GET /?private:1 HTTP/1.1\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        refused.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{refused}"
    );
    assert!(refused.contains("channel \"private:1\""), "{refused}");
    // The server says which refusal of Redis's it was (worded by Redis,
    // differently from one version to the next).
    server.wait_for_log("Redis refused channel \"private:1\"");

    // A crowd at once, so that allowed and refused share the hub's batches.
    let crowd = futures_util::future::join_all((0..40).map(|i| {
        let path = match i % 2 {
            0 => format!("/?news:crowd{i}"),
            _ => format!("/?news:crowd{i}&private:{i}"),
        };
        async move { SseReader::open(addr, &path, &[]).await }
    }))
    .await;
    let statuses: Vec<u16> = crowd.iter().map(|reader| reader.status).collect();
    let expected: Vec<u16> = (0..40)
        .map(|i| if i % 2 == 0 { 200 } else { 403 })
        .collect();
    assert_eq!(statuses, expected);
    let stats =
        server.get(b"GET / HTTP/1.1\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
    assert!(stats.contains("\"connected\": 21,"), "{stats}");

    let publisher = publisher(&redis.user_url("publisher", "pub-secret-6"));
    let id = publisher
        .publish(b"news:open", b"message", b"still here")
        .unwrap();
    // No counter yet when they opened: no lastEventId event.
    assert_eq!(
        open.wait_for_ids(1).await,
        vec![id],
        "the open stream goes on"
    );
    let mut neighbour = crowd.into_iter().next().unwrap();
    // (The other streams of the crowd close here.)
    let id = publisher
        .publish(b"news:crowd0", b"message", b"and its neighbour")
        .unwrap();
    assert_eq!(neighbour.wait_for_ids(1).await, vec![id]);
    let log = server.log().join("\n");
    assert!(
        log.contains("\"private:1\""),
        "the log names the channel:\n{log}"
    );
    assert!(!log.contains("srv-secret-5"), "{log}");
}

/// A user that may subscribe anywhere but read only `news:*` keys: the
/// history read of another channel is refused, with the same 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_redis_refuses_to_read_fails_its_request_alone() {
    let redis = RedisServer::start();
    redis.add_user(
        "streamer",
        "srv-secret-7",
        &SERVER_RULE.replace("&news:*", "&*"),
    );
    let mut server = ServerProcess::spawn(
        &["--redis", &redis.user_url("streamer", "srv-secret-7")],
        None,
    );
    server.wait_for_log("connected to Redis");
    let addr = server.addr();
    let mut open = SseReader::open(addr, "/?news:open", &[]).await;
    assert_eq!(open.status, 200);
    let refused = exchange(
        addr,
        b"GET /?private:2 HTTP/1.1\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        refused.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{refused}"
    );
    assert!(refused.contains("channel \"private:2\""), "{refused}");
    server.wait_for_log("Redis refused channel \"private:2\"");
    let id: u64 = redis::cmd("INCR")
        .arg("redisse:lastEventId")
        .query(&mut redis.client())
        .unwrap();
    let _: () = redis::cmd("PUBLISH")
        .arg("news:open")
        .arg(format!("id: {id}\ndata: x\n\n"))
        .query(&mut redis.client())
        .unwrap();
    assert_eq!(open.wait_for_ids(1).await, vec![id]);
}

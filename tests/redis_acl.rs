//! ACL users (`redis://user:password@host`): the smallest rules the
//! publisher and the server need (README, "Redis ACL users"), a clear error
//! for a user that may not publish, and passwords kept out of every
//! message and log line.

mod support;

use std::time::Duration;

use redisse::publisher::{PublishError, Publisher};
use support::{RedisServer, ServerProcess};

/// What the publisher needs: the script, the commands it runs, the counter,
/// the channels' histories and their pub/sub channels.
pub const PUBLISHER_RULE: &str =
    "-@all +evalsha +script|load +incr +get +publish +zadd +zremrangebyrank \
                                  ~redisse:lastEventId ~news:* &news:*";
/// What the server needs: subscribing, reading the counter and histories,
/// and PING (its heartbeat and health check).
pub const SERVER_RULE: &str =
    "-@all +subscribe +unsubscribe +ping +get +zrangebyscore ~redisse:lastEventId ~news:* &news:*";

fn add_user(redis: &RedisServer, name: &str, password: &str, rule: &str) {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER")
        .arg(name)
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"));
    for part in rule.split_whitespace() {
        cmd.arg(part);
    }
    let _: () = cmd.query(&mut redis.client()).unwrap();
}

fn user_url(redis: &RedisServer, user: &str, password: &str) -> String {
    format!("redis://{user}:{password}@127.0.0.1:{}/", redis.port)
}

fn publisher(url: &str) -> Publisher {
    Publisher::new(url, Duration::from_secs(1), Duration::from_secs(2)).unwrap()
}

#[test]
fn users_with_exactly_the_documented_rules_publish_and_serve() {
    let redis = RedisServer::start();
    add_user(&redis, "publisher", "pub-secret-1", PUBLISHER_RULE);
    add_user(&redis, "streamer", "srv-secret-2", SERVER_RULE);
    let mut server = ServerProcess::spawn(
        &[
            "--redis",
            &user_url(&redis, "streamer", "srv-secret-2"),
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
    let id = publisher(&user_url(&redis, "publisher", "pub-secret-1"))
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
    add_user(
        &redis,
        "reader",
        "read-secret-3",
        &PUBLISHER_RULE.replace(" +publish", ""),
    );
    let error = publisher(&user_url(&redis, "reader", "read-secret-3"))
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
    add_user(&redis, "publisher", "the-right-one", PUBLISHER_RULE);
    let error = publisher(&user_url(&redis, "publisher", "wrong-pass-4"))
        .publish(b"news:today", b"message", b"x")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("redis://publisher:****@127.0.0.1"),
        "{error}"
    );
    assert!(!error.contains("wrong-pass-4"), "{error}");

    let mut server = ServerProcess::spawn(
        &["--redis", &user_url(&redis, "publisher", "wrong-pass-4")],
        None,
    );
    server.wait_for_log("is unreachable");
    let log = server.log().join("\n");
    assert!(log.contains("publisher:****@"), "{log}");
    assert!(!log.contains("wrong-pass-4"), "{log}");
}

//! The server as a library: `server::run` in this process, against a real
//! Redis, read over loopback by a small SSE reader.

mod support;

use std::sync::Arc;
use std::time::Duration;

use redisse::blocking::Popped;
use redisse::publisher::Publisher;
use redisse::server::channel_source::{ChannelRequests, ChannelSource};
use support::{exchange, RedisServer, SseReader, TestServer};

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
        // A stream that opened before the race began starts with a
        // `lastEventId` event (id 1, as 0.4 sent it); the events are the rest.
        stream
            .wait_for("event 201", |s| s.published_ids().contains(&201))
            .await;
        let ids = stream.published_ids();
        assert_eq!(
            ids,
            (2..=201).collect::<Vec<_>>(),
            "every event after 1, once, in order"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_channels_answer_delays_only_its_own_request() {
    let redis = RedisServer::start();
    let requests = Arc::new(ChannelRequests::default());
    // The application: answers from the path at once, except `/slow`, which
    // it holds until the test releases it (and interrupts its wait).
    let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let application = std::thread::spawn({
        let (requests, released) = (requests.clone(), released.clone());
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
                if released.load(std::sync::atomic::Ordering::SeqCst) {
                    for request in held.drain(..) {
                        request.reply(vec!["slow".into()]);
                    }
                }
            }
        }
    });
    let server = TestServer::start(&redis, ChannelSource::Application(requests.clone())).await;
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

    released.store(true, std::sync::atomic::Ordering::SeqCst);
    requests.interrupt();
    let mut slow = tokio::time::timeout(support::DEADLINE, slow)
        .await
        .expect("the slow request is answered once released")
        .unwrap();
    assert_eq!(slow.status, 200, "the slow request gets its stream");
    // Subscribed once the opening (its lastEventId event) arrived.
    assert_eq!(slow.wait_for_ids(1).await, vec![id]);
    let late = publisher.publish(b"slow", b"message", b"at last").unwrap();
    assert_eq!(slow.wait_for_ids(2).await, vec![id, late]);
    server.stop().await;
    application.join().unwrap();
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

/// Publishes like the 0.4 gem, one command per round trip, for ids that
/// were taken from the counter beforehand (so that a test can publish them
/// out of order, as two 0.4 app processes do).
fn publish_old_way(con: &mut redis::Connection, channel: &str, id: u64) {
    let text = format!("id: {id}\nevent: message\ndata: old {id}\n\n");
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(&text)
        .exec(con)
        .unwrap();
    redis::cmd("ZADD")
        .arg(channel)
        .arg(id)
        .arg(&text)
        .exec(con)
        .unwrap();
    redis::cmd("ZREMRANGEBYRANK")
        .arg(channel)
        .arg(0)
        .arg(-101)
        .exec(con)
        .unwrap();
}

fn take_id(con: &mut redis::Connection) -> u64 {
    redis::cmd("INCR")
        .arg("redisse:lastEventId")
        .query(con)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_id_that_comes_after_a_higher_one_is_delivered() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, ChannelSource::Query).await;
    let mut con = redis.client();
    let first = take_id(&mut con);
    publish_old_way(&mut con, "mixed", first);
    // Open before the race: it gets both live.
    let mut before = server.open("/?mixed", &[]).await;
    before
        .wait_for("the lastEventId event", |s| s.ids() == vec![first])
        .await;

    let (seven, eight) = (take_id(&mut con), take_id(&mut con));
    publish_old_way(&mut con, "mixed", eight);
    // Opens between the two: 8 comes in its opening, 7 live afterwards.
    let mut during = server
        .open("/?mixed", &[("Last-Event-Id", &first.to_string())])
        .await;
    during
        .wait_for("event 8 from history", |s| s.published_ids() == vec![eight])
        .await;
    publish_old_way(&mut con, "mixed", seven);

    before
        .wait_for("both events", |s| s.published_ids().len() == 2)
        .await;
    assert_eq!(before.published_ids(), vec![eight, seven]);
    during
        .wait_for("both events", |s| s.published_ids().len() == 2)
        .await;
    assert_eq!(during.published_ids(), vec![eight, seven]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_ids_racing_the_opening_arrive_once_each() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, ChannelSource::Query).await;
    let mut con = redis.client();
    let first = take_id(&mut con);
    publish_old_way(&mut con, "race", first);
    // Fewer events than a history read takes (100): whenever a stream's
    // read runs, every event published so far is within its reach.
    const PAIRS: u64 = 40;
    // Pairs of ids published higher first. Each event's PUBLISH and ZADD
    // go in one MULTI: a 0.4 publisher whose PUBLISH lands before a
    // stream subscribes and whose ZADD lands after the stream read the
    // history loses that event for that stream, and no server can help it.
    let racing = tokio::task::spawn_blocking({
        let mut con = redis.client();
        move || {
            for _ in 0..PAIRS {
                let (low, high) = (take_id(&mut con), take_id(&mut con));
                for id in [high, low] {
                    let text = format!("id: {id}\nevent: message\ndata: x\n\n");
                    redis::pipe()
                        .atomic()
                        .cmd("PUBLISH")
                        .arg("race")
                        .arg(&text)
                        .cmd("ZADD")
                        .arg("race")
                        .arg(id)
                        .arg(&text)
                        .exec(&mut con)
                        .unwrap();
                }
            }
        }
    });
    let mut streams = Vec::new();
    for _ in 0..20 {
        let last = first.to_string();
        streams.push(server.open("/?race", &[("Last-Event-Id", &last)]).await);
    }
    racing.await.unwrap();
    let expected: Vec<u64> = (first + 1..=first + 2 * PAIRS).collect();
    for stream in &mut streams {
        stream
            .wait_for("every event", |s| s.published_ids().len() >= expected.len())
            .await;
        let mut ids = stream.published_ids();
        ids.sort_unstable();
        assert_eq!(ids, expected, "every event once");
    }
    server.stop().await;
}

/// 1,024 streams of 1,000 channels each, all new, opening at once: Redis
/// takes a while to subscribe a million channels, and the hub waits as
/// long as confirmations keep coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_new_channels_at_once_are_subscribed_not_taken_for_a_dead_redis() {
    const STREAMS: usize = 1024;
    const CHANNELS: usize = 1000;
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, ChannelSource::Query).await;
    let started = std::time::Instant::now();
    let streams = futures_util::future::join_all((0..STREAMS).map(|stream| {
        let addr = server.addr;
        async move {
            let channels: Vec<String> = (0..CHANNELS).map(|c| format!("s{stream}c{c}")).collect();
            SseReader::open(addr, &format!("/?{}", channels.join("&")), &[]).await
        }
    }))
    .await;
    println!(
        "{STREAMS} streams of {CHANNELS} channels open in {:?}",
        started.elapsed()
    );
    assert!(streams.iter().all(|stream| stream.status == 200));
    server.wait_for_streams(STREAMS as u64).await;
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut redis.client())
        .unwrap();
    assert!(
        info.contains(&format!("pubsub_channels:{}\r\n", STREAMS * CHANNELS)),
        "{info}"
    );
    drop(streams);
    server.wait_for_streams(0).await;
    server.stop().await;
}

fn zadd(con: &mut redis::Connection, key: &str, score: &str, member: &str) {
    let _: () = redis::cmd("ZADD")
        .arg(key)
        .arg(score)
        .arg(member)
        .query(con)
        .unwrap();
}

/// In redirect mode a client names any key: an application's own sorted
/// set, a Sidekiq set with fractional scores, a string. None of them is a
/// history: nothing of it is sent, the stream opens as on a channel with
/// no history, and nothing says what the key holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_no_history_replays_nothing_of_it() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, ChannelSource::Query).await;
    let mut con = redis.client();
    let _: () = redis::cmd("SET")
        .arg("redisse:lastEventId")
        .arg(5)
        .query(&mut con)
        .unwrap();
    zadd(&mut con, "user:42:logins", "1", "alice");
    zadd(&mut con, "user:42:logins", "2", "bob@example.com");
    zadd(
        &mut con,
        "retry",
        "1712345678.123",
        r#"{"class":"HardJob","retry":true}"#,
    );
    zadd(&mut con, "retry", "3", "id: 3\ndata: a look-alike\n");
    // Event text whose id is not its score is no event either.
    zadd(&mut con, "retry", "4", "id: 9\ndata: x\n\n");
    let _: () = redis::cmd("SET")
        .arg("a:string")
        .arg("secret")
        .query(&mut con)
        .unwrap();
    for key in ["user:42:logins", "retry", "a:string"] {
        let mut stream = server
            .open(&format!("/?{key}"), &[("Last-Event-Id", "1")])
            .await;
        assert_eq!(stream.status, 200, "{key}");
        let events = {
            stream.wait_for_ids(1).await;
            stream.events()
        };
        assert_eq!(events.len(), 1, "{key}: {events:?}");
        assert_eq!(
            (events[0].kind.as_str(), events[0].id),
            ("lastEventId", Some(5))
        );
    }
    assert!(server.stats().await.contains("\"missing\":   0"));
    server.stop().await;
}

/// A history read takes at most the history's size (a sorted set that no
/// publisher trims may be of any size): a client whose last id is out of reach gets `missedevents`, then the
/// events that are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_read_takes_a_hundred_events_at_most() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, ChannelSource::Query).await;
    let mut con = redis.client();
    for id in 10..=400 {
        zadd(
            &mut con,
            "long",
            &id.to_string(),
            &format!("id: {id}\nevent: m\ndata: {id}\n\n"),
        );
    }
    let _: () = redis::cmd("SET")
        .arg("redisse:lastEventId")
        .arg(400)
        .query(&mut con)
        .unwrap();
    let mut stream = server.open("/?long", &[("Last-Event-Id", "3")]).await;
    stream
        .wait_for("the replay", |s| s.events().len() >= 101)
        .await;
    let events = stream.events();
    assert_eq!(events[0].kind, "missedevents");
    let ids: Vec<u64> = events[1..].iter().filter_map(|e| e.id).collect();
    assert_eq!(ids, (10..110).collect::<Vec<_>>());
    assert!(events[1..].iter().all(|e| e.kind == "m"), "{events:?}");
    server.stop().await;
}

/// Streams that open together with the same channel and last id (a
/// deploy's reconnections) share one read: 100 requests, one pipeline of
/// the counter and one history read; another channel adds one read.
#[tokio::test]
async fn reads_that_wait_together_share_one_pipeline() {
    use redisse::protocol::history::Start;
    use redisse::redis_url::RedisUrl;
    use redisse::server::history_reader::HistoryReader;
    use redisse::server::metrics::Metrics;
    use std::sync::atomic::Ordering::Relaxed;

    let redis = RedisServer::start();
    let mut con = redis.client();
    for id in 1..=3 {
        zadd(
            &mut con,
            "news",
            &id.to_string(),
            &format!("id: {id}\ndata: x\n\n"),
        );
    }
    let metrics = Arc::new(Metrics::default());
    let reader = HistoryReader::new(&RedisUrl::parse(&redis.url()).unwrap(), metrics.clone());
    // One thread: every request is queued before the reads are sent.
    let channels: Vec<Vec<redisse::channel::Channel>> = (0..100)
        .map(|i| match i % 10 {
            0 => vec!["news".into(), "sports".into()],
            _ => vec!["news".into()],
        })
        .collect();
    let snapshots = futures_util::future::join_all(
        channels.iter().map(|c| reader.snapshot(Start::After(1), c)),
    )
    .await;
    for (snapshot, channels) in snapshots.into_iter().zip(&channels) {
        let snapshot = snapshot.unwrap();
        assert_eq!(snapshot.histories.len(), channels.len());
        let ids: Vec<u64> = snapshot.histories[0].iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
    }
    assert_eq!(metrics.history_requests.load(Relaxed), 100);
    assert_eq!(
        metrics.history_commands.load(Relaxed),
        3,
        "the counter, news from 1, sports from 1"
    );
}

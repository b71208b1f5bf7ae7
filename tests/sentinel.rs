//! Redis behind Sentinel: a primary, a replica and three sentinels on
//! loopback. The primary is killed while events are published and 1,000
//! streams listen: publishing resumes on the new primary, the streams are
//! closed, and, reconnected with their last id, get what the new primary's
//! history holds after it, once.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redisse::publisher::Publisher;
use redisse::server::channel_source::ChannelSource;
use support::{wait_until, RedisServer, Sentinels, Setup, TestServer};

const STREAMS: usize = 1000;
/// How long a failover may take here: sentinels find the master down after
/// one second, then agree and promote the replica.
const FAILOVER_BOUND: Duration = Duration::from_secs(30);

fn replication_up(replica: &RedisServer) -> bool {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut replica.client())
        .unwrap();
    info.contains("master_link_status:up")
}

fn history_after(redis: &RedisServer, channel: &str, last: u64) -> Vec<u64> {
    let scores: Vec<(String, u64)> = redis::cmd("ZRANGEBYSCORE")
        .arg(channel)
        .arg(format!("({last}"))
        .arg("+inf")
        .arg("WITHSCORES")
        .query(&mut redis.client())
        .unwrap();
    scores.into_iter().map(|(_, id)| id).collect()
}

/// Each publish's end, and whether it succeeded.
type Outcomes = Arc<Mutex<Vec<(Instant, bool)>>>;

/// How long after `killed_at` publishing resumed: the first success once
/// publishes began to fail (one under way when the primary went may still
/// end well); none yet.
fn resumed_after(outcomes: &Outcomes, killed_at: Instant) -> Option<Duration> {
    let outcomes = outcomes.lock().unwrap();
    outcomes
        .iter()
        .skip_while(|(at, _)| *at <= killed_at)
        .skip_while(|(_, published)| *published)
        .find(|(_, published)| *published)
        .map(|(at, _)| at.duration_since(killed_at))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_under_load_loses_nothing_the_new_primary_has() {
    let mut primary = RedisServer::start();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    wait_until("the replica is in sync", Duration::from_secs(10), || {
        replication_up(&replica)
    });
    let sentinels = Sentinels::start(3, primary.port, Duration::from_millis(1000));
    let url = sentinels.url();

    let server = TestServer::start_url(&url, ChannelSource::Query, Setup::default()).await;
    let mut streams = Vec::with_capacity(STREAMS);
    for _ in 0..STREAMS {
        streams.push(server.open("/?failover", &[]).await);
    }
    server.wait_for_streams(STREAMS as u64).await;

    // Publishing all along, through the sentinels.
    let publishing = Arc::new(AtomicBool::new(true));
    let outcomes = Outcomes::default();
    let publisher = tokio::task::spawn_blocking({
        let (url, publishing, outcomes) = (url.clone(), publishing.clone(), outcomes.clone());
        move || {
            let publisher =
                Publisher::new(&url, Duration::from_millis(500), Duration::from_secs(1)).unwrap();
            while publishing.load(Ordering::SeqCst) {
                let published = publisher.publish(b"failover", b"message", b"x").is_ok();
                outcomes.lock().unwrap().push((Instant::now(), published));
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    for stream in &mut streams[..10] {
        stream
            .wait_for("events before the failover", |s| {
                s.published_ids().len() >= 3
            })
            .await;
    }

    let killed_at = Instant::now();
    primary.stop();
    wait_until("the sentinels promote the replica", FAILOVER_BOUND, || {
        sentinels.master_port() == Some(replica.port)
    });
    // Streams are closed when the hub loses the primary.
    for stream in &mut streams {
        tokio::time::timeout(FAILOVER_BOUND, async {
            while stream.decode() && stream.read_more().await {}
        })
        .await
        .expect("every stream is closed");
    }
    // Publishing resumes on the new primary.
    tokio::time::timeout(FAILOVER_BOUND, async {
        while history_after(&replica, "failover", 0).is_empty()
            || redis::cmd("GET")
                .arg("redisse:lastEventId")
                .query::<Option<u64>>(&mut replica.client())
                .unwrap()
                .is_none()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("events reach the new primary");
    wait_until(
        "a publish succeeds after the failover",
        FAILOVER_BOUND,
        || resumed_after(&outcomes, killed_at).is_some(),
    );
    publishing.store(false, Ordering::SeqCst);
    publisher.await.unwrap();
    let resumed =
        resumed_after(&outcomes, killed_at).expect("a publish succeeded after the failover");
    let failed = outcomes
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, published)| !published)
        .count();
    println!(
        "publishing resumed {resumed:?} after the primary was killed ({failed} publishes failed meanwhile)"
    );
    assert!(resumed < FAILOVER_BOUND);

    // Reconnected with their last id, the streams get the new primary's
    // history after it, once each, in order.
    for stream in streams {
        let last = *stream
            .published_ids()
            .last()
            .expect("events before the failover");
        let mut again = server
            .open("/?failover", &[("Last-Event-Id", &last.to_string())])
            .await;
        assert_eq!(again.status, 200);
        let expected = history_after(&replica, "failover", last);
        again
            .wait_for("the history after its last id", |s| {
                s.published_ids().len() >= expected.len()
            })
            .await;
        assert_eq!(again.published_ids(), expected, "after {last}");
    }
    server.stop().await;
    drop(sentinels);
}

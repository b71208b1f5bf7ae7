//! Redis Cluster (`redis+cluster://`): three primaries with a replica each
//! on loopback. Publishing, history and live delivery across slots, a
//! busy channel's slot moved while it streams, and a primary killed with
//! its replica taking over.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redisse::publisher::Publisher;
use redisse::server::channel_source::ChannelSource;
use support::{RedisCluster, Setup, TestServer};

/// Channels whose keys land on different primaries (slots 5061, 12182,
/// 840: one per third of the slots).
const CHANNELS: [&str; 3] = ["alpha", "beta", "gamma"];
const BOUND: Duration = Duration::from_secs(30);

fn publisher(cluster: &RedisCluster) -> Publisher {
    Publisher::new(
        &cluster.url(),
        Duration::from_secs(1),
        Duration::from_secs(2),
    )
    .unwrap()
}

#[derive(Default)]
struct Published {
    /// When each publish returned, and its id.
    ids: Vec<(Instant, u64)>,
    failures: Vec<String>,
}

impl Published {
    fn ids(&self) -> Vec<u64> {
        self.ids.iter().map(|(_, id)| *id).collect()
    }

    /// The longest time without a publish returning.
    fn longest_pause(&self) -> Duration {
        self.ids
            .windows(2)
            .map(|w| w[1].0.duration_since(w[0].0))
            .max()
            .unwrap_or_default()
    }
}

/// Publishes to `channel` every few milliseconds until `publishing` turns
/// false (or a minute passed); the ids published, and the failures.
fn keep_publishing(
    cluster: &RedisCluster,
    channel: &'static str,
    publishing: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Published> {
    let publisher = publisher(cluster);
    let deadline = Instant::now() + Duration::from_secs(60);
    tokio::task::spawn_blocking(move || {
        let mut published = Published::default();
        while publishing.load(Ordering::SeqCst) && Instant::now() < deadline {
            match publisher.publish(channel.as_bytes(), b"message", b"x") {
                Ok(id) => published.ids.push((Instant::now(), id)),
                Err(e) => published.failures.push(e.to_string()),
            }
            std::thread::sleep(Duration::from_millis(3));
        }
        published
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_replays_and_delivers_across_the_slots() {
    let cluster = RedisCluster::start();
    let owners: Vec<usize> = CHANNELS
        .iter()
        .map(|c| cluster.owner_of(cluster.slot_of(c)))
        .collect();
    let mut distinct = owners.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "one channel per primary: {owners:?}");

    let server =
        TestServer::start_url(&cluster.url(), ChannelSource::Query, Setup::default()).await;
    let mut stream = server.open("/?alpha&beta&gamma", &[]).await;
    assert_eq!(stream.status, 200);
    server.wait_for_streams(1).await;
    let publisher = publisher(&cluster);
    // A blocking call, as Ruby makes it: off the runtime's threads.
    let ids: Vec<u64> = tokio::task::spawn_blocking(move || {
        (0..9)
            .map(|i| {
                publisher
                    .publish(CHANNELS[i % 3].as_bytes(), b"message", b"x")
                    .unwrap()
            })
            .collect()
    })
    .await
    .unwrap();
    assert_eq!(ids, (1..=9).collect::<Vec<_>>(), "one counter for all");
    stream
        .wait_for("every event live", |s| s.published_ids().len() >= 9)
        .await;
    let mut live = stream.published_ids();
    live.sort_unstable();
    assert_eq!(live, ids);

    // Each channel's history, from its own node, merged.
    let mut again = server
        .open("/?alpha&beta&gamma", &[("Last-Event-Id", "3")])
        .await;
    again
        .wait_for("the history after 3", |s| s.published_ids().len() >= 6)
        .await;
    assert_eq!(again.published_ids(), (4..=9).collect::<Vec<_>>());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_channels_slot_moves_while_it_streams() {
    let cluster = RedisCluster::start();
    let slot = cluster.slot_of("alpha");
    let from = cluster.owner_of(slot);
    let to = *cluster.primaries().iter().find(|&&p| p != from).unwrap();

    let server =
        TestServer::start_url(&cluster.url(), ChannelSource::Query, Setup::default()).await;
    let mut stream = server.open("/?alpha", &[]).await;
    server.wait_for_streams(1).await;
    let publishing = Arc::new(AtomicBool::new(true));
    let publisher = keep_publishing(&cluster, "alpha", publishing.clone());
    stream
        .wait_for("events before the move", |s| s.published_ids().len() >= 20)
        .await;

    cluster.move_slot(slot, to);
    assert_eq!(cluster.owner_of(slot), to);
    let moved = stream.published_ids().len();
    stream
        .wait_for("events after the move", |s| {
            s.published_ids().len() >= moved + 20
        })
        .await;
    publishing.store(false, Ordering::SeqCst);
    let published = publisher.await.unwrap();
    let (ids, failures) = (published.ids(), published.failures);
    assert!(
        failures.is_empty(),
        "publishing went on through the move: {failures:?}"
    );
    stream
        .wait_for("every event", |s| s.published_ids().len() >= ids.len())
        .await;
    assert_eq!(stream.published_ids(), ids, "every event, once, in order");

    // The history is read from the new node.
    let last = ids[ids.len() - 6];
    let mut again = server
        .open("/?alpha", &[("Last-Event-Id", &last.to_string())])
        .await;
    again
        .wait_for("the history", |s| s.published_ids().len() >= 5)
        .await;
    assert_eq!(again.published_ids(), ids[ids.len() - 5..]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_by_its_replica() {
    let mut cluster = RedisCluster::start();
    let slot = cluster.slot_of("alpha");
    let server =
        TestServer::start_url(&cluster.url(), ChannelSource::Query, Setup::default()).await;
    let publishing = Arc::new(AtomicBool::new(true));
    let publisher = keep_publishing(&cluster, "alpha", publishing.clone());
    let mut stream = server.open("/?alpha", &[]).await;
    stream
        .wait_for("events before the kill", |s| s.published_ids().len() >= 10)
        .await;

    let killed = cluster.owner_of(slot);
    let killed_at = Instant::now();
    cluster.nodes[killed].kill();
    let taken_over = tokio::time::timeout(BOUND, async {
        while cluster.owner_of(slot) == killed {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        taken_over.is_ok(),
        "no replica took slot {slot} over:\n{}",
        cluster.describe()
    );
    cluster.wait_until_ok();
    // Publishing resumes, and a stream opened now gets the new events.
    let mut after = server.open("/?alpha", &[]).await;
    assert_eq!(after.status, 200);
    after
        .wait_for("events after the failover", |s| {
            s.published_ids().len() >= 10
        })
        .await;
    publishing.store(false, Ordering::SeqCst);
    let published = publisher.await.unwrap();
    let pause = published.longest_pause();
    println!(
        "publishing paused {pause:?} at most while the replica took over ({} publishes failed)",
        published.failures.len()
    );
    assert!(pause < BOUND);
    assert!(
        published.ids.iter().any(|(at, _)| *at > killed_at + pause),
        "publishing went on after the failover"
    );
    let ids = published.ids();
    let after_ids = after.published_ids();
    assert!(
        after_ids.iter().all(|id| ids.contains(id)),
        "only published events"
    );
    server.stop().await;
}

//! Publishing at a paced rate: to Redis in the SPEC §1 format (the same
//! script as `Redisse.publish`) for redisse, or by HTTP POST to nchan's
//! publisher location. Every event's data is `<tag> <seq> <sent_us>`,
//! stamped just before it is sent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redisse::event::EventText;
use redisse::publisher::{prepare_publish, publish_script};
use tokio::sync::mpsc;

use crate::http::PostConnection;
use crate::sse::Payload;
use crate::sys;

/// Publishes in flight at most (workers pulling from one queue).
const REDIS_WORKERS: usize = 64;
const HTTP_WORKERS: usize = 32;
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub enum Publisher {
    Redis {
        connection: redis::aio::MultiplexedConnection,
        script: Arc<redis::Script>,
    },
    Http {
        server: SocketAddr,
    },
}

impl Publisher {
    pub async fn redis(url: &str) -> Result<Publisher, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(PUBLISH_TIMEOUT));
        let connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| format!("cannot connect to Redis at {url}: {e}"))?;
        Ok(Publisher::Redis {
            connection,
            script: Arc::new(publish_script()),
        })
    }

    pub fn http(server: SocketAddr) -> Publisher {
        Publisher::Http { server }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Published {
    pub ok: u64,
    pub failed: u64,
    /// Successful publishes per channel index.
    pub per_channel: Vec<u64>,
    pub errors: BTreeMap<String, u64>,
    /// From the first send to the last answer.
    pub elapsed: Duration,
    /// The offered schedule's length.
    pub scheduled: Duration,
}

impl Published {
    pub fn rate(&self) -> f64 {
        let s = self
            .elapsed
            .as_secs_f64()
            .max(self.scheduled.as_secs_f64())
            .max(1e-6);
        self.ok as f64 / s
    }
}

struct Job {
    channel: usize,
    seq: u64,
}

/// Publishes `count` events, one every 1/rate seconds, round-robin over
/// `channels`; gives up on what is not sent by `limit`.
pub async fn paced(
    publisher: &Publisher,
    channels: &[String],
    rate: f64,
    count: u64,
    tag: u32,
    limit: Duration,
) -> Published {
    let workers = match publisher {
        Publisher::Redis { .. } => REDIS_WORKERS,
        Publisher::Http { .. } => HTTP_WORKERS,
    };
    let result = Arc::new(Mutex::new(Published {
        per_channel: vec![0; channels.len()],
        ..Published::default()
    }));
    let channels: Arc<Vec<String>> = Arc::new(channels.to_vec());
    let (tx, rx) = mpsc::channel::<Job>(4096);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let started = Instant::now();
    let give_up = started + limit;
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (rx, result, channels, publisher) = (
            rx.clone(),
            result.clone(),
            channels.clone(),
            publisher.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut post = match &publisher {
                Publisher::Http { server } => Some(PostConnection::new(*server)),
                Publisher::Redis { .. } => None,
            };
            loop {
                let job = { rx.lock().await.recv().await };
                let Some(job) = job else { break };
                if Instant::now() > give_up {
                    let mut r = result.lock().unwrap();
                    r.failed += 1;
                    *r.errors.entry("not sent in time".into()).or_default() += 1;
                    continue;
                }
                let channel = &channels[job.channel];
                let data = Payload::text(tag, job.seq, sys::now_us());
                let outcome: Result<(), String> = match (&publisher, &mut post) {
                    (Publisher::Redis { connection, script }, _) => {
                        let mut connection = connection.clone();
                        match EventText::new(data.as_bytes(), Some(b"message"), None) {
                            Ok(text) => prepare_publish(script, channel.as_bytes(), &text)
                                .invoke_async::<u64>(&mut connection)
                                .await
                                .map(|_| ())
                                .map_err(|e| format!("redis: {}", e.kind_name())),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    (Publisher::Http { .. }, Some(post)) => {
                        match post
                            .post(&format!("/pub/{channel}"), data.as_bytes(), PUBLISH_TIMEOUT)
                            .await
                        {
                            Ok(s) if (200..300).contains(&s) => Ok(()),
                            Ok(s) => Err(format!("status {s}")),
                            Err(e) => Err(e.kind()),
                        }
                    }
                    (Publisher::Http { .. }, None) => Err("no connection".into()),
                };
                let mut r = result.lock().unwrap();
                match outcome {
                    Ok(()) => {
                        r.ok += 1;
                        r.per_channel[job.channel] += 1;
                    }
                    Err(e) => {
                        r.failed += 1;
                        *r.errors.entry(e).or_default() += 1;
                    }
                }
                r.elapsed = started.elapsed();
            }
        }));
    }
    let interval = 1.0 / rate.max(1e-3);
    for seq in 0..count {
        let at = started + Duration::from_secs_f64(seq as f64 * interval);
        if at > give_up {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        if tx
            .send(Job {
                channel: (seq as usize) % channels.len(),
                seq,
            })
            .await
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    for h in handles {
        let _ = tokio::time::timeout(
            give_up.saturating_duration_since(Instant::now()) + PUBLISH_TIMEOUT,
            h,
        )
        .await;
    }
    let mut r = result.lock().unwrap().clone();
    r.scheduled = Duration::from_secs_f64(count.saturating_sub(1) as f64 * interval);
    let missing = count.saturating_sub(r.ok + r.failed);
    if missing > 0 {
        r.failed += missing;
        *r.errors.entry("not sent".into()).or_default() += missing;
    }
    r
}

trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for redis::RedisError {
    fn kind_name(&self) -> String {
        if self.is_timeout() {
            "timeout".into()
        } else if self.is_io_error() || self.is_connection_dropped() {
            "io".into()
        } else {
            format!("{:?}", self.kind())
        }
    }
}

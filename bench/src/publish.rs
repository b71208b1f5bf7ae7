//! Publishing: to Redis in the SPEC §1 format (the script of
//! `Redisse.publish`) for redisse, or by HTTP POST to nchan's publisher
//! location; at a paced rate, or in a closed loop as fast as the streams
//! take the events. Every event's data is a [`Payload`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redisse::event::EventText;
use redisse::publisher::{prepare_publish, publish_script};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::subscribers::add;
use crate::sys;

/// Publishes in flight at most when paced, each worker taking its turn.
const REDIS_WORKERS: u64 = 64;
const HTTP_WORKERS: u64 = 32;
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the harness puts in every event, `<tag> <seq> <sent_us>`: the
/// phase it belongs to, its number, and when it was sent (µs since the
/// epoch, stamped just before the publish request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    pub tag: u32,
    pub seq: u64,
    pub sent_us: u64,
}

impl Payload {
    pub fn text(tag: u32, seq: u64) -> String {
        format!("{tag} {seq} {}", sys::now_us())
    }

    pub fn parse(data: &[u8]) -> Option<Payload> {
        let mut it = std::str::from_utf8(data).ok()?.split(' ');
        let p =
            Payload { tag: it.next()?.parse().ok()?, seq: it.next()?.parse().ok()?, sent_us: it.next()?.parse().ok()? };
        it.next().is_none().then_some(p)
    }
}

#[derive(Clone)]
pub enum Publisher {
    Redis { connection: redis::aio::MultiplexedConnection, script: Arc<redis::Script> },
    Http { server: SocketAddr },
}

impl Publisher {
    pub async fn redis(url: &str) -> Result<Publisher, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(PUBLISH_TIMEOUT));
        let connection = client.get_multiplexed_async_connection_with_config(&config).await;
        let connection = connection.map_err(|e| format!("cannot connect to Redis at {url}: {e}"))?;
        Ok(Publisher::Redis { connection, script: Arc::new(publish_script()) })
    }

    /// One event on `channel`; `post` is the caller's connection to nchan.
    async fn publish(&self, post: &mut Post, channel: &str, data: &str) -> Result<(), String> {
        let (connection, script) = match self {
            Publisher::Redis { connection, script } => (connection, script),
            Publisher::Http { server } => return post.send(*server, &format!("/pub/{channel}"), data.as_bytes()).await,
        };
        let text = EventText::new(data.as_bytes(), Some(b"message"), None).map_err(|e| e.to_string())?;
        let publish = prepare_publish(script, channel.as_bytes(), &text);
        match publish.invoke_async::<u64>(&mut connection.clone()).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_timeout() => Err("redis: timeout".into()),
            Err(e) if e.is_io_error() || e.is_connection_dropped() => Err("redis: io".into()),
            Err(e) => Err(format!("redis: {:?}", e.kind())),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Published {
    pub ok: u64,
    /// Successful publishes per channel index.
    pub per_channel: Vec<u64>,
    pub errors: BTreeMap<String, u64>,
    /// From the first send to the last answer, or the offered schedule's
    /// length if that is longer.
    pub elapsed: Duration,
}

impl Published {
    fn new(channels: usize) -> Published {
        Published { per_channel: vec![0; channels], ..Published::default() }
    }

    fn count(&mut self, channel: usize, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.ok += 1;
                self.per_channel[channel] += 1;
            }
            Err(e) => *self.errors.entry(e).or_default() += 1,
        }
    }

    /// Adds up what the workers published; one not done by `limit` is stuck.
    async fn gather(workers: Vec<JoinHandle<Published>>, channels: usize, limit: Duration) -> Published {
        let mut all = Published::new(channels);
        let until = Instant::now() + limit;
        for worker in workers {
            match tokio::time::timeout_at(until.into(), worker).await {
                Ok(Ok(p)) => {
                    all.ok += p.ok;
                    all.per_channel.iter_mut().zip(&p.per_channel).for_each(|(a, b)| *a += b);
                    add(&mut all.errors, p.errors);
                }
                _ => all.count(0, Err("publisher stuck".into())),
            }
        }
        all
    }

    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-6)
    }

    /// The deliveries these events owe `streams` streams spread over the
    /// channels, stream n on channel n % channels.
    pub fn expected(&self, streams: u64) -> u64 {
        let n = self.per_channel.len() as u64;
        let on = |c: u64| (streams + n - 1 - c) / n;
        self.per_channel.iter().zip(0..).map(|(events, c)| events * on(c)).sum()
    }
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
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let workers = if matches!(publisher, Publisher::Redis { .. }) { REDIS_WORKERS } else { HTTP_WORKERS };
    let mut handles = Vec::new();
    for first in 0..workers.min(count) {
        let (publisher, channels) = (publisher.clone(), channels.to_vec());
        // Worker w sends events w, w + workers...: each on time unless
        // its previous publish is still under way.
        handles.push(tokio::spawn(async move {
            let (mut post, mut published) = (Post::default(), Published::new(channels.len()));
            for seq in (first..count).step_by(workers as usize) {
                let c = seq as usize % channels.len();
                let at = started + interval * seq as u32;
                if at > started + limit {
                    published.count(c, Err("not sent in time".into()));
                    continue;
                }
                tokio::time::sleep_until(at.into()).await;
                let data = Payload::text(tag, seq);
                let outcome = publisher.publish(&mut post, &channels[c], &data).await;
                published.count(c, outcome);
            }
            published
        }));
    }
    let mut all = Published::gather(handles, channels.len(), limit + PUBLISH_TIMEOUT).await;
    all.elapsed = started.elapsed().max(interval * count.saturating_sub(1) as u32);
    all
}

/// Publishes `count` events `interval` apart, as a broadcast does.
pub async fn every(publisher: &Publisher, channels: &[String], interval: Duration, count: u64, tag: u32) -> Published {
    let (rate, limit) = (1.0 / interval.as_secs_f64(), interval * count as u32 + Duration::from_secs(30));
    paced(publisher, channels, rate, count, tag, limit).await
}

/// Publishes on every channel for `duration`, as fast as the streams take
/// the events: at most `window` events of a channel are in flight, an event
/// being in flight until `seen[c]`, the highest number a probe stream on
/// channel c received, reaches it. Events are numbered from 1 per channel.
pub async fn closed_loop(
    publisher: &Publisher,
    channels: &[String],
    seen: Vec<watch::Receiver<u64>>,
    window: u64,
    tag: u32,
    duration: Duration,
) -> Published {
    let (started, n) = (Instant::now(), channels.len());
    let mut handles = Vec::new();
    for (c, mut seen) in seen.into_iter().enumerate() {
        let (publisher, channel) = (publisher.clone(), channels[c].clone());
        handles.push(tokio::spawn(async move {
            let (mut post, mut published) = (Post::default(), Published::new(n));
            // At most a million events a second per channel: far above any server's pace.
            for seq in 1..=duration.as_millis() as u64 * 1000 {
                let room = seen.wait_for(|&s| s + window >= seq);
                if started.elapsed() > duration {
                    break;
                }
                if !matches!(tokio::time::timeout(PUBLISH_TIMEOUT, room).await, Ok(Ok(_))) {
                    published.count(c, Err("no delivery for 5 s".into()));
                    break;
                }
                let data = Payload::text(tag, seq);
                let outcome = publisher.publish(&mut post, &channel, &data).await;
                published.count(c, outcome);
            }
            published
        }));
    }
    let mut all = Published::gather(handles, n, duration + 2 * PUBLISH_TIMEOUT).await;
    all.elapsed = started.elapsed();
    all
}

/// A keep-alive connection that POSTs messages to nchan, one at a time.
#[derive(Default)]
pub struct Post {
    socket: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Post {
    /// POSTs `body` to `path`, an error unless the status is 2xx. Reconnects
    /// once if the kept-alive connection was closed.
    async fn send(&mut self, server: SocketAddr, path: &str, body: &[u8]) -> Result<(), String> {
        for _ in 0..2 {
            let fresh = self.socket.is_none();
            match tokio::time::timeout(PUBLISH_TIMEOUT, self.try_send(server, path, body)).await {
                Ok(Ok(200..=299)) => return Ok(()),
                Ok(Ok(status)) => return Err(format!("status {status}")),
                Ok(Err(e)) if fresh => return Err(e.kind()),
                Ok(Err(_)) => self.socket = None,
                Err(_) => {
                    self.socket = None;
                    return Err("timeout".into());
                }
            }
        }
        Err("closed twice".into())
    }

    async fn try_send(&mut self, server: SocketAddr, path: &str, body: &[u8]) -> Result<u16, sse_client::Error> {
        if self.socket.is_none() {
            self.socket = Some(sse_client::connect(server, None).await?);
            self.buf.clear();
        }
        let socket = self.socket.as_mut().expect("connected");
        let length = body.len();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {server}\r\nContent-Type: text/plain\r\nContent-Length: {length}\r\n\r\n"
        );
        socket.write_all(&[head.as_bytes(), body].concat()).await?;
        let head = sse_client::read_head(socket, &mut self.buf).await?;
        // Read to its end, so that the next response starts clean.
        sse_client::read_body(socket, &head, &mut self.buf).await?;
        Ok(head.status)
    }
}

#[cfg(test)]
mod tests {
    use super::Payload;

    #[test]
    fn a_payload_reads_back() {
        let p = Payload::parse(Payload::text(7, 12).as_bytes()).unwrap();
        assert_eq!((p.tag, p.seq), (7, 12));
        assert!(p.sent_us > 0);
        for bad in ["7 12", "7 12 3 4", "7 12 3\n5"] {
            assert_eq!(Payload::parse(bad.as_bytes()), None);
        }
    }
}

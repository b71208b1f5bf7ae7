//! `redisse-bench subscribe`: one process holding many event streams.
//!
//! The coordinator runs several of these (the open-file limit is per
//! process) and talks to each over stdin/stdout, one JSON [`Answer`] line
//! per command:
//!
//! - at start: `ready`, once it reads commands.
//! - `open`: opens every stream (at most `--concurrency` connecting at a
//!   time, 0 for all at once), then answers `opened` with the connect
//!   times (until the response head) and the failures.
//! - `phase N`: from now on only payloads tagged N count; counters reset.
//! - `stats`: deliveries, bytes, open and closed streams; `report`: the
//!   same with the latency histogram.
//! - `quit` or end of input: exits (the sockets close with the process).
//!
//! The process also exits by itself after `--max-seconds`. With
//! `--reconnect`, a stream that ends is opened again as a browser's
//! EventSource would: after the server's `retry:` (else 3 s, Chrome's
//! default), with the last id it saw as `Last-Event-Id`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sse_client::{EventStream, Item, Read};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, Semaphore};

use crate::hist::Hist;
use crate::publish::Payload;
use crate::sys;

#[derive(clap::Args)]
pub struct Options {
    #[arg(long)]
    pub server: SocketAddr,
    /// Request path; `{c}` becomes the channel number.
    #[arg(long)]
    pub path: String,
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Global number of the first stream (its channel is number % channels).
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    #[arg(long)]
    pub count: usize,
    /// Connects from this many source addresses, 127.0.0.2 and up (0: the kernel's choice).
    #[arg(long, default_value_t = 0)]
    pub sources: u8,
    #[arg(long, default_value_t = 0)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 600.0)]
    pub max_seconds: f64,
    /// Sends a Cookie header of this many bytes with every request.
    #[arg(long, default_value_t = 0)]
    pub cookie_bytes: usize,
    #[arg(long)]
    pub reconnect: bool,
}

/// Milliseconds a reconnecting stream waits when the server sent no `retry:`.
const DEFAULT_RETRY_MS: u64 = 3000;
/// The least a stream waits between two attempts, whatever `retry:` says:
/// a server sending `retry: 0` must not make it hammer the server.
const LEAST_RETRY_MS: u64 = 100;

/// How long a stream may take to open, until its response head.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One line from a subscriber process to the coordinator.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Answer {
    Ready,
    Opened(Opened),
    Phase,
    Stats(Counters),
    Error { message: String },
}

/// Every stream of the process has been tried.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Opened {
    pub ok: u64,
    pub failed: u64,
    pub errors: BTreeMap<String, u64>,
    /// From `open` until the last stream was tried.
    pub elapsed_s: f64,
    /// Connect times, until the response head, in µs.
    pub connect: Hist,
}

/// Deliveries since the last `phase`, and the streams' state now.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Counters {
    pub received: u64,
    pub bytes: u64,
    pub open: u64,
    pub closed: u64,
    pub close_reasons: BTreeMap<String, u64>,
    /// Streams opened again after they ended (`--reconnect`).
    pub reconnects: u64,
    /// Events of the phase that came again with an id a stream had seen.
    pub duplicates: u64,
    /// Delivery latencies in µs: in answers to `report` only.
    pub latency: Option<Hist>,
}

/// What the process's streams share.
struct Shared {
    options: Options,
    cookie: String,
    connecting: Semaphore,
    tag: Cell<u32>,
    counters: RefCell<Counters>,
    latency: RefCell<Hist>,
    opened: RefCell<Opened>,
    all_tried: Notify,
}

pub fn run(options: Options) -> u8 {
    sys::raise_nofile();
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => tokio::task::LocalSet::new().block_on(&runtime, serve(options)),
        Err(e) => {
            eprintln!("subscribe: cannot start the runtime: {e}");
            1
        }
    }
}

async fn serve(options: Options) -> u8 {
    let deadline = tokio::time::sleep(Duration::from_secs_f64(options.max_seconds));
    let shared = Rc::new(Shared {
        cookie: session_cookie(options.cookie_bytes),
        connecting: Semaphore::new(match options.concurrency {
            0 => Semaphore::MAX_PERMITS,
            n => n,
        }),
        options,
        tag: Cell::new(0),
        counters: RefCell::default(),
        latency: RefCell::default(),
        opened: RefCell::default(),
        all_tried: Notify::new(),
    });
    tokio::pin!(deadline);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut opening: Option<Instant> = None;
    say(Answer::Ready);
    loop {
        tokio::select! {
            _ = &mut deadline => {
                eprintln!("subscribe: --max-seconds reached, exiting");
                return 0;
            }
            _ = shared.all_tried.notified(), if opening.is_some() => {
                let mut opened = shared.opened.take();
                opened.elapsed_s = opening.take().map_or(0.0, |t| t.elapsed().as_secs_f64());
                say(Answer::Opened(opened));
            }
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { return 0 };
                let mut words = line.split_whitespace();
                match (words.next(), words.next().and_then(|t| t.parse().ok())) {
                    (Some("open"), _) if opening.is_none() => {
                        opening = Some(Instant::now());
                        if shared.options.count == 0 {
                            shared.all_tried.notify_one();
                        }
                        for i in 0..shared.options.count {
                            tokio::task::spawn_local(stream(shared.clone(), shared.options.first + i));
                        }
                    }
                    (Some("phase"), Some(tag)) => {
                        shared.tag.set(tag);
                        let mut c = shared.counters.borrow_mut();
                        (c.received, c.bytes, c.reconnects, c.duplicates) = (0, 0, 0, 0);
                        shared.latency.take();
                        say(Answer::Phase);
                    }
                    (Some(command @ ("stats" | "report")), _) => {
                        let latency = (command == "report").then(|| shared.latency.borrow().clone());
                        say(Answer::Stats(Counters { latency, ..shared.counters.borrow().clone() }));
                    }
                    (Some("quit"), _) => return 0,
                    _ => say(Answer::Error { message: format!("unknown command {line:?}") }),
                }
            }
        }
    }
}

fn say(answer: Answer) {
    match serde_json::to_string(&answer) {
        Ok(line) => println!("{line}"),
        Err(e) => eprintln!("subscribe: cannot write an answer: {e}"),
    }
}

/// Stream number `n`: opens it, then counts its events until it ends;
/// with `--reconnect`, again and again.
async fn stream(shared: Rc<Shared>, n: usize) {
    let o = &shared.options;
    let path = o.path.replace("{c}", &(n % o.channels.max(1)).to_string());
    let sources = o.sources as usize;
    let source = (sources > 0).then(|| Ipv4Addr::new(127, 0, 0, 2 + (n % sources) as u8));
    let (mut last_id, mut retry_ms) = (None::<u64>, DEFAULT_RETRY_MS);
    for attempt in 0u64.. {
        let last_header = last_id.map(|id| id.to_string());
        let mut headers = vec![("Cache-Control", "no-cache")];
        if !shared.cookie.is_empty() {
            headers.push(("Cookie", shared.cookie.as_str()));
        }
        if let Some(id) = &last_header {
            headers.push(("Last-Event-Id", id));
        }
        // Only the first openings take turns: a browser reconnects when it will.
        let permit = match attempt {
            0 => Some(shared.connecting.acquire().await),
            _ => None,
        };
        let started = Instant::now();
        let open = EventStream::open(o.server, source, &path, &headers);
        let opened = match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
            Ok(Ok(stream)) if stream.head.status == 200 => Ok(stream),
            Ok(Ok(stream)) => Err(format!("status {}", stream.head.status)),
            Ok(Err(e)) => Err(e.kind()),
            Err(_) => Err("timeout".to_string()),
        };
        drop(permit);
        if attempt == 0 {
            tried(&shared, &opened, started);
        } else {
            let mut c = shared.counters.borrow_mut();
            match &opened {
                Ok(_) => (c.open, c.reconnects) = (c.open + 1, c.reconnects + 1),
                Err(e) => *c.close_reasons.entry(format!("reopening: {e}")).or_default() += 1,
            }
        }
        match opened {
            Ok(stream) => read_events(&shared, stream, &mut last_id, &mut retry_ms).await,
            Err(_) if attempt == 0 => return,
            Err(_) => {}
        }
        if !o.reconnect {
            return;
        }
        tokio::time::sleep(Duration::from_millis(retry_ms.max(LEAST_RETRY_MS))).await;
    }
}

/// Counts the first try of a stream into `opened`.
fn tried(shared: &Shared, opened: &Result<EventStream, String>, started: Instant) {
    let mut tried = shared.opened.borrow_mut();
    match opened {
        Ok(_) => {
            tried.ok += 1;
            tried.connect.record(started.elapsed().as_micros() as u64);
            shared.counters.borrow_mut().open += 1;
        }
        Err(e) => {
            tried.failed += 1;
            *tried.errors.entry(e.clone()).or_default() += 1;
        }
    }
    if tried.ok + tried.failed == shared.options.count as u64 {
        shared.all_tried.notify_one();
    }
}

/// Counts a stream's events until it ends: each event of the phase once,
/// one whose id the stream saw before as a duplicate.
async fn read_events(shared: &Shared, mut stream: EventStream, last_id: &mut Option<u64>, retry_ms: &mut u64) {
    let reason = loop {
        let read = stream.read(|item| {
            let event = match item {
                Item::Event(event) => event,
                Item::Retry(ms) => return *retry_ms = ms,
                Item::Comment(_) => return,
            };
            let id = event.id.and_then(|id| std::str::from_utf8(id).ok()?.parse::<u64>().ok());
            // Only a reconnecting stream can be sent an event twice.
            let seen = shared.options.reconnect && id.is_some_and(|id| last_id.is_some_and(|last| id <= last));
            *last_id = id.or(*last_id).max(*last_id);
            let Some(p) = Payload::parse(event.data).filter(|p| p.tag == shared.tag.get()) else {
                return;
            };
            let mut c = shared.counters.borrow_mut();
            if seen {
                c.duplicates += 1;
                return;
            }
            c.received += 1;
            let latency = sys::now_us().saturating_sub(p.sent_us);
            shared.latency.borrow_mut().record(latency);
        });
        match read.await {
            Ok(Read::Data(n)) => shared.counters.borrow_mut().bytes += n as u64,
            Ok(Read::End) => break "ended".to_string(),
            Ok(Read::Closed) => break "closed by server".to_string(),
            Err(e) => break e.kind(),
        }
    };
    let mut c = shared.counters.borrow_mut();
    c.open -= 1;
    c.closed += 1;
    *c.close_reasons.entry(reason).or_default() += 1;
}

/// A cookie like a Rails session's (`_app_session=<base64>--<digest>`),
/// `bytes` long; none for 0.
fn session_cookie(bytes: usize) -> String {
    const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const HEX: &[u8] = b"0123456789abcdef";
    const DIGEST: usize = 40;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = move |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 32) as usize % n as usize
    };
    let mut cookie = String::from("_app_session=");
    while cookie.len() < bytes.saturating_sub(DIGEST + 2) {
        cookie.push(BASE64[random(64)] as char);
    }
    cookie.push_str("--");
    while cookie.len() < bytes {
        cookie.push(HEX[random(16)] as char);
    }
    if bytes == 0 {
        cookie.clear();
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_cookie_has_the_size_asked_for() {
        let cookie = session_cookie(6144);
        assert_eq!(cookie.len(), 6144);
        assert!(cookie.starts_with("_app_session=") && cookie[6144 - 42..].starts_with("--"));
        assert_eq!(session_cookie(0), "");
    }
}

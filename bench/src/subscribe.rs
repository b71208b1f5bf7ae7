//! `redisse-bench subscribe`: one process holding many event streams.
//!
//! The coordinator ([`crate::subscribers`]) runs several of these (the
//! open-file limit is per process) and sends each commands on stdin, one a
//! line; every command but `quit` gets one JSON line back:
//!
//! - `open`: opens the process's streams (at most the spec's `concurrency`
//!   connecting at a time); answers [`Opened`] once each was tried.
//! - `phase N`: from now on only payloads tagged N count; counters reset.
//! - `stats`: the [`Counters`]; `report`: the counters and the latency histogram (µs).
//! - `quit` or end of input: exits (the sockets close with the process).
//!
//! The process also exits by itself after [`LIFETIME`]. With the spec's
//! `reconnect`, a stream that ends is opened again as a browser's
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
use tokio::sync::{mpsc, Semaphore};

use crate::hist::Hist;
use crate::publish::Payload;
use crate::subscribers::Spec;
use crate::sys;

#[derive(clap::Args)]
pub struct Options {
    /// The scenario's [`Spec`], as JSON.
    #[arg(long, value_parser = |json: &str| serde_json::from_str::<Spec>(json))]
    spec: Spec,
    /// This process holds `count` of the spec's streams, numbered from `first`.
    #[arg(long)]
    first: usize,
    #[arg(long)]
    count: usize,
}

/// Longer than any scenario: a process its coordinator lost does not linger.
const LIFETIME: Duration = Duration::from_secs(1800);

const DEFAULT_RETRY_MS: u64 = 3000;
/// The least a stream waits between two attempts, whatever `retry:` says:
/// a server sending `retry: 0` must not make it hammer the server.
const LEAST_RETRY_MS: u64 = 100;

/// Until the response head.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The answer to `open`: every stream of the process has been tried.
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
}

struct Shared {
    spec: Spec,
    cookie: String,
    connecting: Semaphore,
    tag: Cell<u32>,
    counters: RefCell<Counters>,
    latency: RefCell<Hist>,
}

pub fn run(options: Options) -> u8 {
    sys::raise_nofile();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let serve = async { tokio::time::timeout(LIFETIME, serve(options)).await };
    tokio::task::LocalSet::new().block_on(&runtime, serve).unwrap_or_else(|_| {
        eprintln!("subscribe: {LIFETIME:?} passed, exiting");
        0
    })
}

async fn serve(options: Options) -> u8 {
    let Options { spec, first, count } = options;
    let shared = Rc::new(Shared {
        cookie: session_cookie(spec.cookie_bytes),
        connecting: Semaphore::new(if spec.concurrency == 0 { Semaphore::MAX_PERMITS } else { spec.concurrency }),
        spec,
        tag: Cell::new(0),
        counters: RefCell::default(),
        latency: RefCell::default(),
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut words = line.split_whitespace();
        match (words.next(), words.next().and_then(|t| t.parse().ok())) {
            (Some("open"), _) => say(&open(&shared, first..first + count).await),
            (Some("phase"), Some(tag)) => {
                shared.tag.set(tag);
                let mut c = shared.counters.borrow_mut();
                (c.received, c.bytes, c.reconnects, c.duplicates) = (0, 0, 0, 0);
                shared.latency.take();
                say(&());
            }
            (Some("stats"), _) => say(&*shared.counters.borrow()),
            (Some("report"), _) => say(&(&*shared.counters.borrow(), &*shared.latency.borrow())),
            (Some("quit"), _) => break,
            _ => {
                eprintln!("subscribe: unknown command {line:?}");
                return 1;
            }
        }
    }
    0
}

fn say(answer: &impl Serialize) {
    println!("{}", serde_json::to_string(answer).expect("answers are plain data"));
}

/// Opens the streams numbered `numbers`; returns once each was tried.
async fn open(shared: &Rc<Shared>, numbers: std::ops::Range<usize>) -> Opened {
    let started = Instant::now();
    let (tried, mut outcomes) = mpsc::unbounded_channel();
    for n in numbers.clone() {
        tokio::task::spawn_local(stream(shared.clone(), n, tried.clone()));
    }
    let mut opened = Opened::default();
    for _ in numbers.clone() {
        match outcomes.recv().await.expect("every stream reports its first try") {
            Ok(connect_us) => opened.connect.record(connect_us),
            Err(e) => *opened.errors.entry(e).or_default() += 1,
        }
    }
    opened.failed = opened.errors.values().sum();
    opened.ok = numbers.len() as u64 - opened.failed;
    opened.elapsed_s = started.elapsed().as_secs_f64();
    opened
}

/// Stream number `n`: opens it, tells `tried` how its first try went, then
/// counts its events until it ends; with `--reconnect`, again and again.
async fn stream(shared: Rc<Shared>, n: usize, tried: mpsc::UnboundedSender<Result<u64, String>>) {
    let spec = &shared.spec;
    let path = spec.path.replace("{c}", &(n % spec.channels.max(1)).to_string());
    let source = Some(Ipv4Addr::new(127, 0, 0, 2 + (n % spec.sources.clamp(1, 250)) as u8));
    let (mut last_id, mut retry_ms) = (None::<u64>, DEFAULT_RETRY_MS);
    for attempt in 0u64.. {
        // A header is sent only with a value.
        let last_event_id = last_id.map_or(String::new(), |id| id.to_string());
        let headers = [("Cache-Control", "no-cache"), ("Cookie", &shared.cookie), ("Last-Event-Id", &last_event_id)];
        let headers: Vec<_> = headers.into_iter().filter(|(_, value)| !value.is_empty()).collect();
        // Only the first openings take turns: a browser reconnects when it will.
        let permit = if attempt == 0 { Some(shared.connecting.acquire().await) } else { None };
        let started = Instant::now();
        let opened = open_stream(spec.server, source, &path, &headers, CONNECT_TIMEOUT).await;
        let connect_us = started.elapsed().as_micros() as u64;
        drop(permit);
        match (opened, attempt) {
            (Err(e), 0) => {
                let _ = tried.send(Err(e));
                return;
            }
            (Err(e), _) => {
                *shared.counters.borrow_mut().close_reasons.entry(format!("reopening: {e}")).or_default() += 1
            }
            (Ok(stream), _) => {
                if attempt == 0 {
                    let _ = tried.send(Ok(connect_us));
                } else {
                    shared.counters.borrow_mut().reconnects += 1;
                }
                read_events(&shared, stream, &mut last_id, &mut retry_ms).await;
            }
        }
        if !spec.reconnect {
            return;
        }
        tokio::time::sleep(Duration::from_millis(retry_ms.max(LEAST_RETRY_MS))).await;
    }
}

/// Opens an event stream: an error unless the server answers 200 within `timeout`.
pub async fn open_stream(
    server: SocketAddr,
    source: Option<Ipv4Addr>,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<EventStream, String> {
    match tokio::time::timeout(timeout, EventStream::open(server, source, path, headers)).await {
        Ok(Ok(stream)) if stream.head.status == 200 => Ok(stream),
        Ok(Ok(stream)) => Err(format!("status {}", stream.head.status)),
        Ok(Err(e)) => Err(e.kind()),
        Err(_) => Err("timeout".to_string()),
    }
}

/// Counts a stream as open and its events until it ends: each event of the
/// phase once, one whose id the stream saw before as a duplicate.
async fn read_events(shared: &Shared, mut stream: EventStream, last_id: &mut Option<u64>, retry_ms: &mut u64) {
    shared.counters.borrow_mut().open += 1;
    let reason = loop {
        let read = stream.read(|item| {
            let event = match item {
                Item::Event(event) => event,
                Item::Retry(ms) => return *retry_ms = ms,
                Item::Comment(_) => return,
            };
            let id = event.id.and_then(|id| std::str::from_utf8(id).ok()?.parse::<u64>().ok());
            // Only a reconnecting stream can be sent an event twice.
            let seen = shared.spec.reconnect && id.is_some_and(|id| last_id.is_some_and(|last| id <= last));
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
            shared.latency.borrow_mut().record(sys::now_us().saturating_sub(p.sent_us));
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
/// `bytes` long (at least 60); none for 0. Its content does not matter: a
/// server has no reason to keep any of it.
fn session_cookie(bytes: usize) -> String {
    if bytes == 0 {
        return String::new();
    }
    let body = "_app_session=".to_string() + &"eyJzZXNzaW9uX2lkIjoi".repeat(bytes / 20 + 1);
    let digest = "0123456789abcdef".repeat(3);
    format!("{}--{}", &body[..bytes.max(60) - 42], &digest[..40])
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

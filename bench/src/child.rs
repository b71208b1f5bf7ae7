//! `redisse-bench subscribe`: one process holding many event streams.
//!
//! The coordinator runs several of these (the open-file limit is per
//! process) and talks to each over stdin/stdout, one JSON line per answer
//! (an [`Answer`]):
//!
//! - at start: `{"event":"ready"}`, once it reads commands.
//! - `open`: opens every stream (at most `--concurrency` connecting at a
//!   time, 0 for all at once), then answers `{"event":"opened",...}` with
//!   the connect times (until the response head) and the failures.
//! - `phase N`: from now on only payloads tagged N count; counters reset.
//! - `stats`: deliveries, bytes, open and closed streams, CPU seconds.
//! - `report`: the same plus the latency histogram.
//! - `quit` or end of input: exits (the sockets close with the process).
//!
//! The process also exits by itself after `--max-seconds`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::{Notify, Semaphore};

use crate::hist::Hist;
use crate::http::{open_stream, Chunked, OpenError};
use crate::sse::{Payload, SseParser};
use crate::sys;

pub struct Options {
    pub server: SocketAddr,
    /// Request path; `{c}` becomes the channel number.
    pub path_template: String,
    pub channels: usize,
    /// Global number of the first stream (channel = number % channels).
    pub first: usize,
    pub count: usize,
    pub sources: Vec<Ipv4Addr>,
    pub concurrency: usize,
    pub connect_timeout: Duration,
    pub max_seconds: f64,
}

/// One line from a subscriber process to the coordinator.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Answer {
    Ready,
    Opened(OpenedAnswer),
    Phase { tag: u32 },
    Stats(Counters),
    Report(Counters),
    Error { message: String },
}

/// Every stream of the process has been tried.
#[derive(Debug, Serialize, Deserialize)]
pub struct OpenedAnswer {
    pub ok: u64,
    pub failed: u64,
    pub errors: BTreeMap<String, u64>,
    /// From `open` until the last stream was tried.
    pub elapsed_us: u64,
    /// Connect times, until the response head, in µs.
    pub connect: Hist,
}

/// Deliveries since the last `phase`, and the streams' state now.
#[derive(Debug, Serialize, Deserialize)]
pub struct Counters {
    pub received: u64,
    /// Deliveries tagged with an earlier phase.
    pub stale: u64,
    pub bytes: u64,
    pub open: u64,
    pub closed: u64,
    pub close_reasons: BTreeMap<String, u64>,
    pub cpu_s: f64,
    /// Delivery latencies in µs: in `report` answers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Hist>,
}

#[derive(Default)]
struct State {
    tag: Cell<u32>,
    received: Cell<u64>,
    stale: Cell<u64>,
    bytes: Cell<u64>,
    open: Cell<u64>,
    closed: Cell<u64>,
    failed: Cell<u64>,
    attempted: Cell<u64>,
    errors: RefCell<BTreeMap<String, u64>>,
    close_reasons: RefCell<BTreeMap<String, u64>>,
    latency: RefCell<Hist>,
    connect: RefCell<Hist>,
    open_elapsed_us: Cell<u64>,
}

pub fn run(options: Options) -> i32 {
    sys::raise_nofile();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("subscribe: cannot start the runtime: {e}");
            return 1;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, serve(options))
}

async fn serve(options: Options) -> i32 {
    let options = Rc::new(options);
    let state = Rc::new(State::default());
    let all_attempted = Rc::new(Notify::new());
    let deadline = tokio::time::sleep(Duration::from_secs_f64(options.max_seconds));
    tokio::pin!(deadline);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut opening: Option<Instant> = None;
    say(&Answer::Ready);
    loop {
        tokio::select! {
            _ = &mut deadline => {
                eprintln!("subscribe: --max-seconds reached, exiting");
                return 0;
            }
            _ = all_attempted.notified(), if opening.is_some() => {
                let started = opening.take().expect("opening");
                state.open_elapsed_us.set(started.elapsed().as_micros() as u64);
                say(&Answer::Opened(OpenedAnswer {
                    ok: state.attempted.get() - state.failed.get(),
                    failed: state.failed.get(),
                    errors: state.errors.borrow().clone(),
                    elapsed_us: state.open_elapsed_us.get(),
                    connect: state.connect.borrow().clone(),
                }));
            }
            line = lines.next_line() => {
                let line = match line {
                    Ok(Some(line)) => line,
                    _ => return 0,
                };
                let mut words = line.split_whitespace();
                match words.next() {
                    Some("open") => {
                        if opening.is_none() && state.attempted.get() == 0 {
                            opening = Some(Instant::now());
                            start_streams(&options, &state, &all_attempted);
                        }
                    }
                    Some("phase") => {
                        state.tag.set(words.next().and_then(|t| t.parse().ok()).unwrap_or(0));
                        state.received.set(0);
                        state.stale.set(0);
                        state.bytes.set(0);
                        *state.latency.borrow_mut() = Hist::default();
                        say(&Answer::Phase { tag: state.tag.get() });
                    }
                    Some("stats") => say(&Answer::Stats(counters(&state, false))),
                    Some("report") => say(&Answer::Report(counters(&state, true))),
                    Some("quit") => return 0,
                    _ => say(&Answer::Error { message: format!("unknown command {line:?}") }),
                }
            }
        }
    }
}

fn say(answer: &Answer) {
    match serde_json::to_string(answer) {
        Ok(line) => println!("{line}"),
        Err(e) => eprintln!("subscribe: cannot write an answer: {e}"),
    }
}

fn counters(state: &State, with_latency: bool) -> Counters {
    Counters {
        received: state.received.get(),
        stale: state.stale.get(),
        bytes: state.bytes.get(),
        open: state.open.get(),
        closed: state.closed.get(),
        close_reasons: state.close_reasons.borrow().clone(),
        cpu_s: sys::self_cpu_seconds(),
        latency: with_latency.then(|| state.latency.borrow().clone()),
    }
}

fn start_streams(options: &Rc<Options>, state: &Rc<State>, all_attempted: &Rc<Notify>) {
    let permits = (options.concurrency > 0).then(|| Arc::new(Semaphore::new(options.concurrency)));
    if options.count == 0 {
        all_attempted.notify_one();
    }
    for i in 0..options.count {
        let n = options.first + i;
        let channel = n % options.channels.max(1);
        let path = options.path_template.replace("{c}", &channel.to_string());
        let source =
            (!options.sources.is_empty()).then(|| options.sources[n % options.sources.len()]);
        let (options, state, all_attempted, permits) = (
            options.clone(),
            state.clone(),
            all_attempted.clone(),
            permits.clone(),
        );
        tokio::task::spawn_local(async move {
            let permit = match &permits {
                Some(p) => p.clone().acquire_owned().await.ok(),
                None => None,
            };
            let started = Instant::now();
            let mut buf = Vec::with_capacity(4096);
            let opened = tokio::time::timeout(
                options.connect_timeout,
                open_stream(source, options.server, &path, &mut buf),
            )
            .await;
            drop(permit);
            state.attempted.set(state.attempted.get() + 1);
            let result = match opened {
                Ok(Ok(ok)) => Ok(ok),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(OpenError::Timeout),
            };
            match &result {
                Ok(_) => {
                    state
                        .connect
                        .borrow_mut()
                        .record(started.elapsed().as_micros() as u64);
                    state.open.set(state.open.get() + 1);
                }
                Err(e) => {
                    state.failed.set(state.failed.get() + 1);
                    *state.errors.borrow_mut().entry(e.kind()).or_default() += 1;
                }
            }
            if state.attempted.get() == options.count as u64 {
                all_attempted.notify_one();
            }
            let Ok((stream, head)) = result else { return };
            let reason = read_events(stream, head.chunked, buf, &state).await;
            state.open.set(state.open.get() - 1);
            state.closed.set(state.closed.get() + 1);
            *state.close_reasons.borrow_mut().entry(reason).or_default() += 1;
        });
    }
}

/// Reads until the stream ends; returns why it ended.
async fn read_events(
    mut stream: tokio::net::TcpStream,
    chunked: bool,
    leftover: Vec<u8>,
    state: &State,
) -> String {
    let mut decoder = chunked.then(Chunked::default);
    let mut parser = SseParser::default();
    let mut filled = leftover.len();
    let mut buf = leftover;
    buf.resize(filled.max(8192), 0);
    loop {
        if filled > 0 {
            state.bytes.set(state.bytes.get() + filled as u64);
            let now = sys::now_us();
            let mut on_event = |p: Payload| {
                if p.tag == state.tag.get() {
                    state.received.set(state.received.get() + 1);
                    state
                        .latency
                        .borrow_mut()
                        .record(now.saturating_sub(p.sent_us));
                } else {
                    state.stale.set(state.stale.get() + 1);
                }
            };
            let data = &buf[..filled];
            match &mut decoder {
                Some(d) => match d.feed(data, &mut |bytes| parser.feed(bytes, &mut on_event)) {
                    Ok(true) => return "ended".into(),
                    Ok(false) => {}
                    Err(e) => return format!("protocol: {e}"),
                },
                None => parser.feed(data, &mut on_event),
            }
        }
        filled = match stream.read(&mut buf).await {
            Ok(0) => return "closed by server".into(),
            Ok(n) => n,
            Err(e) => return OpenError::Io(e).kind(),
        };
    }
}

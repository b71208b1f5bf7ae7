//! What an open stream holds: what it subscribes, never what its request
//! carried. A Rails app's cookies come with every stream request, and a
//! request head may be 64 KiB: once the stream is open, none of it stays.
//!
//! Measured with an allocator that counts the bytes in use, the server
//! running in this process: the heap that each of a crowd of open streams
//! adds, with and without the request's extra bytes.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use redisse::server::channel_source::ChannelSource;
use support::{RedisServer, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Counts the bytes allocated and not freed yet.
struct Counting;

static IN_USE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes to the system allocator as it is; only the count is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc(layout);
        if !pointer.is_null() {
            IN_USE.fetch_add(layout.size() as isize, Relaxed);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc_zeroed(layout);
        if !pointer.is_null() {
            IN_USE.fetch_add(layout.size() as isize, Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        System.dealloc(pointer, layout);
        IN_USE.fetch_sub(layout.size() as isize, Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        let moved = System.realloc(pointer, layout, size);
        if !moved.is_null() {
            IN_USE.fetch_add(size as isize - layout.size() as isize, Relaxed);
        }
        moved
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Opens a stream with `request` and reads its response head.
async fn open(addr: std::net::SocketAddr, request: &[u8]) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut head = [0u8; 1024];
    let mut read = 0;
    while !head[..read].windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut head[read..]).await.unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&head[..read]));
        read += n;
    }
    assert!(head.starts_with(b"HTTP/1.1 200 OK\r\n"));
    socket
}

/// The heap each of `count` open streams adds to a fresh server, stream
/// `i` opened with `request(i)`.
async fn heap_per_stream(count: usize, request: impl Fn(usize) -> Vec<u8>) -> f64 {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, ChannelSource::Query).await;
    // What is made once, on first use (the command connection...), is made.
    drop(open(server.addr, &request(count)).await);
    server.wait_for_streams(0).await;
    let before = IN_USE.load(Relaxed);
    let mut streams = Vec::new();
    for i in 0..count {
        streams.push(open(server.addr, &request(i)).await);
    }
    server.wait_for_streams(count as u64).await;
    let added = IN_USE.load(Relaxed) - before;
    drop(streams);
    server.wait_for_streams(0).await;
    server.stop().await;
    added as f64 / count as f64
}

fn request(query: &str, headers: &str, after: &str) -> Vec<u8> {
    format!("GET /?{query} HTTP/1.1\r\nAccept: text/event-stream\r\n{headers}\r\n{after}")
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streams_memory_depends_on_its_channels_not_on_its_request() {
    // The sockets of the first crowd measured would cost it more than the
    // others (the runtime grows its tables once): a crowd first, unmeasured.
    heap_per_stream(200, |i| request(&format!("warm{i}"), "", "")).await;

    let cookie = format!("Cookie: _app_session={}\r\n", "c".repeat(6000));
    let plain = heap_per_stream(200, |i| request(&format!("c{i}"), "", "")).await;
    let cookies = heap_per_stream(200, |i| request(&format!("c{i}"), &cookie, "")).await;
    println!("one channel: {plain:.0} bytes per stream; with a 6 KB cookie: {cookies:.0}");
    assert!(
        cookies <= plain * 1.1,
        "{cookies:.0} bytes against {plain:.0}"
    );

    // 1,000 channels of 48 bytes, then with 8 KB of padding in the head
    // and a stray byte after it.
    let channels = |i: usize| {
        (0..1000)
            .map(|c| format!("{:0>48}", format!("s{i}c{c}")))
            .collect::<Vec<_>>()
            .join("&")
    };
    let padding = format!("X-Padding: {}\r\n", "p".repeat(8192));
    let many = heap_per_stream(50, |i| request(&channels(i), "", "")).await;
    let padded = heap_per_stream(50, |i| request(&channels(i), &padding, "x")).await;
    println!(
        "1,000 channels of 48 bytes: {:.1} KiB per stream; with 8 KB of padding and a stray byte: {:.1} KiB",
        many / 1024.0,
        padded / 1024.0
    );
    assert!(padded <= many * 1.1, "{padded:.0} bytes against {many:.0}");
}

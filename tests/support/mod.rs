//! What the integration tests share: a real `redis-server` on a free port,
//! the server run in this process, and a small SSE reader over loopback.

// Each test binary uses some of it.
#![allow(dead_code, unused_imports)]

mod nginx;
mod redis_cluster;
mod redis_server;
mod server_process;
mod sse;
mod test_server;

use std::net::TcpListener;
use std::time::{Duration, Instant};

pub use nginx::Nginx;
pub use redis_cluster::RedisCluster;
pub use redis_server::{RedisServer, Sentinels, TestCertificates, MASTER_NAME, SERVER_ACL_RULES};
pub use server_process::ServerProcess;
pub use sse::{exchange, Event, SseReader};
pub use test_server::{Setup, TestServer};

/// How long any single wait of a test may take.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of one metric in the Prometheus text.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
        .parse()
        .unwrap()
}

/// Polls `condition` until it holds, for at most `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

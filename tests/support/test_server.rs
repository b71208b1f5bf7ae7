//! The server as a library: `server::run` in this process, on a free port
//! of 127.0.0.1, against a real Redis.

use std::time::Duration;

use redisse::redis_url::RedisUrl;
use redisse::server::channel_source::ChannelSource;
use redisse::server::{self, Access, Config, Limits, Stop};
use tokio::sync::watch;

use super::{exchange, RedisServer, SseReader, DEADLINE};

/// What a test server is started with, beyond its Redis and channels.
#[derive(Default)]
pub struct Setup {
    pub limits: Limits,
    pub access: Access,
}

pub struct TestServer {
    pub addr: std::net::SocketAddr,
    stop: watch::Sender<u32>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(redis: &RedisServer, channels: ChannelSource) -> Self {
        Self::start_with(redis, channels, Setup::default()).await
    }

    pub async fn start_with(redis: &RedisServer, channels: ChannelSource, setup: Setup) -> Self {
        Self::start_url(&redis.url(), channels, setup).await
    }

    /// On any Redis URL (a Sentinel group's, say).
    pub async fn start_url(url: &str, channels: ChannelSource, setup: Setup) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config {
            redis: RedisUrl::parse(url).unwrap(),
            heartbeat: Duration::from_secs(15),
            drain: Duration::ZERO,
            channels,
            limits: setup.limits,
            access: setup.access,
        };
        let (stop, stops) = watch::channel(0);
        let task = tokio::spawn(async move {
            server::run(listener, config, Stop::new(stops))
                .await
                .unwrap();
        });
        let server = TestServer { addr, stop, task };
        // Up once its health says so (both Redis connections).
        tokio::time::timeout(DEADLINE, async {
            while !exchange(
                server.addr,
                b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
            )
            .await
            .starts_with("HTTP/1.1 200 OK\r\n")
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("server connected to Redis");
        server.wait_for_streams(0).await;
        server
    }

    /// The stats JSON.
    pub async fn stats(&self) -> String {
        let response = exchange(
            self.addr,
            b"GET / HTTP/1.1\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        response.split_once("\r\n\r\n").unwrap().1.to_string()
    }

    /// Waits until the stats count `count` open streams.
    pub async fn wait_for_streams(&self, count: u64) {
        let expected = format!("\"connected\": {count},");
        tokio::time::timeout(DEADLINE, async {
            while !self.stats().await.contains(&expected) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the server never had {count} streams open"));
    }

    pub async fn open(&self, path: &str, headers: &[(&str, &str)]) -> SseReader {
        SseReader::open(self.addr, path, headers).await
    }

    pub async fn stop(self) {
        self.stop.send_modify(|stops| *stops += 1);
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("stops in time")
            .unwrap();
    }
}

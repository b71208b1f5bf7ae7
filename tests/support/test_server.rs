//! The server as a library: `server::run` in this process, on a free port
//! of 127.0.0.1, against a real Redis.

use std::time::Duration;

use redisse::redis_url::RedisUrl;
use redisse::server::channels::ChannelSource;
use redisse::server::{self, Config};
use tokio::sync::oneshot;

use super::{RedisServer, SseReader, DEADLINE};

pub struct TestServer {
    pub addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(redis: &RedisServer, channels: ChannelSource) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config {
            redis: RedisUrl::parse(&redis.url()).unwrap(),
            heartbeat: Duration::from_secs(15),
            channels,
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            server::run(listener, config, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let server = TestServer {
            addr,
            stop: Some(stop),
            task,
        };
        // Up once a stream request no longer gets a 503.
        tokio::time::timeout(DEADLINE, async {
            loop {
                let reader = server.open("/?probe", &[]).await;
                if reader.status != 503 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("server connected to Redis");
        server
    }

    pub async fn open(&self, path: &str, headers: &[(&str, &str)]) -> SseReader {
        SseReader::open(self.addr, path, headers).await
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("stops in time")
            .unwrap();
    }
}

//! `rediss://`: the publisher and the server over TLS, the server's
//! certificate checked against a private CA given in `$REDISSE_REDIS_CA`.
//! One test in its own binary: it sets an environment variable.

mod support;

use std::time::Duration;

use redisse::publisher::{PublishError, Publisher};
use redisse::redis_url::CA_VARIABLE;
use redisse::server::channels::ChannelSource;
use support::{RedisServer, TestCertificates, TestServer};

fn publisher(url: &str) -> Publisher {
    Publisher::new(url, Duration::from_secs(2), Duration::from_secs(2)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_and_streams_over_tls_checking_the_servers_certificate() {
    let certs = TestCertificates::make();
    let redis = RedisServer::start_tls(&certs);
    let url = redis.url();
    assert!(url.starts_with("rediss://"));

    // Not a public CA's certificate: refused, and the message says why.
    let refused = tokio::task::spawn_blocking({
        let url = url.clone();
        move || publisher(&url).publish(b"tls", b"message", b"x")
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(refused, PublishError::Connection { .. }),
        "{refused}"
    );
    assert!(
        refused.to_string().to_lowercase().contains("certificate"),
        "{refused}"
    );

    // SAFETY of the environment: this binary's only test sets it.
    std::env::set_var(CA_VARIABLE, certs.path("ca.crt"));
    let server = TestServer::start(&redis, ChannelSource::Query).await;
    let mut stream = server.open("/?tls", &[]).await;
    assert_eq!(stream.status, 200);
    server.wait_for_streams(1).await;
    let id =
        tokio::task::spawn_blocking(move || publisher(&url).publish(b"tls", b"message", b"secret"))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(id, 1);
    stream
        .wait_for("the event", |s| s.published_ids() == vec![1])
        .await;
    assert_eq!(stream.events().last().unwrap().data, "secret");
    server.stop().await;
}

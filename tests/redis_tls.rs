//! `rediss://`: the publisher and the server over TLS, the server's
//! certificate checked against the machine's trust store (`SSL_CERT_FILE`,
//! as OpenSSL and redis-rb read it), or a private CA given in
//! `$REDISSE_REDIS_CA`. One test in its own binary: it sets environment
//! variables.

mod support;

use std::time::Duration;

use redisse::publisher::{PublishError, Publisher};
use redisse::redis_url::CA_VARIABLE;
use redisse::server::channel_source::ChannelSource;
use support::{RedisServer, ServerProcess, TestCertificates, TestServer};

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

    // The machine's trust store as OpenSSL reads it: a private CA in
    // SSL_CERT_FILE is trusted, by the publisher and by the server.
    // SAFETY of the environment: this binary's only test sets it.
    std::env::set_var("SSL_CERT_FILE", certs.path("ca.crt"));
    let ca = certs.path("ca.crt");
    let mut binary =
        ServerProcess::spawn_with_env(&["--redis", &url], None, &[("SSL_CERT_FILE", ca.as_str())]);
    binary.wait_for_log("connected to Redis");
    let published = tokio::task::spawn_blocking({
        let url = url.clone();
        move || publisher(&url).publish(b"tls", b"message", b"trusted")
    });
    assert_eq!(published.await.unwrap().unwrap(), 1);
    drop(binary);

    // $REDISSE_REDIS_CA: that CA alone.
    std::env::remove_var("SSL_CERT_FILE");
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
    assert_eq!(id, 2);
    stream
        .wait_for("the event", |s| s.published_ids() == vec![2])
        .await;
    assert_eq!(stream.events().last().unwrap().data, "secret");
    server.stop().await;
}

//! The plain `redisse` binary as operators run it.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{wait_until, RedisServer, ServerProcess, DEADLINE};

const STREAM_REQUEST: &[u8] = b"GET /?c HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n";
const STATS_REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nAccept: application/json\r\nConnection: close\r\n\r\n";

/// Opens `count` streams, each answered 200.
fn open_streams(server: &ServerProcess, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut socket = server.connect();
            socket.write_all(STREAM_REQUEST).unwrap();
            assert_eq!(status_line(&socket), "HTTP/1.1 200 OK\r\n");
            socket
        })
        .collect()
}

/// Reads the status line of the answer on `socket`, within 5 s.
fn status_line(socket: &TcpStream) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(socket)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("no answer within 5 s: {e}"));
    line
}

#[test]
fn a_full_house_answers_every_client_and_the_stats() {
    let redis = RedisServer::start();
    // 128 descriptors: room for about 110 streams (the rest is kept for
    // Redis, stats, refusals, and what is open at start), and far fewer
    // than the clients below.
    let mut server = ServerProcess::spawn(&["--redis", &redis.url()], Some(128));
    server.wait_for_log("streams, 1000 channels each");
    let capacity: usize = server
        .log()
        .iter()
        .find_map(|line| {
            line.split_once("at most ")?
                .1
                .split_once(" streams")?
                .0
                .parse()
                .ok()
        })
        .expect("the log says how many streams");
    assert!((100..=112).contains(&capacity), "{capacity}");

    let streams = open_streams(&server, capacity);
    let stats = server.get(STATS_REQUEST);
    assert!(stats.starts_with("HTTP/1.1 200 OK\r\n"), "{stats}");
    assert!(
        stats.contains(&format!("\"connected\": {capacity},")),
        "{stats}"
    );

    // 300 more, all at once and held open, far past the descriptors
    // left: each gets a 503, none hangs in the backlog.
    let extra: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut socket = server.connect();
            socket.write_all(STREAM_REQUEST).unwrap();
            socket
        })
        .collect();
    for socket in &extra {
        assert_eq!(status_line(socket), "HTTP/1.1 503 Service Unavailable\r\n");
    }
    drop(extra);
    // Their descriptors come back as the server sees them close.
    wait_until("the stats answer again", DEADLINE, || {
        server.get(STATS_REQUEST).starts_with("HTTP/1.1 200 OK\r\n")
    });
    let episodes = server
        .log()
        .iter()
        .filter(|l| l.contains("cannot accept connections"))
        .count();
    assert_eq!(episodes, 1, "logged once per episode: {:#?}", server.log());
    drop(streams);
}

/// Connects the moment the port accepts, and asks for a stream.
fn first_status(port: u16) -> String {
    let deadline = Instant::now() + DEADLINE;
    let mut socket = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(socket) => break socket,
            Err(_) if Instant::now() < deadline => std::thread::yield_now(),
            Err(e) => panic!("the server never listened: {e}"),
        }
    };
    socket
        .write_all(b"GET /?fresh HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    status_line(&socket)
}

#[test]
fn a_fresh_server_serves_the_first_streams_instead_of_a_503() {
    let redis = RedisServer::start();
    for _ in 0..20 {
        let server = ServerProcess::spawn(&["--redis", &redis.url()], None);
        assert_eq!(first_status(server.port), "HTTP/1.1 200 OK\r\n");
    }
}

/// A secret asked for but empty would open every stream to anybody: the
/// server stops at once, and says which source was empty.
#[test]
fn an_empty_secret_stops_the_server_and_names_its_source() {
    let redis = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("redisse-test-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let full = dir.join("full");
    std::fs::write(&full, "a secret\n").unwrap();
    let (empty, full) = (empty.to_str().unwrap(), full.to_str().unwrap());
    let url = redis.url();
    let cases: [(&[&str], &[(&str, &str)], &str); 4] = [
        (
            &["--secret-file", empty],
            &[],
            &format!("the secret file {empty} is empty"),
        ),
        (&[], &[("REDISSE_SECRET", "")], "$REDISSE_SECRET is empty"),
        (
            &["--secret-file", full, "--previous-secret-file", empty],
            &[],
            &format!("the secret file {empty} is empty"),
        ),
        (
            &["--secret-file", full],
            &[("REDISSE_SECRET_PREVIOUS", " ")],
            "$REDISSE_SECRET_PREVIOUS is empty",
        ),
    ];
    for (options, env, message) in cases {
        let options = [&["--redis", url.as_str()], options].concat();
        let mut server = ServerProcess::spawn_with_env(&options, None, env);
        let status = server.wait_for_exit(DEADLINE).expect("the server stops");
        assert!(!status.success(), "{options:?} {env:?}");
        let log = server.log().join("\n");
        assert!(log.contains(message), "{options:?} {env:?}: {log}");
        assert!(!log.contains("listening on"), "{log}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// At `--max-streams`, a refused client's connection is closed with its
/// 503, kept alive or not: a crowd of refused browsers holding theirs open
/// must not use up the descriptors that stats and health checks need.
#[test]
fn refusals_at_capacity_close_and_leave_stats_and_health_answering() {
    let redis = RedisServer::start();
    let server = ServerProcess::spawn(&["--redis", &redis.url(), "--max-streams", "2"], Some(64));
    let streams = open_streams(&server, 2);
    // Far more than 64 descriptors, one after the other, each held open.
    let refused: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut socket = server.connect();
            socket.write_all(STREAM_REQUEST).unwrap();
            socket.set_read_timeout(Some(DEADLINE)).unwrap();
            let mut answer = String::new();
            std::io::Read::read_to_string(&mut socket, &mut answer).expect("closed by the server");
            assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
            assert!(answer.contains("--max-streams"), "{answer}");
            socket
        })
        .collect();
    let stats = server.get(STATS_REQUEST);
    assert!(stats.starts_with("HTTP/1.1 200 OK\r\n"), "{stats}");
    assert!(stats.contains("\"connected\": 2,"), "{stats}");
    let health = server.get(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    drop((streams, refused));
}

/// No form of a Redis URL puts its password in the log: not a socket's
/// `pass=` item, not a password with a `/` that makes the URL malformed,
/// not a Sentinel's or a Cluster's credentials with a bad escape.
#[test]
fn no_redis_password_reaches_the_log() {
    let dir = std::env::temp_dir().join(format!("redisse-test-socket-{}", std::process::id()));
    let socket = dir.join("none.sock");
    let cases = [
        (
            format!("unix://{}?pass=Pw0unix", socket.display()),
            "Pw0unix",
        ),
        ("redis://:Pw1ab/cd@127.0.0.1:1/".to_string(), "Pw1ab"),
        (
            "redis+sentinel://u:Pw2%zz@127.0.0.1:1/master".to_string(),
            "Pw2",
        ),
        ("redis+cluster://u:Pw3%4x@127.0.0.1:1".to_string(), "Pw3"),
        ("redis://u:Pw4@127.0.0.1:1/".to_string(), "Pw4"),
    ];
    for (url, password) in cases {
        let mut server = ServerProcess::spawn(&["--redis", &url, "--verbose"], None);
        // Running (it cannot reach Redis) or stopped (the URL is wrong):
        // either way it said why, with the URL.
        if server
            .log()
            .iter()
            .any(|line| line.contains("listening on"))
        {
            server.wait_for_log("unreachable");
            let mut stream = server.connect();
            stream.write_all(STREAM_REQUEST).unwrap();
            assert!(status_line(&stream).starts_with("HTTP/1.1 503 "));
        }
        let log = server.log().join("\n");
        assert!(
            log.contains("****"),
            "{url}: the URL is shown masked:\n{log}"
        );
        assert!(
            !log.contains(password),
            "{url}: the password is in the log:\n{log}"
        );
    }
}

/// `--drain`: on SIGTERM the server stops accepting and ends its streams
/// one after the other over the window, each told when to reconnect
/// (`retry:`); a second SIGTERM ends the rest at once.
#[test]
fn a_drain_ends_the_streams_one_by_one_and_a_second_signal_ends_the_rest() {
    let redis = RedisServer::start();
    // 40 s for 4 streams: one ends now, the next in 10 s.
    let mut server = ServerProcess::spawn(&["--redis", &redis.url(), "--drain", "40"], None);
    server.wait_for_log("connected to Redis");
    let mut streams = open_streams(&server, 4);
    server.signal(libc::SIGTERM);
    server.wait_for_log("(--drain)");
    // The first one ends at once, told to come back in a second or two.
    let (first, ended) = wait_for_one_to_end(&mut streams);
    assert!(ended.contains("retry: 1"), "{ended}");
    assert!(
        ended.ends_with("\r\n0\r\n\r\n"),
        "the response is complete: {ended}"
    );
    streams.remove(first);
    // No new stream meanwhile.
    assert!(
        TcpStream::connect(server.addr()).is_err(),
        "no longer listening"
    );
    // The others are still open, until asked again.
    for socket in &streams {
        socket.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let read = std::io::Read::read(&mut &*socket, &mut byte);
        assert!(
            read.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
            "{read:?}"
        );
        socket.set_nonblocking(false).unwrap();
    }
    server.signal(libc::SIGTERM);
    let status = server.wait_for_exit(DEADLINE).expect("stopped");
    assert!(status.success(), "{status:?}");
    for socket in &streams {
        socket.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut &*socket, &mut rest).unwrap();
        assert!(!rest.contains("retry:"), "ended at once: {rest}");
    }
}

/// Reads the streams until one of them ends; its index, and what it got.
fn wait_for_one_to_end(streams: &mut [TcpStream]) -> (usize, String) {
    let mut received = vec![Vec::new(); streams.len()];
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        for (i, socket) in streams.iter_mut().enumerate() {
            socket
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let mut buffer = [0u8; 4096];
            match std::io::Read::read(socket, &mut buffer) {
                Ok(0) => return (i, String::from_utf8_lossy(&received[i]).into_owned()),
                Ok(n) => received[i].extend_from_slice(&buffer[..n]),
                Err(_) => {}
            }
        }
    }
    panic!("no stream ended within {DEADLINE:?}");
}

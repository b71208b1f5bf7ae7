//! The plain `redisse` binary as operators run it.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{free_port, wait_until, RedisServer};

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_descriptors_backs_off_logs_once_and_recovers() {
    let redis = RedisServer::start();
    let port = free_port();
    // A hard limit of 64 descriptors: the server cannot raise it.
    let mut server = Command::new("prlimit")
        .args(["--nofile=64:64", "--"])
        .arg(env!("CARGO_BIN_EXE_redisse"))
        .args([
            "--redis",
            &redis.url(),
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--stdout",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, log) = mpsc::channel();
    let stdout = server.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut log_lines = Vec::new();
    let read_log = |log_lines: &mut Vec<String>| log_lines.extend(log.try_iter());
    wait_until("the server listens", Duration::from_secs(10), || {
        read_log(&mut log_lines);
        log_lines.iter().any(|l| l.contains("connected to Redis"))
    });

    // Hold more connections than the server has descriptors.
    let mut held = Vec::new();
    for _ in 0..100 {
        let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
        socket
            .write_all(b"GET /?c HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n")
            .unwrap();
        held.push(socket);
    }
    wait_until(
        "accept fails and is logged",
        Duration::from_secs(10),
        || {
            read_log(&mut log_lines);
            log_lines
                .iter()
                .any(|l| l.contains("cannot accept connections"))
        },
    );
    let ticks = cpu_ticks(server.id());
    let measured = Instant::now();
    std::thread::sleep(Duration::from_secs(1)); // the window in which a busy loop would burn CPU
    let used = cpu_ticks(server.id()) - ticks;
    assert!(
        used < 50,
        "{used} ticks in {:?}: accept is spinning",
        measured.elapsed()
    );
    read_log(&mut log_lines);
    assert_eq!(
        log_lines
            .iter()
            .filter(|l| l.contains("cannot accept connections"))
            .count(),
        1,
        "{log_lines:#?}"
    );

    // Descriptors come back: the server accepts again.
    drop(held);
    wait_until("stats answer again", Duration::from_secs(10), || {
        let Ok(mut socket) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        socket
            .write_all(b"GET / HTTP/1.1\r\nAccept: application/json\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        let _ = socket.read_to_string(&mut response);
        response.starts_with("HTTP/1.1 200 OK")
    });
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Connects the moment the port accepts, and asks for a stream.
fn first_status(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut socket = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(socket) => break socket,
            Err(_) if Instant::now() < deadline => std::thread::yield_now(),
            Err(e) => panic!("the server never listened: {e}"),
        }
    };
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket
        .write_all(b"GET /?fresh HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(socket).read_line(&mut line).unwrap();
    line
}

#[test]
fn a_fresh_server_serves_the_first_streams_instead_of_a_503() {
    let redis = RedisServer::start();
    for _ in 0..20 {
        let port = free_port();
        let mut server = Command::new(env!("CARGO_BIN_EXE_redisse"))
            .args([
                "--redis",
                &redis.url(),
                "-a",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let status = first_status(port);
        server.kill().unwrap();
        server.wait().unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK\r\n");
    }
}

//! The plain `redisse` binary in a child process, killed when dropped (a
//! failed test must not leave it running), with its log lines at hand.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::{free_port, wait_until, DEADLINE};

pub struct ServerProcess {
    pub port: u16,
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl ServerProcess {
    /// Starts `redisse` on a free port of 127.0.0.1 with these options,
    /// under `prlimit --nofile=N:N` when a descriptor limit is given, and
    /// waits until it listens, or exits. A port that another test took
    /// before the server bound it is replaced by another.
    pub fn spawn(options: &[&str], nofile: Option<u32>) -> Self {
        Self::spawn_with_env(options, nofile, &[])
    }

    /// The same, with these variables set in its environment.
    pub fn spawn_with_env(options: &[&str], nofile: Option<u32>, env: &[(&str, &str)]) -> Self {
        for _ in 0..5 {
            let mut server = Self::spawn_on(free_port(), options, nofile, env);
            let mut exited = false;
            wait_until("the server listens or exits", DEADLINE, || {
                exited = server.child.try_wait().unwrap().is_some();
                exited || server.log().iter().any(|l| l.contains("listening on"))
            });
            if !exited {
                return server;
            }
            // Its pipes are closed once it exited: all it said is read.
            server.log.extend(server.lines.iter());
            if !server.log.iter().any(|l| l.contains("cannot listen on")) {
                return server;
            }
        }
        panic!("the server found no free port in 5 tries");
    }

    fn spawn_on(port: u16, options: &[&str], nofile: Option<u32>, env: &[(&str, &str)]) -> Self {
        let mut command = match nofile {
            Some(limit) => {
                let mut prlimit = Command::new("prlimit");
                prlimit
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_redisse"));
                prlimit
            }
            None => Command::new(env!("CARGO_BIN_EXE_redisse")),
        };
        let mut child = command
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "--stdout"])
            .args(options)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        // Standard error too: a panic is printed there.
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let errors = sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = errors.send(line);
            }
        });
        ServerProcess {
            port,
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// The log so far.
    pub fn log(&mut self) -> &[String] {
        self.log.extend(self.lines.try_iter());
        &self.log
    }

    /// Waits until a log line contains `text`.
    pub fn wait_for_log(&mut self, text: &str) {
        wait_until(&format!("the log says {text:?}"), DEADLINE, || {
            self.log().iter().any(|line| line.contains(text))
        });
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port)).expect("the server accepts")
    }

    /// A request on a new connection, and the whole answer (`Connection: close`).
    pub fn get(&self, request: &[u8]) -> String {
        let mut socket = self.connect();
        socket.set_read_timeout(Some(DEADLINE)).unwrap();
        socket.write_all(request).unwrap();
        let mut response = String::new();
        socket.read_to_string(&mut response).unwrap();
        response
    }

    /// The value of one of its metrics now.
    pub fn metric(&self, name: &str) -> u64 {
        let text = self.get(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
        super::metric(&text, name)
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status, within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.signal(libc::SIGTERM);
        self.wait_for_exit(timeout)
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: a plain system call on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Waits for the exit status, within `timeout`.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        wait_until("the server exits", timeout, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Real `redis-server`s for the tests, on free ports, stopped when dropped:
//! plain, with TLS (certificates made by `openssl` for the test), as a
//! replica, or as a sentinel.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, wait_until, DEADLINE};

/// What the server needs of Redis as an ACL user limited to the `news:*`
/// channels (doc/redis.md): subscribing, reading the counter and
/// histories, and PING (its heartbeat and health check).
pub const SERVER_ACL_RULES: &str =
    "-@all +subscribe +unsubscribe +ping +get +zrangebyscore ~redisse:lastEventId ~news:* &news:*";

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    /// TLS only: the port then takes no plain connection.
    tls: bool,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With more `redis-server` options (e.g. `--replicaof`).
    pub fn start_with(args: &[&str]) -> Self {
        Self::launch(args.iter().map(|a| a.to_string()).collect(), false)
    }

    /// TLS only, with the certificates of `certs`.
    pub fn start_tls(certs: &TestCertificates) -> Self {
        let args = vec![
            "--tls-cert-file".into(),
            certs.path("server.crt"),
            "--tls-key-file".into(),
            certs.path("server.key"),
            "--tls-ca-cert-file".into(),
            certs.path("ca.crt"),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        Self::launch(args, true)
    }

    fn launch(args: Vec<String>, tls: bool) -> Self {
        // Another test may take a free port before this server binds it:
        // then it exits, and another port is tried.
        for _ in 0..5 {
            let port = free_port();
            let dir = std::env::temp_dir()
                .join(format!("redisse-test-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let mut server = RedisServer {
                port,
                dir,
                args: args.clone(),
                tls,
                child: None,
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server found no free port in 5 tries");
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// Adds an ACL user with these rules (`~keys &channels +commands...`),
    /// from nothing (`reset`): on Redis 6.2 a new user may use every
    /// channel otherwise.
    pub fn add_user(&self, name: &str, password: &str, rules: &str) {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER")
            .arg(name)
            .arg("reset")
            .arg("on")
            .arg(format!(">{password}"));
        for rule in rules.split_whitespace() {
            cmd.arg(rule);
        }
        let _: () = cmd.query(&mut self.client()).unwrap();
    }

    /// The URL for one of its ACL users.
    pub fn user_url(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}/", self.port)
    }

    /// A plain connection (not for a TLS server).
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Starts it again on its port.
    pub fn restart(&mut self) {
        assert!(
            self.spawn(),
            "redis-server cannot listen on {} again",
            self.port
        );
    }

    /// Starts redis-server on `self.port`: `false` if it exited instead.
    fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        if self.tls {
            command.args(["--port", "0", "--tls-port", &port]);
        } else {
            command.args(["--port", &port]);
        }
        let child = command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (bin/setup installs it)");
        let child = self.child.insert(child);
        if self.tls {
            let port = self.port;
            let mut exited = false;
            wait_until("redis-server listens", DEADLINE, || {
                exited = child.try_wait().ok().flatten().is_some();
                exited || TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            !exited
        } else {
            answers_as(child, self.port)
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until the redis-server `child` answers on `port`; `false` once
/// it exited (the port was taken, by another test say). The pid it gives
/// tells it from a server of another test that took the port meanwhile.
pub(super) fn answers_as(child: &mut Child, port: u16) -> bool {
    let url = format!("redis://127.0.0.1:{port}/");
    let deadline = Instant::now() + DEADLINE;
    loop {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if server_pid(&url) == Some(child.id()) {
            return true;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} never answered"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn server_pid(url: &str) -> Option<u32> {
    let mut connection = redis::Client::open(url)
        .ok()?
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut connection)
        .ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

fn ping(url: &str) -> bool {
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

/// Sentinels watching one master (`mymaster`), on free ports.
pub struct Sentinels {
    pub ports: Vec<u16>,
    children: Vec<Child>,
    dir: PathBuf,
}

pub const MASTER_NAME: &str = "mymaster";

impl Sentinels {
    /// `count` sentinels, a quorum of two, and a master found down after
    /// `down_after` without an answer.
    pub fn start(count: usize, master_port: u16, down_after: Duration) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "redisse-test-sentinels-{}-{master_port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut sentinels = Sentinels {
            ports: Vec::new(),
            children: Vec::new(),
            dir,
        };
        for _ in 0..count {
            let port = free_port();
            // Sentinels rewrite their configuration: one file each.
            let config = sentinels.dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &config,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} {down}\n\
                     sentinel failover-timeout {MASTER_NAME} 10000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n",
                    dir = sentinels.dir.display(),
                    down = down_after.as_millis(),
                ),
            )
            .unwrap();
            let child = Command::new("redis-sentinel")
                .arg(&config)
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-sentinel is installed (bin/setup installs it)");
            sentinels.children.push(child);
            sentinels.ports.push(port);
        }
        for &port in &sentinels.ports {
            let url = format!("redis://127.0.0.1:{port}/");
            wait_until("the sentinel answers", DEADLINE, || ping(&url));
        }
        sentinels
    }

    /// `redis+sentinel://` for these sentinels.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}/0", hosts.join(","))
    }

    /// The port of the master the sentinels name now.
    pub fn master_port(&self) -> Option<u16> {
        let mut sentinel = redis::Client::open(format!("redis://127.0.0.1:{}/", self.ports[0]))
            .ok()?
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        let (_host, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(MASTER_NAME)
            .query(&mut sentinel)
            .ok()?;
        Some(port)
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it, made by `openssl`.
pub struct TestCertificates {
    dir: PathBuf,
}

impl TestCertificates {
    pub fn make() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "redisse-test-tls-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl is installed (bin/setup installs it)");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=redisse test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ]);
        TestCertificates { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! nginx in front of redisse servers, from a template of `example/`, on a
//! free port; stopped when dropped.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::{free_port, wait_until, DEADLINE};

pub struct Nginx {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl Nginx {
    /// `template` (a file of `example/`) with `{{PREFIX}}`, `{{LISTEN}}` and
    /// the given placeholders replaced.
    pub fn start(template: &str, replacements: &[(&str, String)]) -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("redisse-test-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/example/").to_string() + template;
        let mut config = std::fs::read_to_string(&path).unwrap();
        config = config
            .replace("{{PREFIX}}", &dir.display().to_string())
            .replace("{{LISTEN}}", &format!("127.0.0.1:{port}"));
        for (name, value) in replacements {
            config = config.replace(&format!("{{{{{name}}}}}"), value);
        }
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-g")
            .arg(format!(
                "daemon off; pid {}/nginx.pid; error_log stderr;",
                dir.display()
            ))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("error.log")).unwrap())
            .spawn()
            .expect("nginx is installed (bin/setup installs it)");
        let mut nginx = Nginx { port, dir, child };
        wait_until("nginx listens", DEADLINE, || {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log = std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}):\n{log}");
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        nginx
    }
}

impl Drop for Nginx {
    /// SIGTERM, which the master passes on to its workers: a SIGKILL would
    /// leave them running, with every descriptor they inherited.
    fn drop(&mut self) {
        // SAFETY: a plain system call on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + DEADLINE;
        while std::time::Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! What the harness reads about processes and the machine: CPU time,
//! resident memory and open files from /proc, the kernel's counters, the
//! open-file limit, and the wall clock.

use std::fs;
use std::path::Path;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the epoch: the clock that events carry, shared by
/// the publisher and the subscribers (one machine).
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Raises the soft open-file limit to the hard one; returns the limit now in force.
pub fn raise_nofile() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        let soft = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return soft;
        }
    }
    limit.rlim_cur
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// The words of `text` that are numbers.
fn numbers<T: FromStr>(text: &str) -> Vec<T> {
    text.split_whitespace().filter_map(|w| w.parse().ok()).collect()
}

/// The number after `name` in a line of words starting with `prefix`.
fn after(text: &str, prefix: &str, name: &str) -> Option<u64> {
    let mut words = text.lines().find(|l| l.starts_with(prefix))?.split_whitespace();
    words.position(|w| w == name)?;
    words.next()?.parse().ok()
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        t if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// The fields of /proc/<pid>/stat after the command name: [0] is the state.
fn stat(pid: u32) -> Vec<String> {
    let stat = read(format!("/proc/{pid}/stat"));
    let rest = stat.rfind(')').and_then(|i| stat.get(i + 2..)).unwrap_or_default();
    rest.split_whitespace().map(String::from).collect()
}

/// User + system CPU seconds of a process, its threads included.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let fields = stat(pid);
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some((ticks(11)? + ticks(12)?) as f64 / ticks_per_second())
}

pub fn cpu_seconds_of(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&p| cpu_seconds(p)).sum()
}

/// This process's CPU seconds, from getrusage (finer than /proc's ticks).
pub fn self_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// A process is still there (and not a zombie).
pub fn alive(pid: u32) -> bool {
    stat(pid).first().is_some_and(|state| state != "Z")
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    after(&read(format!("/proc/{pid}/status")), "VmRSS:", "VmRSS:")
}

pub fn fd_count(pid: u32) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The children of a process (nginx's workers, say).
pub fn children_of(pid: u32) -> Vec<u32> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    tasks.flat_map(|task| numbers(&read(task.path().join("children")))).collect()
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory preconditions; the pid is one we started.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// SYNs the kernel dropped machine-wide because a listen queue was full
/// (TcpExt ListenDrops).
pub fn listen_drops() -> u64 {
    let text = read("/proc/net/netstat");
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:")).map(str::split_whitespace);
    let (Some(mut names), Some(mut values)) = (lines.next(), lines.next()) else { return 0 };
    names.position(|n| n == "ListenDrops").and_then(|i| values.nth(i)?.parse().ok()).unwrap_or(0)
}

/// The accept-queue length a listening socket on 127.0.0.1:port was given
/// (`ss` shows it as Send-Q).
pub fn listen_backlog(port: u16) -> Option<u64> {
    let out = std::process::Command::new("ss").args(["-ltnH", &format!("sport = :{port}")]).output();
    String::from_utf8_lossy(&out.ok()?.stdout).split_whitespace().nth(2)?.parse().ok()
}

/// CPU seconds the whole machine spent busy (all cores, every process and
/// the kernel): user, nice, system, irq, softirq and steal in /proc/stat.
pub fn machine_busy_seconds() -> f64 {
    let text = read("/proc/stat");
    let ticks: Vec<u64> = text.lines().find(|l| l.starts_with("cpu ")).map(numbers).unwrap_or_default();
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| ticks.get(i)).sum();
    busy as f64 / ticks_per_second()
}

/// Ports in net.ipv4.ip_local_port_range: how many connections one pair of
/// (source address, destination address and port) can have at once.
pub fn ephemeral_ports() -> u64 {
    match numbers::<u64>(&read("/proc/sys/net/ipv4/ip_local_port_range"))[..] {
        [low, high] if high >= low => high - low + 1,
        _ => 0,
    }
}

/// TCP sockets in use on the machine and the kernel memory their buffers
/// hold, in KiB (/proc/net/sockstat counts pages).
pub fn tcp_sockets() -> (u64, u64) {
    let text = read("/proc/net/sockstat");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let get = |name| after(&text, "TCP:", name).unwrap_or(0);
    (get("inuse"), get("mem") * page / 1024)
}

/// MemTotal and MemAvailable of /proc/meminfo, in KiB.
pub fn memory_kib() -> (u64, u64) {
    let text = read("/proc/meminfo");
    let get = |name| after(&text, name, name).unwrap_or(0);
    (get("MemTotal:"), get("MemAvailable:"))
}

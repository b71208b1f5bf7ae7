//! What the harness reads about processes and the machine: CPU time,
//! resident memory and open files from /proc, the kernel's counters, the
//! open-file limit, and the wall clock.

use std::fs;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use procfs::process::Process;
use procfs::{Current, CurrentSI, KernelStats, Meminfo};

/// Microseconds since the epoch: the clock that events carry, shared by
/// the publisher and the subscribers (one machine).
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Raises the soft open-file limit to the hard one; returns the limit now in force.
pub fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// The words of `text` that are numbers.
fn numbers<T: FromStr>(text: &str) -> Vec<T> {
    text.split_whitespace().filter_map(|w| w.parse().ok()).collect()
}

fn ticks_to_seconds(ticks: u64) -> f64 {
    ticks as f64 / procfs::ticks_per_second() as f64
}

/// User + system CPU seconds of a process, its threads included.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = Process::new(pid as i32).ok()?.stat().ok()?;
    Some(ticks_to_seconds(stat.utime + stat.stime))
}

pub fn cpu_seconds_of(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&p| cpu_seconds(p)).sum()
}

/// A process is still there (and not a zombie).
pub fn alive(pid: u32) -> bool {
    Process::new(pid as i32).and_then(|p| p.stat()).is_ok_and(|stat| stat.state != 'Z')
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    Process::new(pid as i32).ok()?.status().ok()?.vmrss
}

pub fn fd_count(pid: u32) -> Option<usize> {
    Process::new(pid as i32).ok()?.fd_count().ok()
}

/// The children of a process (nginx's workers, say).
pub fn children_of(pid: u32) -> Vec<u32> {
    let tasks = Process::new(pid as i32).and_then(|p| p.tasks()).into_iter().flatten().flatten();
    tasks.flat_map(|task| task.children().unwrap_or_default()).collect()
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
    let Ok(t) = KernelStats::current().map(|k| k.total) else { return 0.0 };
    let interrupts = [t.irq, t.softirq, t.steal].map(|x| x.unwrap_or(0));
    ticks_to_seconds(t.user + t.nice + t.system + interrupts.iter().sum::<u64>())
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
    let words: Vec<&str> = text.lines().find(|l| l.starts_with("TCP:")).unwrap_or("").split_whitespace().collect();
    let get = |name| words.iter().position(|&w| w == name).and_then(|i| words.get(i + 1)?.parse().ok());
    (get("inuse").unwrap_or(0), get("mem").unwrap_or(0) * procfs::page_size() / 1024)
}

/// MemTotal and MemAvailable of /proc/meminfo, in KiB.
pub fn memory_kib() -> (u64, u64) {
    let m = Meminfo::current().map(|m| (m.mem_total, m.mem_available.unwrap_or(0))).unwrap_or_default();
    (m.0 / 1024, m.1 / 1024)
}

//! REPORT.md: the run's setup, the targets, then each scenario's section;
//! and the tables they are made of.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::scenarios::{Bench, Sizes};
use crate::servers::{Kind, DEFAULT_HEARTBEAT};

/// How a figure reads in a table: whole numbers with thousands separators,
/// fractions to two or three significant digits, `-` for none.
pub trait Cell {
    fn cell(&self) -> String;
}

impl Cell for u64 {
    fn cell(&self) -> String {
        let digits = self.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }
}

macro_rules! cells {
    ($($t:ty => $cell:expr),*) => {$(
        impl Cell for $t {
            fn cell(&self) -> String {
                $cell(self)
            }
        }
    )*};
}
cells!(u32 => |n: &u32| u64::from(*n).cell(), usize => |n: &usize| (*n as u64).cell(),
       &str => |t: &&str| t.to_string(), String => String::clone, bool => |b: &bool| if *b { "yes" } else { "no" }.into());

impl Cell for f64 {
    fn cell(&self) -> String {
        match (*self, self.abs()) {
            (x, _) if !x.is_finite() => "-".into(),
            (x, _) if x.fract() == 0.0 && x >= 0.0 => (x as u64).cell(),
            (x, a) if a >= 100.0 => format!("{x:.0}"),
            (x, a) if a >= 10.0 => format!("{x:.1}"),
            (x, _) => format!("{x:.2}"),
        }
    }
}

impl<T: Cell> Cell for Option<T> {
    fn cell(&self) -> String {
        self.as_ref().map_or("-".into(), Cell::cell)
    }
}

/// `a / b` to two decimals, `-` when either is missing.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a.is_finite() && b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

/// redisse's figure over nchan's, and over nchan+redis's.
pub fn ratios(figure: impl Fn(Kind) -> Option<f64>) -> [String; 2] {
    let ours = figure(Kind::Redisse);
    [Kind::Nchan, Kind::NchanRedis].map(|k| ratio(ours, figure(k)))
}

pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// `a / b`, as in `received / expected`.
pub fn of(a: impl Cell, b: impl Cell) -> String {
    format!("{} / {}", a.cell(), b.cell())
}

/// `figure`, or `figure (timeout: 3, refused: 1)` when some went wrong.
pub fn with_counts(figure: impl Cell, kinds: &BTreeMap<String, u64>) -> String {
    let kinds: Vec<String> = kinds.iter().map(|(kind, n)| format!("{kind}: {}", n.cell())).collect();
    match kinds.is_empty() {
        true => figure.cell(),
        false => format!("{} ({})", figure.cell(), kinds.join(", ")),
    }
}

/// A Markdown table: label columns on the left, figures on the right.
pub struct Table {
    head: Vec<String>,
    labels: usize,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns (`"server | streams"`), the first `labels` of them labels.
    pub fn new(labels: usize, head: &str) -> Table {
        let head = head.split(" | ").map(String::from).collect();
        let rows = Vec::new();
        Table { head, labels, rows }
    }

    /// Adds a row; more cells may be pushed onto what it returns.
    pub fn row(&mut self, cells: &[&dyn Cell]) -> &mut Vec<String> {
        self.rows.push(cells.iter().map(|c| c.cell()).collect());
        self.rows.last_mut().expect("a row")
    }

    fn markdown(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let rule: String = (0..self.head.len()).map(|i| if i < self.labels { "|---" } else { "|---:" }).collect();
        let rows: Vec<String> = self.rows.iter().map(|r| line(r)).collect();
        line(&self.head) + &rule + "|\n" + &rows.concat()
    }
}

/// A part of the report: a title, then paragraphs, tables and lists.
pub struct Section {
    title: String,
    blocks: Vec<String>,
}

impl Section {
    pub fn new(title: impl Into<String>) -> Section {
        let (title, blocks) = (title.into(), Vec::new());
        Section { title, blocks }
    }

    /// A heading within the section.
    pub fn part(&mut self, title: &str) -> &mut Section {
        self.text(format!("### {title}"))
    }

    pub fn text(&mut self, text: impl Into<String>) -> &mut Section {
        self.blocks.push(text.into());
        self
    }

    /// The table, unless it has no rows.
    pub fn table(&mut self, table: &Table) -> &mut Section {
        if !table.rows.is_empty() {
            self.blocks.push(table.markdown());
        }
        self
    }

    pub fn list(&mut self, items: &[String]) -> &mut Section {
        self.text(items.iter().map(|i| format!("- {i}\n")).collect::<String>())
    }

    fn markdown(&self) -> String {
        let blocks: Vec<String> = self.blocks.iter().map(|b| b.trim_end().to_string() + "\n\n").collect();
        format!("## {}\n\n{}", self.title, blocks.concat())
    }
}

/// About the run as a whole: where and when it ran, on what.
pub struct Meta {
    pub quick: bool,
    pub date: String,
    pub commit: String,
    pub cores: usize,
    pub duration: Duration,
    /// The machine, the versions, the servers and the client: the setup section's list.
    setup: Vec<String>,
}

impl Meta {
    pub fn gather(root: &Path, quick: bool, sizes: &Sizes, fd_limit: u64, duration: Duration) -> Meta {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let memory = crate::sys::memory_kib().0 as f64 / 1024.0 / 1024.0;
        let root = root.to_string_lossy();
        let git = |args: &[&str]| first_line("git", &[&["-C", root.as_ref()][..], args].concat());
        let mut commit = git(&["rev-parse", "--short", "HEAD"]);
        if !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
            commit += " (with uncommitted changes)";
        }
        let before = |text: String, end: &str| text.split(end).next().unwrap_or("").to_string();
        let kernel = first_line("uname", &["-r"]);
        let versions = [
            before(first_line("redis-server", &["--version"]), " sha="),
            first_line("nginx", &["-v"]).replace("nginx version: ", ""),
            first_line("dpkg-query", &["-W", "-f=${Version}", "libnginx-mod-nchan"]),
            before(first_line("rustc", &["--version"]), " ("),
        ];
        let (heartbeat, all) = (sizes.idle_heartbeat, cores * 100);
        let sources = crate::subscribers::source_addresses(sizes.sources);
        let setup = vec![
            format!("Machine: {cores} cores, {memory:.0} GiB, Linux {kernel}, open-file limit {fd_limit} per process."),
            format!("{}; {} with nchan {}; {}.", versions[0], versions[1], versions[2], versions[3]),
            format!(
                "Servers, each started fresh for each case on 127.0.0.1: **redisse** (`target/release/redisse`), **nchan** \
                 (nginx with one worker, `nchan_subscriber eventsource`, in-memory store) and **nchan+redis** (the same \
                 with `nchan_use_redis on`, see `bench/nchan/nginx.conf`). One redis-server serves redisse and \
                 nchan+redis. Heartbeats (redisse `--heartbeat`, nchan `nchan_eventsource_ping_interval`): every \
                 {heartbeat} s in the idle scenario to make their cost visible, every {DEFAULT_HEARTBEAT} s (redisse's \
                 default) in the others."
            ),
            format!(
                "Client: `redisse-bench` (`bench/`, reading streams with `crates/sse-client`): HTTP/1.1 event streams on \
                 tokio, at most 5,000 per subscriber process, from source addresses {sources}. redisse's events are \
                 published in Redis with the script of `Redisse.publish`; nchan's by HTTP POST to its publisher location \
                 over keep-alive connections."
            ),
            "Latency: each event's data carries its send time, stamped just before the publish request, so it covers \
             the whole path publisher → (Redis) → server → client."
                .into(),
            format!(
                "CPU: percent of one core over the measured window ({cores} cores: {all} % is everything). *client* is \
                 the load generator (coordinator and subscriber processes); when server + client + redis come near {all} \
                 %, the machine is saturated and latencies include waiting for a core. *other* is the rest of the \
                 machine: well above 0, something else ran and disturbed the case, which is then measured again. *CPU µs \
                 / delivery* is the server process's CPU time over the window divided by the deliveries the clients \
                 counted (nchan's includes taking the POSTs, redisse's reading Redis's messages). RSS is VmRSS of the \
                 process holding the connections (nginx's worker for nchan)."
            ),
        ];
        let date = first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
        Meta { quick, date, commit, cores, duration, setup }
    }
}

/// The first line a command prints (on stdout, else stderr); `?` if it cannot run.
fn first_line(cmd: &str, args: &[&str]) -> String {
    let Ok(o) = Command::new(cmd).args(args).output() else {
        return "?".into();
    };
    let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
    let text = String::from_utf8_lossy(&text);
    text.lines().next().unwrap_or("").trim().to_string()
}

/// The whole report.
pub fn markdown(bench: &Bench, meta: &Meta) -> String {
    let mut md = String::from("# Benchmarks: redisse vs nchan\n\n");
    if meta.quick {
        md += "**Quick run** (`bin/bench --quick`): small counts to check that the harness works; the figures say \
               little about performance.\n\n";
    }
    let seconds = meta.duration.as_secs_f64();
    md += &format!("Written by `bin/bench` on {} at commit {} ({seconds:.0} s).\n\n", meta.date, meta.commit);
    let mut setup = Section::new("Setup");
    setup.list(&meta.setup);
    let mut sections = vec![setup, crate::targets::section(&bench.results)];
    sections.extend(bench.sections(meta));
    if !bench.results.failures.is_empty() {
        let mut s = Section::new("Cases that did not run");
        s.list(&bench.results.failures);
        sections.push(s);
    }
    let all: Vec<String> = sections.iter().map(Section::markdown).collect();
    md + all.concat().trim_end() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_well() {
        let figures = [1_234_567u64.cell(), 12.0.cell(), f64::NAN.cell(), 3.14159.cell(), 31.4159.cell()];
        assert_eq!(figures, ["1,234,567", "12", "-", "3.14", "31.4"]);
        assert_eq!([314.159.cell(), ratio(Some(1.0), Some(4.0)), ratio(Some(1.0), None)], ["314", "0.25", "-"]);
        let kinds = BTreeMap::from([("timeout".to_string(), 3)]);
        let counted = [with_counts(5u64, &kinds), with_counts(5u64, &BTreeMap::new())];
        assert_eq!(counted, ["5 (timeout: 3)", "5"]);
    }

    #[test]
    fn a_section_renders_to_markdown() {
        let mut t = Table::new(1, "server | streams | ms");
        t.row(&[&"redisse", &19_000u64]).push(1.5.cell());
        let mut s = Section::new("Idle");
        s.text("Streams.").table(&t).table(&Table::new(1, "empty"));
        let table = "| server | streams | ms |\n|---|---:|---:|\n| redisse | 19,000 | 1.50 |\n\n";
        assert_eq!(s.markdown(), format!("## Idle\n\nStreams.\n\n{table}"));
    }
}

//! The publisher: bench/publisher.rb, Ruby publishing through the gem,
//! `Redisse.publish` against the 0.4 gem's way.

use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;

use super::{Bench, Results};
use crate::report::{Cell, Section, Table};

/// The JSON line bench/publisher.rb prints: publishes per second with 1
/// and with 8 threads, new and old.
#[derive(Debug, Deserialize)]
pub struct Rates {
    pub seconds: f64,
    pub redis_rb: Option<String>,
    pub new_1: u64,
    pub old_1: u64,
    pub ratio_1: f64,
    pub new_8: u64,
    pub old_8: u64,
    pub ratio_8: f64,
}

impl Bench {
    pub(super) async fn publisher(&mut self) {
        eprintln!("bench: publisher (Ruby)");
        self.wait_quiet().await;
        match self.publisher_rates().await {
            Ok(r) => self.results.publisher = Some(r),
            Err(e) => self.fail("publisher", None, e),
        }
    }

    async fn publisher_rates(&mut self) -> Result<Rates, String> {
        let (seconds, script, root) = (self.sizes.publisher_seconds, "bench/publisher.rb", &self.env.root);
        let mut ruby = tokio::process::Command::new("ruby");
        ruby.arg("-I").arg(root.join("lib")).arg(root.join(script));
        ruby.args(["--redis", &self.env.redis_url(), "--seconds", &seconds.to_string()]);
        ruby.current_dir(root).stdin(Stdio::null()).stderr(Stdio::inherit()).kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs_f64(seconds * 8.0 + 60.0), ruby.output())
            .await
            .map_err(|_| format!("{script} did not finish in time"))?
            .map_err(|e| format!("cannot run ruby: {e}"))?;
        if !output.status.success() {
            return Err(format!("{script} failed ({})", output.status));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text.lines().rev().find(|l| l.starts_with('{')).ok_or(format!("{script} printed no JSON line"))?;
        serde_json::from_str(line).map_err(|e| format!("{script}: {e}"))
    }
}

pub fn section(r: &Results) -> Option<Section> {
    let p = r.publisher.as_ref()?;
    let redis_rb = p.redis_rb.as_ref().map(|v| format!(", redis-rb {v}")).unwrap_or_default();
    let (new_us, old_us) = (1e6 / p.new_1.max(1) as f64, 1e6 / p.old_1.max(1) as f64);
    let mut s = Section::new("Publisher (Ruby)");
    s.text(format!(
        "`ruby -I lib bench/publisher.rb`, {} s per mode: `Redisse.publish` (one script call, the GVL released while \
         waiting) against the 0.4 way (INCR, PUBLISH, ZADD, ZREMRANGEBYRANK through one shared `redis` gem \
         client{redis_rb}, as 0.4 did). Single-threaded, both wait on round trips to Redis ({new_us:.0} µs per \
         `Redisse.publish`, {old_us:.0} µs per 0.4 publish), so the rates vary with the machine's wake-up latency from \
         run to run; the ratios are the stable figures.",
        p.seconds.cell(),
    ));
    let mut t = Table::new(1, "threads | Redisse.publish /s | 0.4 way /s | ratio");
    t.row(&[&1u32, &p.new_1, &p.old_1, &p.ratio_1]);
    t.row(&[&8u32, &p.new_8, &p.old_8, &p.ratio_8]);
    s.table(&t);
    Some(s)
}

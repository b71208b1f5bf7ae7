//! Scenario 5, the publisher: bench/publisher.rb, Ruby publishing through
//! the gem.

use std::process::Stdio;
use std::time::Duration;

use super::Bench;
use crate::results::{Measurement, PublisherRecord};

impl Bench {
    pub async fn publisher(&mut self) {
        eprintln!("bench: publisher (Ruby)");
        match self.publisher_run().await {
            Ok(r) => self.record(Measurement::Publisher(r)),
            Err(e) => self.fail("publisher", None, e),
        }
    }

    async fn publisher_run(&mut self) -> Result<PublisherRecord, String> {
        self.wait_quiet().await;
        let seconds = self.sizes.publisher_seconds;
        let script = self.root.join("bench/publisher.rb");
        let run = tokio::process::Command::new("ruby")
            .arg("-I")
            .arg(self.root.join("lib"))
            .arg(&script)
            .args([
                "--redis",
                &self.env.redis_url(),
                "--seconds",
                &seconds.to_string(),
            ])
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs_f64(seconds * 8.0 + 60.0), run)
            .await
            .map_err(|_| "bench/publisher.rb did not finish in time".to_string())?
            .map_err(|e| format!("cannot run ruby: {e}"))?;
        if !output.status.success() {
            return Err(format!("bench/publisher.rb failed ({})", output.status));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .ok_or("bench/publisher.rb printed no JSON line")?;
        serde_json::from_str(line).map_err(|e| format!("bench/publisher.rb: {e}"))
    }
}

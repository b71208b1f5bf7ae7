//! The stats a server keeps, and their JSON as the 0.4 server printed it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Stats {
    /// Event streams open now.
    pub connected: AtomicU64,
    /// Events written to clients (history, `lastEventId` and `missedevents` included).
    pub events: AtomicU64,
    /// Streams that have ended.
    pub served: AtomicU64,
    /// Streams that started with a `missedevents` event.
    pub missing: AtomicU64,
}

impl Stats {
    /// Two-space indent, values aligned in one column, no trailing newline.
    pub fn to_json(&self) -> String {
        format!(
            "{{\n  \"connected\": {},\n  \"events\":    {},\n  \"served\":    {},\n  \"missing\":   {}\n}}",
            self.connected.load(Relaxed),
            self.events.load(Relaxed),
            self.served.load(Relaxed),
            self.missing.load(Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_byte_exact() {
        let stats = Stats::default();
        stats.connected.store(2, Relaxed);
        stats.events.store(42, Relaxed);
        stats.served.store(3, Relaxed);
        assert_eq!(
            stats.to_json(),
            "{\n  \"connected\": 2,\n  \"events\":    42,\n  \"served\":    3,\n  \"missing\":   0\n}"
        );
    }
}

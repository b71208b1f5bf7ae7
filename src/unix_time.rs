//! The wall clock, in Unix time: tokens carry their expiry in it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in Unix seconds.
pub fn now() -> u64 {
    since_epoch().as_secs()
}

/// Now, since the Unix epoch, to the nanosecond.
pub fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

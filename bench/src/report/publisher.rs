//! Section 5, the Ruby publisher: `Redisse.publish` against the 0.4 gem's way.

use std::fmt::Write as _;

use super::cell::Cell;
use super::Measured;

pub(super) fn section(w: &mut String, m: &Measured) {
    let Some(r) = m.publisher.first() else {
        return;
    };
    let _ = writeln!(w, "## 5. Publisher (Ruby)\n");
    let _ = writeln!(
        w,
        "`ruby -I lib bench/publisher.rb` for {} s per mode: `Redisse.publish` (one script call, the GVL released while waiting) against \
         the 0.4 way (INCR, PUBLISH, ZADD, ZREMRANGEBYRANK through one shared `redis` gem client {}, as 0.4 did).\n",
        r.seconds.cell(),
        r.redis_rb.as_ref().map(|v| format!("(redis-rb {v})")).unwrap_or_default()
    );
    let _ = writeln!(
        w,
        "| threads | Redisse.publish /s | 0.4 way /s | ratio |\n|---:|---:|---:|---:|"
    );
    for (threads, new, old, ratio) in [
        (1, r.new_1, r.old_1, r.ratio_1),
        (8, r.new_8, r.old_8, r.ratio_8),
    ] {
        let _ = writeln!(
            w,
            "| {threads} | {} | {} | {} |",
            new.cell(),
            old.cell(),
            ratio.cell()
        );
    }
    let _ = writeln!(w);
}

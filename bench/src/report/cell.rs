//! How figures read in the report's tables.

use crate::results::Counts;
use crate::servers::Kind;

/// How a figure reads in a table: whole numbers with thousands separators,
/// fractions to two or three significant digits, `-` for none.
pub(super) trait Cell {
    fn cell(&self) -> String;
}

impl Cell for u64 {
    fn cell(&self) -> String {
        group(*self as i64)
    }
}

impl Cell for usize {
    fn cell(&self) -> String {
        group(*self as i64)
    }
}

impl Cell for f64 {
    fn cell(&self) -> String {
        let x = *self;
        if !x.is_finite() {
            // What JSON cannot hold: results.json would have it as null.
            "-".into()
        } else if x.fract() != 0.0 {
            if x.abs() >= 100.0 {
                format!("{x:.0}")
            } else if x.abs() >= 10.0 {
                format!("{x:.1}")
            } else {
                format!("{x:.2}")
            }
        } else {
            group(x as i64)
        }
    }
}

impl Cell for bool {
    fn cell(&self) -> String {
        if *self { "yes" } else { "no" }.into()
    }
}

impl Cell for Kind {
    fn cell(&self) -> String {
        self.name().into()
    }
}

impl<T: Cell> Cell for Option<T> {
    fn cell(&self) -> String {
        self.as_ref().map_or("-".into(), Cell::cell)
    }
}

fn group(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

pub(super) fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Error kinds and their counts, e.g. `timeout: 3, refused: 1`.
pub(super) fn errors(counts: &Counts) -> String {
    counts
        .iter()
        .map(|(kind, n)| format!("{kind}: {}", n.cell()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

//! Content negotiation on the `Accept` header, as the 0.4 server did it:
//! the header is a list of media ranges; ranges with `q=0` (or a `q` that
//! is not a number, which Ruby's `to_f` reads as 0) are left out, and a
//! type is acceptable when it is listed exactly (`*/*` does not count).
//!
//! A q-value is read as RFC 9110 writes it, with at most three decimals:
//! digits beyond are ignored, so a crafted header costs time in
//! proportion to its length, never more.

/// What a request gets, in the order the checks are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    Stats,
    EventStream,
    NotAcceptable,
}

pub fn negotiate(accept: Option<&[u8]>) -> Representation {
    let accept = accept.map(String::from_utf8_lossy).unwrap_or_default();
    let mut stream = false;
    for range in accept.split(',').filter_map(acceptable_range) {
        if range == "application/json" {
            return Representation::Stats;
        }
        stream |= range == "text/event-stream";
    }
    if stream {
        Representation::EventStream
    } else {
        Representation::NotAcceptable
    }
}

/// The media range of one list item, lowercased, unless its quality is 0.
fn acceptable_range(item: &str) -> Option<String> {
    let mut parts = item.split(';');
    let range = parts.next()?.trim().to_ascii_lowercase();
    for param in parts {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("q") && qvalue(value.trim()) <= 0.0 {
            return None;
        }
    }
    (!range.is_empty()).then_some(range)
}

/// The number at the start of `s`, 0 where there is none (as Ruby's
/// `String#to_f` reads it), to three decimals: a sign, digits, a point,
/// three digits. One pass, and only over the digits.
fn qvalue(s: &str) -> f64 {
    let mut bytes = s.bytes().peekable();
    let negative = match bytes.peek() {
        Some(b'-') => {
            bytes.next();
            true
        }
        Some(b'+') => {
            bytes.next();
            false
        }
        _ => false,
    };
    // Thousandths, saturating: any integer part above 1 is as good as 1.
    let mut value: u32 = 0;
    while let Some(digit) = bytes.peek().filter(|b| b.is_ascii_digit()) {
        value = value
            .saturating_mul(10)
            .saturating_add(u32::from(digit - b'0'))
            .min(1_000_000);
        bytes.next();
    }
    value = value.saturating_mul(1000);
    if bytes.next() == Some(b'.') {
        for scale in [100, 10, 1] {
            match bytes.next() {
                Some(digit) if digit.is_ascii_digit() => value += u32::from(digit - b'0') * scale,
                _ => break,
            }
        }
    }
    let value = f64::from(value) / 1000.0;
    if negative {
        -value
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::Representation::*;
    use super::*;

    fn n(accept: &str) -> Representation {
        negotiate(Some(accept.as_bytes()))
    }

    #[test]
    fn json_is_checked_first() {
        assert_eq!(n("application/json"), Stats);
        assert_eq!(n("text/event-stream, application/json"), Stats);
        assert_eq!(n("text/event-stream;q=1, application/json;q=0.1"), Stats);
    }

    #[test]
    fn event_stream_must_be_listed() {
        assert_eq!(n("text/event-stream"), EventStream);
        assert_eq!(n("text/html, Text/Event-Stream ; q=0.5"), EventStream);
        assert_eq!(n("*/*"), NotAcceptable);
        assert_eq!(n("text/*"), NotAcceptable);
        assert_eq!(n(""), NotAcceptable);
        assert_eq!(negotiate(None), NotAcceptable);
    }

    #[test]
    fn zero_quality_excludes() {
        assert_eq!(n("text/event-stream;q=0"), NotAcceptable);
        assert_eq!(n("text/event-stream; q=0.0"), NotAcceptable);
        assert_eq!(n("application/json;q=0, text/event-stream"), EventStream);
        assert_eq!(n("text/event-stream;q=abc"), NotAcceptable);
        assert_eq!(n("text/event-stream;q=0.001"), EventStream);
        assert_eq!(
            n("text/event-stream;q=0.0001"),
            NotAcceptable,
            "three decimals at most"
        );
        assert_eq!(n("text/event-stream;level=1"), EventStream);
    }

    #[test]
    fn qvalues_read_a_leading_number_to_three_decimals() {
        assert_eq!(qvalue("0.5"), 0.5);
        assert_eq!(qvalue("1."), 1.0);
        assert_eq!(qvalue("2x"), 2.0);
        assert_eq!(qvalue("x"), 0.0);
        assert_eq!(qvalue("-1"), -1.0);
        assert_eq!(qvalue("+0.25"), 0.25);
        assert_eq!(qvalue("0.1239"), 0.123);
        assert_eq!(qvalue(".5"), 0.5);
        assert_eq!(qvalue("99999999999999999999"), 1000000.0);
    }

    #[test]
    fn a_huge_qvalue_is_read_in_one_pass() {
        let huge = format!("text/event-stream;q=0.{}1", "0".repeat(60_000));
        assert_eq!(n(&huge), NotAcceptable);
        let huge = format!("text/event-stream;q=1.{}", "0".repeat(60_000));
        assert_eq!(n(&huge), EventStream);
    }
}

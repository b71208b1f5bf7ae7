//! Content negotiation on the `Accept` header, as the 0.4 server did it:
//! the header is a list of media ranges; ranges with `q=0` (or a `q` that
//! is not a number, which Ruby's `to_f` reads as 0) are left out, and a
//! type is acceptable when it is listed exactly (`*/*` does not count).

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
        if name.trim().eq_ignore_ascii_case("q") && ruby_to_f(value.trim()) <= 0.0 {
            return None;
        }
    }
    (!range.is_empty()).then_some(range)
}

/// The number at the start of `s`, 0 where there is none (Ruby's `String#to_f`).
fn ruby_to_f(s: &str) -> f64 {
    let end = s
        .char_indices()
        .take_while(|&(i, c)| c.is_ascii_digit() || c == '.' || (i == 0 && (c == '+' || c == '-')))
        .last()
        .map_or(0, |(i, c)| i + c.len_utf8());
    (0..=end)
        .rev()
        .find_map(|e| s[..e].parse().ok())
        .unwrap_or(0.0)
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
        assert_eq!(n("text/event-stream;level=1"), EventStream);
    }

    #[test]
    fn to_f_reads_a_leading_number() {
        assert_eq!(ruby_to_f("0.5"), 0.5);
        assert_eq!(ruby_to_f("1."), 1.0);
        assert_eq!(ruby_to_f("2x"), 2.0);
        assert_eq!(ruby_to_f("x"), 0.0);
        assert_eq!(ruby_to_f("-1"), -1.0);
    }
}

//! The Redis layout of 0.4 (SPEC §1), byte for byte: old and new
//! publishers and servers share one Redis during an upgrade, so the
//! publisher writes it and the server reads it from here alone.
//!
//! - One counter for every channel, `redisse:lastEventId`, incremented
//!   once per publish: the event's id.
//! - `PUBLISH <channel> <event text>` for live delivery.
//! - The history: a sorted set whose key is the bare channel name, each
//!   event text scored by its id, trimmed to the newest [`HISTORY_SIZE`].
//! - An event's id is read back from its text ([`id_of`], [`stored_id`]).

/// The key of the counter shared by every channel.
pub const LAST_EVENT_ID_KEY: &str = "redisse:lastEventId";
/// Events kept per channel: part of the format, not an option.
pub const HISTORY_SIZE: usize = 100;

/// The id of a stored or published event text: the value of its `id:` line,
/// which comes first or right after `retry:`. `None` for text without one.
pub fn id_of(text: &[u8]) -> Option<u64> {
    let mut rest = text;
    if rest.starts_with(b"retry: ") {
        let end = rest.iter().position(|&b| b == b'\n')?;
        rest = &rest[end + 1..];
    }
    let rest = rest.strip_prefix(b"id: ")?;
    let end = rest.iter().position(|&b| b == b'\n')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// The id of a history member that is event text as 0.4 and this crate
/// write it: `retry:` (optional), `id:` (decimal digits), `event:`
/// (optional), one or more `data:` lines, the empty line. `None` for
/// anything else: a channel's key may hold a sorted set that is not a
/// history, whose members must never reach a client.
pub fn stored_id(text: &[u8]) -> Option<u64> {
    let body = text.strip_suffix(b"\n\n")?;
    let mut lines = body.split(|&b| b == b'\n').peekable();
    lines.next_if(|line| line.starts_with(b"retry: "));
    let id = lines.next()?.strip_prefix(b"id: ")?;
    if id.is_empty() || !id.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let id = std::str::from_utf8(id).ok()?.parse().ok()?;
    lines.next_if(|line| line.starts_with(b"event: "));
    let mut data_lines = 0;
    for line in lines {
        if !line.starts_with(b"data: ") {
            return None;
        }
        data_lines += 1;
    }
    (data_lines > 0).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventText;

    #[test]
    fn only_event_text_is_a_stored_event() {
        let published = EventText::new(b"a\nb", Some(b"notice"), None).unwrap();
        assert_eq!(stored_id(&published.with_id(42)), Some(42));
        assert_eq!(stored_id(b"retry: 5\nid: 7\ndata: \n\n"), Some(7));
        // 0.4 left a lone CR in the data.
        assert_eq!(stored_id(b"id: 3\nevent: m\ndata: a\rb\n\n"), Some(3));
        for other in [
            &b"alice"[..],
            b"",
            b"{\"class\":\"HardJob\",\"retry\":true}",
            b"id: 7\n\n",
            b"id: +7\ndata: \n\n",
            b"id: 7x\ndata: \n\n",
            b"id: 7\ndata: x\n",
            b"id: 7\nevent: a\nevent: b\ndata: \n\n",
            b"id: 7\ndata: a\nid: 8\ndata: \n\n",
            b"event: m\nid: 7\ndata: \n\n",
        ] {
            assert_eq!(
                stored_id(other),
                None,
                "{:?}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn reads_the_id_back() {
        assert_eq!(id_of(b"id: 42\nevent: x\ndata: \n\n"), Some(42));
        assert_eq!(id_of(b"retry: 5\nid: 7\ndata: \n\n"), Some(7));
        assert_eq!(id_of(b"event: lastEventId\ndata: \n\n"), None);
        assert_eq!(id_of(b"id: x\ndata: \n\n"), None);
        assert_eq!(id_of(b"id: 42"), None);
    }
}

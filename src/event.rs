//! The text of one Server-Sent Event, byte for byte as the 0.4 gem wrote it
//! (SPEC §1), with two fixes: `\r` and `\r\n` in the data are line breaks
//! too, and field values that would inject lines are refused.

use thiserror::Error;

/// A field value that cannot go on one line of an event.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("event {field} must not contain CR or LF: {value:?}")]
pub struct InvalidEvent {
    pub field: &'static str,
    pub value: String,
}

/// An event's text split around its id, so a publisher can fill the id in
/// after the counter was incremented (in Redis, by the publish script).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventText {
    /// `retry: N\n` (if any) and `id: `.
    pub head: Vec<u8>,
    /// `\n`, `event: T\n`, the data lines and the closing empty line.
    pub tail: Vec<u8>,
}

impl EventText {
    /// An event that will carry an id, as `Redisse.publish` writes it.
    pub fn new(
        data: &[u8],
        event_type: Option<&[u8]>,
        retry: Option<&[u8]>,
    ) -> Result<Self, InvalidEvent> {
        let mut head = Vec::new();
        write_retry(&mut head, retry)?;
        head.extend_from_slice(b"id: ");
        let mut tail = b"\n".to_vec();
        write_type_and_data(&mut tail, event_type, data)?;
        Ok(EventText { head, tail })
    }

    /// The full text once the id is known.
    pub fn with_id(&self, id: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + 20 + self.tail.len());
        out.extend_from_slice(&self.head);
        out.extend_from_slice(id.to_string().as_bytes());
        out.extend_from_slice(&self.tail);
        out
    }
}

/// The whole event text, every field optional but the data
/// (`Redisse::ServerSentEvents.server_sent_event`).
pub fn encode(
    data: &[u8],
    event_type: Option<&[u8]>,
    id: Option<&[u8]>,
    retry: Option<&[u8]>,
) -> Result<Vec<u8>, InvalidEvent> {
    let mut out = Vec::with_capacity(data.len() + 32);
    write_retry(&mut out, retry)?;
    if let Some(id) = id {
        check_single_line("id", id)?;
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id);
        out.push(b'\n');
    }
    write_type_and_data(&mut out, event_type, data)?;
    Ok(out)
}

fn write_retry(out: &mut Vec<u8>, retry: Option<&[u8]>) -> Result<(), InvalidEvent> {
    if let Some(retry) = retry {
        check_single_line("retry", retry)?;
        out.extend_from_slice(b"retry: ");
        out.extend_from_slice(retry);
        out.push(b'\n');
    }
    Ok(())
}

fn write_type_and_data(
    out: &mut Vec<u8>,
    event_type: Option<&[u8]>,
    data: &[u8],
) -> Result<(), InvalidEvent> {
    if let Some(event_type) = event_type {
        check_single_line("type", event_type)?;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event_type);
        out.push(b'\n');
    }
    write_data(out, data);
    out.push(b'\n');
    Ok(())
}

/// `data: ` lines; `\r\n`, `\r` and `\n` each end a line, as browsers read them.
fn write_data(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(b"data: ");
    let mut rest = data;
    while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
        out.extend_from_slice(&rest[..pos]);
        out.extend_from_slice(b"\ndata: ");
        let skip = if rest[pos] == b'\r' && rest.get(pos + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        rest = &rest[pos + skip..];
    }
    out.extend_from_slice(rest);
    out.push(b'\n');
}

fn check_single_line(field: &'static str, value: &[u8]) -> Result<(), InvalidEvent> {
    if value.iter().any(|&b| b == b'\r' || b == b'\n') {
        return Err(InvalidEvent {
            field,
            value: String::from_utf8_lossy(value).into_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(data: &str, t: Option<&str>, id: u64) -> String {
        let e = EventText::new(data.as_bytes(), t.map(str::as_bytes), None).unwrap();
        String::from_utf8(e.with_id(id)).unwrap()
    }

    #[test]
    fn matches_the_old_gem_byte_for_byte() {
        assert_eq!(
            text("hello", Some("message"), 1),
            "id: 1\nevent: message\ndata: hello\n\n"
        );
        assert_eq!(
            text("first line\nsecond line", Some("notice"), 42),
            "id: 42\nevent: notice\ndata: first line\ndata: second line\n\n"
        );
        assert_eq!(
            text("", Some("message"), 3),
            "id: 3\nevent: message\ndata: \n\n"
        );
        assert_eq!(text("a\n", None, 3), "id: 3\ndata: a\ndata: \n\n");
        assert_eq!(text("\n\n", None, 3), "id: 3\ndata: \ndata: \ndata: \n\n");
    }

    #[test]
    fn retry_comes_first() {
        let e = EventText::new(b"x", Some(b"t"), Some(b"500")).unwrap();
        assert_eq!(e.with_id(7), b"retry: 500\nid: 7\nevent: t\ndata: x\n\n");
        assert_eq!(
            encode(b"x", None, None, Some(b"10")).unwrap(),
            b"retry: 10\ndata: x\n\n"
        );
    }

    #[test]
    fn encode_with_every_field_optional() {
        assert_eq!(encode(b"", None, None, None).unwrap(), b"data: \n\n");
        assert_eq!(
            encode(b"", Some(b"missedevents"), None, None).unwrap(),
            b"event: missedevents\ndata: \n\n"
        );
        assert_eq!(
            encode(b"d", Some(b"t"), Some(b"9"), None).unwrap(),
            b"id: 9\nevent: t\ndata: d\n\n"
        );
    }

    #[test]
    fn carriage_returns_break_lines() {
        assert_eq!(text("a\rb", None, 1), "id: 1\ndata: a\ndata: b\n\n");
        assert_eq!(text("a\r\nb", None, 1), "id: 1\ndata: a\ndata: b\n\n");
        assert_eq!(
            text("a\r\n\rb\r", None, 1),
            "id: 1\ndata: a\ndata: \ndata: b\ndata: \n\n"
        );
    }

    #[test]
    fn odd_bytes_in_data_are_kept() {
        let e = EventText::new(b"\xff\x00\xfe", None, None).unwrap();
        assert_eq!(e.with_id(1), b"id: 1\ndata: \xff\x00\xfe\n\n");
    }

    #[test]
    fn line_breaks_in_fields_are_refused() {
        let err = EventText::new(b"x", Some(b"a\nevent: b"), None).unwrap_err();
        assert_eq!(err.field, "type");
        assert!(err.to_string().contains("must not contain CR or LF"));
        assert!(EventText::new(b"x", Some(b"a\rb"), None).is_err());
        assert!(EventText::new(b"x", None, Some(b"1\n")).is_err());
        assert!(encode(b"x", None, Some(b"1\r"), None).is_err());
    }
}

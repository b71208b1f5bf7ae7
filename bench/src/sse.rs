//! The events of a stream: Server-Sent Events split from the body, and
//! the payload the harness puts in each, which carries its send time.

/// The payload the harness puts in every event: `<tag> <seq> <sent_us>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    pub tag: u32,
    pub seq: u64,
    pub sent_us: u64,
}

impl Payload {
    pub fn text(tag: u32, seq: u64, sent_us: u64) -> String {
        format!("{tag} {seq} {sent_us}")
    }

    fn parse(data: &[u8]) -> Option<Payload> {
        let text = std::str::from_utf8(data).ok()?;
        let mut it = text.split(' ');
        let p = Payload {
            tag: it.next()?.parse().ok()?,
            seq: it.next()?.parse().ok()?,
            sent_us: it.next()?.trim_end().parse().ok()?,
        };
        it.next().is_none().then_some(p)
    }
}

/// Splits an event stream into events; only the harness's payloads are
/// reported (other events, comments and heartbeats are skipped).
#[derive(Debug, Default)]
pub struct SseParser {
    partial: Vec<u8>,
    pending: Option<Payload>,
    data_lines: u32,
}

impl SseParser {
    pub fn feed(&mut self, mut input: &[u8], on_event: &mut impl FnMut(Payload)) {
        while let Some(i) = input.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.line(&input[..i], on_event);
            } else {
                self.partial.extend_from_slice(&input[..i]);
                let line = std::mem::take(&mut self.partial);
                self.line(&line, on_event);
                self.partial = line;
                self.partial.clear();
            }
            input = &input[i + 1..];
        }
        if self.partial.len() + input.len() > 64 * 1024 {
            self.partial.clear(); // a runaway line: not one of ours
        } else {
            self.partial.extend_from_slice(input);
        }
    }

    fn line(&mut self, line: &[u8], on_event: &mut impl FnMut(Payload)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if let (Some(p), 1) = (self.pending.take(), self.data_lines) {
                on_event(p);
            }
            self.pending = None;
            self.data_lines = 0;
        } else if let Some(data) = line.strip_prefix(b"data:") {
            let data = data.strip_prefix(b" ").unwrap_or(data);
            self.data_lines += 1;
            self.pending = Payload::parse(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_other_events() {
        let mut events = Vec::new();
        let mut sse = SseParser::default();
        sse.feed(b"id: 9\nevent: lastEventId\ndata: \n\n: hb\nid: 1:0\r\ndata: 1 2 3\r\n\r\ndata: 1 2 3\ndata: x\n\n", &mut |p| events.push(p));
        assert_eq!(
            events,
            vec![Payload {
                tag: 1,
                seq: 2,
                sent_us: 3
            }]
        );
    }
}

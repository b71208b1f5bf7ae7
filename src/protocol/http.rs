//! The HTTP/1.1 this server speaks, as pure functions: reading a request
//! head, writing a response head, framing body chunks.
//!
//! A stream reads one small request and then only writes for hours, so the
//! connection code keeps no buffer once the head is parsed (see
//! `server::connection`). Parsing is httparse's, the parser hyper uses,
//! with RFC 9112's rules on what frames a body: a head that two proxies
//! could read differently (Content-Length twice and different, or with
//! Transfer-Encoding) is refused, as that is how requests are smuggled.
//! Request bodies are never read: a request that has one is answered and
//! its connection closed, so no body can be mistaken for a next request.
//!
//! (Over 400 lines: a third of it is the unit tests of these rules.)

use bytes::{Bytes, BytesMut};
use thiserror::Error;

/// The largest request head accepted; a longer one gets a 431. Room for a
/// few hundred long channel names in a redirect URL.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header fields a request may have; more get a 431.
pub const MAX_HEADERS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Names lowercased.
    pub headers: Vec<(String, Vec<u8>)>,
    /// What follows the head (never read: see the module's doc).
    pub body: Body,
}

/// The body a request head announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Length(u64),
    Chunked,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HeadError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request head larger than {MAX_HEAD} bytes")]
    TooLarge,
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    /// Content-Length and Transfer-Encoding that proxies could read differently.
    #[error("ambiguous body framing: {0}")]
    AmbiguousBody(&'static str),
}

impl HeadError {
    /// The response that says what went wrong.
    pub fn status(&self) -> Status {
        match self {
            HeadError::Malformed(_) | HeadError::AmbiguousBody(_) => Status::BadRequest,
            HeadError::TooLarge | HeadError::TooManyHeaders => Status::HeaderFieldsTooLarge,
        }
    }
}

/// Whether bytes just read (from `from` on) may complete a head: only then
/// is the buffer parsed again, so a head sent byte by byte costs a parse
/// per line, not per byte (httparse starts over at each call).
pub fn may_complete_head(buf: &[u8], from: usize) -> bool {
    buf.len() >= MAX_HEAD || buf[from.min(buf.len())..].contains(&b'\n')
}

/// Parses a request head from the start of `buf`: `None` while incomplete,
/// else the head and its length in bytes.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let status = request.parse(buf).map_err(|e| match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        e => HeadError::Malformed(e.to_string()),
    })?;
    let httparse::Status::Complete(length) = status else {
        return if buf.len() >= MAX_HEAD {
            Err(HeadError::TooLarge)
        } else {
            Ok(None)
        };
    };
    if length > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let target = request.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    let head = RequestHead {
        method: request.method.unwrap_or("GET").to_string(),
        path: path.to_string(),
        query: query.to_string(),
        minor_version: request.version.unwrap_or(1),
        body: body_of(&headers)?,
        headers,
    };
    Ok(Some((head, length)))
}

/// The body framing of RFC 9112 §6.3, refusing what it calls unrecoverable
/// (an invalid or disagreeing Content-Length) and what lets a request be
/// smuggled past a proxy (Content-Length with Transfer-Encoding).
fn body_of(headers: &[(String, Vec<u8>)]) -> Result<Body, HeadError> {
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for (name, value) in headers {
        match name.as_str() {
            "content-length" => {
                // `Content-Length: 5, 5` is a list of the same value.
                for item in value.split(|&b| b == b',') {
                    let item = item.trim_ascii();
                    let valid =
                        !item.is_empty() && item.len() <= 19 && item.iter().all(u8::is_ascii_digit);
                    let parsed = std::str::from_utf8(item)
                        .ok()
                        .filter(|_| valid)
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or(HeadError::AmbiguousBody("invalid Content-Length"))?;
                    if length.is_some_and(|l| l != parsed) {
                        return Err(HeadError::AmbiguousBody("Content-Length values disagree"));
                    }
                    length = Some(parsed);
                }
            }
            "transfer-encoding" => chunked = true,
            _ => {}
        }
    }
    match (length, chunked) {
        (Some(_), true) => Err(HeadError::AmbiguousBody(
            "Content-Length together with Transfer-Encoding",
        )),
        (_, true) => Ok(Body::Chunked),
        (Some(0) | None, false) => Ok(Body::None),
        (Some(length), false) => Ok(Body::Length(length)),
    }
}

impl RequestHead {
    /// The first value of a header (`name` lowercase).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Whether a body follows the head (which this server never reads).
    pub fn has_body(&self) -> bool {
        self.body != Body::None
    }

    /// Whether only the head of the answer is wanted.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Whether the client wants the connection kept for another request.
    /// How an answer of unknown length is framed: HTTP/1.0 has no chunks,
    /// its body ends with the connection.
    pub fn streaming_framing(&self) -> Framing {
        if self.minor_version == 0 {
            Framing::UntilClose
        } else {
            Framing::Chunked
        }
    }

    pub fn keep_alive(&self) -> bool {
        let connection = self
            .header("connection")
            .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase());
        let says = |token: &str| {
            connection
                .as_deref()
                .is_some_and(|c| c.split(',').any(|t| t.trim() == token))
        };
        if self.minor_version == 0 {
            says("keep-alive")
        } else {
            !says("close")
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    NoContent,
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    HeaderFieldsTooLarge,
    InternalServerError,
    ServiceUnavailable,
}

impl Status {
    pub fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::NoContent => "204 No Content",
            Status::BadRequest => "400 Bad Request",
            Status::Forbidden => "403 Forbidden",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::NotAcceptable => "406 Not Acceptable",
            Status::HeaderFieldsTooLarge => "431 Request Header Fields Too Large",
            Status::InternalServerError => "500 Internal Server Error",
            Status::ServiceUnavailable => "503 Service Unavailable",
        }
    }
}

/// How the body after a response head is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A body of this many bytes.
    Length(usize),
    /// Chunked (HTTP/1.1 streams).
    Chunked,
    /// Until the connection closes (HTTP/1.0 streams).
    UntilClose,
}

/// A response head: status line, headers, empty line.
pub fn response_head(
    status: Status,
    headers: &[(&str, &str)],
    framing: Framing,
    keep_alive: bool,
) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {}\r\n", status.line());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match framing {
        Framing::Length(length) => head.push_str(&format!("Content-Length: {length}\r\n")),
        Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        Framing::UntilClose => {}
    }
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str(&format!(
        "Date: {}\r\n\r\n",
        httpdate::fmt_http_date(std::time::SystemTime::now())
    ));
    head.into_bytes()
}

/// `texts` as body bytes: one chunk of them (size line, the texts, CRLF)
/// for a chunked body, the texts as they are for one that ends with the
/// connection. Nothing for no text: an empty chunk would end the body.
pub fn frame_body(framing: Framing, texts: &[&[u8]]) -> Bytes {
    let length: usize = texts.iter().map(|t| t.len()).sum();
    if length == 0 {
        return Bytes::new();
    }
    let chunked = framing == Framing::Chunked;
    let mut body = BytesMut::with_capacity(length + if chunked { 20 } else { 0 });
    if chunked {
        body.extend_from_slice(format!("{length:x}\r\n").as_bytes());
    }
    for text in texts {
        body.extend_from_slice(text);
    }
    if chunked {
        body.extend_from_slice(CRLF);
    }
    body.freeze()
}

pub const CRLF: &[u8] = b"\r\n";
/// The last chunk of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stream_request() {
        let raw = b"GET /events?a&b HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: 4\r\n\r\nrest";
        let (head, length) = parse_request_head(raw).unwrap().unwrap();
        assert_eq!(length, raw.len() - 4);
        assert_eq!(
            (
                head.method.as_str(),
                head.path.as_str(),
                head.query.as_str()
            ),
            ("GET", "/events", "a&b")
        );
        assert_eq!(head.header("accept"), Some(&b"text/event-stream"[..]));
        assert_eq!(head.header("last-event-id"), Some(&b"4"[..]));
        assert!(head.keep_alive());
        assert!(!head.has_body());
    }

    #[test]
    fn waits_for_the_whole_head() {
        assert_eq!(
            parse_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Ok(None)
        );
        assert_eq!(parse_request_head(b""), Ok(None));
    }

    #[test]
    fn refuses_garbage_and_huge_heads() {
        assert!(matches!(
            parse_request_head(b"\x00\x01 nonsense\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        let mut huge = b"GET /?".to_vec();
        huge.resize(MAX_HEAD + 10, b'a');
        assert_eq!(parse_request_head(&huge), Err(HeadError::TooLarge));
        assert_eq!(HeadError::TooLarge.status(), Status::HeaderFieldsTooLarge);
    }

    #[test]
    fn ambiguous_bodies_are_refused() {
        let parse = |raw: &str| parse_request_head(raw.as_bytes()).map(|h| h.map(|(h, _)| h.body));
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n"),
            Err(HeadError::AmbiguousBody("Content-Length values disagree"))
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HeadError::AmbiguousBody(
                "Content-Length together with Transfer-Encoding"
            ))
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Err(HeadError::AmbiguousBody("invalid Content-Length"))
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n"),
            Ok(Some(Body::Length(5)))
        );
        assert_eq!(HeadError::AmbiguousBody("x").status(), Status::BadRequest);
    }

    #[test]
    fn too_many_headers_are_refused() {
        let mut raw = "GET / HTTP/1.1\r\n".to_string();
        for i in 0..=MAX_HEADERS {
            raw.push_str(&format!("X-{i}: y\r\n"));
        }
        raw.push_str("\r\n");
        assert_eq!(
            parse_request_head(raw.as_bytes()),
            Err(HeadError::TooManyHeaders)
        );
        assert_eq!(
            HeadError::TooManyHeaders.status(),
            Status::HeaderFieldsTooLarge
        );
    }

    #[test]
    fn a_head_is_parsed_again_only_when_a_line_ends() {
        assert!(!may_complete_head(b"GET / HTTP/1.1\r\nHost: x", 16));
        assert!(may_complete_head(b"GET / HTTP/1.1\r\nHost: x\r\n", 20));
        assert!(may_complete_head(&vec![b'a'; MAX_HEAD], MAX_HEAD - 1));
    }

    #[test]
    fn keep_alive_and_bodies() {
        let head = |raw: &[u8]| parse_request_head(raw).unwrap().unwrap().0;
        assert!(!head(b"GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        assert!(!head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(head(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n").has_body());
        assert!(!head(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").has_body());
        assert!(head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").has_body());
    }

    #[test]
    fn writes_heads_and_chunks() {
        let head = String::from_utf8(response_head(
            Status::NotFound,
            &[("Content-Type", "text/plain")],
            Framing::Length(14),
            true,
        ))
        .unwrap();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 14\r\nDate: "), "{head}");
        assert!(head.ends_with("\r\n\r\n"));
        let head =
            String::from_utf8(response_head(Status::Ok, &[], Framing::Chunked, false)).unwrap();
        assert!(
            head.contains("Transfer-Encoding: chunked\r\nConnection: close\r\n"),
            "{head}"
        );
        let texts: [&[u8]; 2] = [b"id: 1\n", &[b'x'; 250]];
        let chunk = frame_body(Framing::Chunked, &texts);
        assert!(chunk.starts_with(b"100\r\nid: 1\n"));
        assert!(chunk.ends_with(b"x\r\n"));
        assert_eq!(chunk.len(), 5 + 256 + 2);
        assert_eq!(frame_body(Framing::UntilClose, &texts).len(), 256);
        assert!(frame_body(Framing::Chunked, &[b"", b""]).is_empty());
    }
}

//! A small Server-Sent Events client over HTTP/1.1 on tokio: connect
//! (optionally from a chosen 127.x source address), send a GET with
//! headers, read the response head, decode a chunked body and split it
//! into events and comments.
//!
//! The integration tests read streams with it, and the benchmark harness
//! holds tens of thousands of streams per process with it, so a stream
//! allocates nothing per event once its buffers have grown.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A response head longer than this is refused.
const MAX_HEAD: usize = 16 * 1024;
/// A body read whole (`read_body`) longer than this is refused.
const MAX_BODY: usize = 1024 * 1024;
/// A line of an event stream longer than this is refused.
const MAX_LINE: usize = 1024 * 1024;
/// Bytes read from the socket at a time.
const READ_SIZE: usize = 8192;

#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    /// The server broke HTTP/1.1 or the event-stream format.
    Protocol(&'static str),
}

impl Error {
    /// A short name to count failures by: `refused`, `reset`, `no source port`...
    pub fn kind(&self) -> String {
        match self {
            Error::Protocol(p) => format!("protocol: {p}"),
            Error::Io(e) => match e.raw_os_error() {
                Some(libc::ECONNREFUSED) => "refused".into(),
                Some(libc::ECONNRESET) => "reset".into(),
                Some(libc::EADDRNOTAVAIL) => "no source port".into(),
                Some(libc::EMFILE) | Some(libc::ENFILE) => "out of fds".into(),
                _ if e.kind() == io::ErrorKind::UnexpectedEof => "closed".into(),
                _ => format!("{:?}", e.kind()).to_lowercase(),
            },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Protocol(p) => write!(f, "protocol error: {p}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

fn closed() -> Error {
    Error::Io(io::ErrorKind::UnexpectedEof.into())
}

/// Connects to `server` with TCP_NODELAY, from `source` if given.
pub async fn connect(server: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(source) = source {
        // The port is left to connect(), which only needs the whole
        // (source, destination) pair to be unused. A port picked by bind()
        // is reserved on every address instead: tens of thousands of
        // streams would take the ephemeral range from other processes'
        // outgoing connections, which connect() cannot share with bind()'s.
        set_bind_address_no_port(&socket)?;
        socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
    }
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn set_bind_address_no_port(socket: &TcpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads an int from a live local for a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What the harness and the tests need of a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub chunked: bool,
    pub content_length: Option<usize>,
}

/// Reads a response head into `buf` (which may already hold its start);
/// what follows the head stays in `buf`.
pub async fn read_head(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Head, Error> {
    let mut scanned: usize = 0;
    loop {
        let from = scanned.saturating_sub(3);
        if let Some(i) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = parse_head(&buf[..from + i])?;
            buf.drain(..from + i + 4);
            return Ok(head);
        }
        scanned = buf.len();
        if buf.len() > MAX_HEAD {
            return Err(Error::Protocol("response head too long"));
        }
        let mut chunk = [0u8; 4096];
        match socket.read(&mut chunk).await? {
            0 => return Err(closed()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn parse_head(head: &[u8]) -> Result<Head, Error> {
    let text = std::str::from_utf8(head).map_err(|_| Error::Protocol("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1."))
        .and_then(|s| s.get(2..5))
        .and_then(|s| s.parse().ok())
        .ok_or(Error::Protocol("bad status line"))?;
    let mut head = Head {
        status,
        chunked: false,
        content_length: None,
    };
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().ok();
        }
    }
    Ok(head)
}

/// Reads the body of the response whose head `read_head` took from `buf`:
/// by its length, its chunks, or until the server closes. What follows it
/// stays in `buf`, for the next response on a kept-alive connection.
pub async fn read_body(
    socket: &mut TcpStream,
    head: &Head,
    buf: &mut Vec<u8>,
) -> Result<Vec<u8>, Error> {
    if matches!(head.status, 100..=199 | 204 | 304) {
        return Ok(Vec::new());
    }
    let mut body = Vec::new();
    let mut chunked = head.chunked.then(Chunked::default);
    loop {
        match (&mut chunked, head.content_length) {
            (Some(c), _) => {
                let used = c.feed(buf, &mut |data| {
                    body.extend_from_slice(data);
                    Ok(())
                })?;
                buf.drain(..used);
                if c.done() {
                    return Ok(body);
                }
            }
            (None, Some(length)) if buf.len() >= length => {
                return Ok(buf.drain(..length).collect());
            }
            _ => {}
        }
        if body.len() + buf.len() > MAX_BODY {
            return Err(Error::Protocol("body too long"));
        }
        let mut chunk = [0u8; 4096];
        match socket.read(&mut chunk).await? {
            0 if chunked.is_none() && head.content_length.is_none() => {
                return Ok(std::mem::take(buf));
            }
            0 => return Err(closed()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Decodes `Transfer-Encoding: chunked`, fed in pieces of any size.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
    size: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    /// After the size's digits: skip its extensions to `\n`.
    SizeRest,
    Data,
    /// The CRLF after a chunk's data.
    DataEnd,
    /// At the start of a trailer line, after the last chunk.
    Trailer,
    TrailerLine,
    Done,
}

impl Chunked {
    /// Feeds body bytes; `out` gets the data. Returns how many bytes it
    /// took: all of them, unless the body ended within them.
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut impl FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<usize, Error> {
        let mut at = 0;
        while at < input.len() && self.state != ChunkState::Done {
            let b = input[at];
            at += 1;
            match self.state {
                ChunkState::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (b as char).to_digit(16).unwrap_or(0) as usize;
                        self.size = self
                            .size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(digit))
                            .ok_or(Error::Protocol("chunk too big"))?;
                    }
                    b';' | b' ' | b'\t' | b'\r' => self.state = ChunkState::SizeRest,
                    b'\n' => self.end_size(),
                    _ => return Err(Error::Protocol("bad chunk size")),
                },
                ChunkState::SizeRest if b == b'\n' => self.end_size(),
                ChunkState::SizeRest => {}
                ChunkState::Data => {
                    at -= 1;
                    let n = self.size.min(input.len() - at);
                    out(&input[at..at + n])?;
                    at += n;
                    self.size -= n;
                    if self.size == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                }
                ChunkState::DataEnd => match b {
                    b'\n' => self.state = ChunkState::Size,
                    b'\r' => {}
                    _ => return Err(Error::Protocol("bad chunk end")),
                },
                ChunkState::Trailer => match b {
                    b'\n' => self.state = ChunkState::Done,
                    b'\r' => {}
                    _ => self.state = ChunkState::TrailerLine,
                },
                ChunkState::TrailerLine if b == b'\n' => self.state = ChunkState::Trailer,
                ChunkState::TrailerLine | ChunkState::Done => {}
            }
        }
        Ok(at)
    }

    /// The last chunk and its trailers were read.
    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    fn end_size(&mut self) {
        self.state = if self.size == 0 {
            ChunkState::Trailer
        } else {
            ChunkState::Data
        };
    }
}

/// What an event stream is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    Event(Event<'a>),
    /// A line starting with `:` (a heartbeat, say), without the colon.
    Comment(&'a [u8]),
    /// A `retry:` field: the milliseconds to wait before reconnecting.
    Retry(u64),
}

/// One event: its fields as sent, the data lines joined by `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    pub id: Option<&'a [u8]>,
    pub event: Option<&'a [u8]>,
    pub data: &'a [u8],
}

/// Splits an event stream into events and comments, fed in pieces of any
/// size. Unlike a browser it reports an event that has an id or a type but
/// no data, so that tests see everything the server sent.
#[derive(Debug, Default)]
pub struct Parser {
    /// The start of a line whose end has not come yet.
    partial: Vec<u8>,
    id: Option<Vec<u8>>,
    event: Option<Vec<u8>>,
    data: Vec<u8>,
    data_lines: usize,
}

impl Parser {
    pub fn feed(&mut self, mut input: &[u8], on: &mut impl FnMut(Item<'_>)) -> Result<(), Error> {
        while let Some(i) = input.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.line(&input[..i], on);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&input[..i]);
                self.line(&line, on);
                line.clear();
                self.partial = line;
            }
            input = &input[i + 1..];
        }
        if self.partial.len() + input.len() > MAX_LINE {
            return Err(Error::Protocol("event-stream line too long"));
        }
        self.partial.extend_from_slice(input);
        Ok(())
    }

    fn line(&mut self, line: &[u8], on: &mut impl FnMut(Item<'_>)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.id.is_some() || self.event.is_some() || self.data_lines > 0 {
                on(Item::Event(Event {
                    id: self.id.as_deref(),
                    event: self.event.as_deref(),
                    data: &self.data,
                }));
            }
            self.id = None;
            self.event = None;
            self.data.clear();
            self.data_lines = 0;
            return;
        }
        if let Some(comment) = line.strip_prefix(b":") {
            return on(Item::Comment(comment));
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &b""[..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match name {
            b"id" => set(&mut self.id, value),
            b"event" => set(&mut self.event, value),
            // As a browser does: only digits count, at once, not at the blank line.
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                if let Some(ms) = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                    on(Item::Retry(ms));
                }
            }
            b"data" => {
                if self.data_lines > 0 {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.data_lines += 1;
            }
            _ => {}
        }
    }
}

fn set(field: &mut Option<Vec<u8>>, value: &[u8]) {
    let v = field.get_or_insert_with(Vec::new);
    v.clear();
    v.extend_from_slice(value);
}

/// An open event stream: the response head, then its events as they come.
pub struct EventStream {
    socket: TcpStream,
    pub head: Head,
    buf: Vec<u8>,
    /// Bytes at the start of `buf` that came with the head, not parsed yet.
    pending: usize,
    chunked: Option<Chunked>,
    parser: Parser,
}

/// What one `EventStream::read` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// This many bytes, parsed.
    Data(usize),
    /// The last chunk: the server ended the stream.
    End,
    /// The server closed the connection.
    Closed,
}

impl EventStream {
    /// Connects (from `source` if given), sends `GET path` with
    /// `Accept: text/event-stream`, `headers` and a Host header unless
    /// `headers` has one, and reads the response head, whatever its status.
    pub async fn open(
        server: SocketAddr,
        source: Option<Ipv4Addr>,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<EventStream, Error> {
        let mut socket = connect(server, source).await?;
        let mut request = format!("GET {path} HTTP/1.1\r\nAccept: text/event-stream\r\n");
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            request.push_str(&format!("Host: {server}\r\n"));
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        socket.write_all(request.as_bytes()).await?;
        let mut buf = Vec::with_capacity(READ_SIZE);
        let head = read_head(&mut socket, &mut buf).await?;
        let pending = buf.len();
        buf.resize(pending.max(READ_SIZE), 0);
        Ok(EventStream {
            socket,
            chunked: head.chunked.then(Chunked::default),
            head,
            buf,
            pending,
            parser: Parser::default(),
        })
    }

    /// Reads once from the socket (first, what came with the head) and
    /// hands every complete event and comment to `on`.
    pub async fn read(&mut self, mut on: impl FnMut(Item<'_>)) -> Result<Read, Error> {
        if self.chunked.as_ref().is_some_and(Chunked::done) {
            return Ok(Read::End);
        }
        let n = match std::mem::take(&mut self.pending) {
            0 => match self.socket.read(&mut self.buf).await? {
                0 => return Ok(Read::Closed),
                n => n,
            },
            n => n,
        };
        let (data, parser) = (&self.buf[..n], &mut self.parser);
        match &mut self.chunked {
            Some(chunked) => {
                chunked.feed(data, &mut |bytes| parser.feed(bytes, &mut on))?;
                if chunked.done() {
                    return Ok(Read::End);
                }
            }
            None => parser.feed(data, &mut on)?,
        }
        Ok(Read::Data(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events as (id, event, data) strings, comments as `:text`.
    fn items(body: &[u8], piece: usize) -> (Vec<String>, usize) {
        let mut out = Vec::new();
        let mut parser = Parser::default();
        let mut chunked = Chunked::default();
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        let mut used = 0;
        for part in body.chunks(piece) {
            used += chunked
                .feed(part, &mut |data| {
                    parser.feed(data, &mut |item| {
                        out.push(match item {
                            Item::Event(e) => format!(
                                "{:?} {:?} {:?}",
                                text(e.id),
                                text(e.event),
                                text(Some(e.data)).unwrap()
                            ),
                            Item::Comment(c) => format!(":{}", text(Some(c)).unwrap()),
                            Item::Retry(ms) => format!("retry {ms}"),
                        })
                    })
                })
                .unwrap();
        }
        assert!(chunked.done());
        (out, used)
    }

    #[test]
    fn chunks_and_events_split_anywhere() {
        let body = b"5\r\n: hb\n\r\n2a;x=y\r\nid: 3\nevent: lastEventId\r\ndata: a\ndata:b\n\n\r\n\
                     d\r\nid: 1:0\ndata\n\r\n1\r\n\n\r\n16\r\nretry: 1500\nretry: 2x\n\r\n0\r\nTrailer: x\r\n\r\nHTTP/1.1";
        let expected = vec![
            ": hb".to_string(),
            r#"Some("3") Some("lastEventId") "a\nb""#.into(),
            r#"Some("1:0") None """#.into(),
            "retry 1500".into(),
        ];
        for piece in [1, 2, 3, 7, body.len()] {
            let (got, used) = items(body, piece);
            assert_eq!(got, expected, "pieces of {piece}");
            assert_eq!(&body[used..], b"HTTP/1.1", "pieces of {piece}");
        }
    }

    #[test]
    fn a_bad_chunk_size_is_refused() {
        let mut chunked = Chunked::default();
        let error = chunked.feed(b"zz\r\n", &mut |_| Ok(())).unwrap_err();
        assert_eq!(error.kind(), "protocol: bad chunk size");
    }

    #[test]
    fn heads_are_read() {
        let head = parse_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream",
        )
        .unwrap();
        assert_eq!(
            head,
            Head {
                status: 200,
                chunked: true,
                content_length: None
            }
        );
        assert!(parse_head(b"SSH-2.0").is_err());
    }

    #[tokio::test]
    async fn a_stream_reads_what_came_with_its_head() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 1024];
            let n = socket.read(&mut request).await.unwrap();
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&request[..n]).into_owned()
        });
        let source = Some(Ipv4Addr::new(127, 0, 0, 2));
        let mut stream = EventStream::open(addr, source, "/?a", &[("Cookie", "s=1")])
            .await
            .unwrap();
        assert_eq!(stream.head.status, 200);
        let mut data = Vec::new();
        let mut on = |item: Item<'_>| {
            if let Item::Event(e) = item {
                data.push(e.data.to_vec())
            }
        };
        assert_eq!(stream.read(&mut on).await.unwrap(), Read::End);
        assert_eq!(data, vec![b"1".to_vec()]);
        let request = server.await.unwrap();
        assert!(request.starts_with("GET /?a HTTP/1.1\r\n"), "{request}");
        assert!(
            request.contains(&format!("\r\nHost: {addr}\r\n")),
            "{request}"
        );
        assert!(request.ends_with("\r\nCookie: s=1\r\n\r\n"), "{request}");
    }
}

//! Raw HTTP/1.1 over tokio sockets: opening an event stream (bound to a
//! chosen source address), reading a response head, decoding a chunked
//! body, and a keep-alive POST connection for nchan's publisher. The
//! events in a stream's body are sse.rs's.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A response head longer than this is refused.
const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub chunked: bool,
    pub content_length: Option<usize>,
}

#[derive(Debug)]
pub enum OpenError {
    Timeout,
    Io(io::Error),
    Status(u16),
    Protocol(&'static str),
}

impl OpenError {
    /// A short name to count failures by.
    pub fn kind(&self) -> String {
        match self {
            OpenError::Timeout => "timeout".into(),
            OpenError::Status(s) => format!("status {s}"),
            OpenError::Protocol(p) => format!("protocol: {p}"),
            OpenError::Io(e) => match e.raw_os_error() {
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

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        OpenError::Io(e)
    }
}

/// Connects from `source` (port chosen by the kernel) to `server`.
pub async fn connect_from(source: Option<Ipv4Addr>, server: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(source) = source {
        // The port is left to connect(), which only needs the whole
        // (source, destination) pair to be unused. A port picked by bind()
        // is reserved on every address instead: tens of thousands of
        // streams would take the ephemeral range from other processes'
        // outgoing connections (nginx's to its upstreams in the fleet
        // scenario), which connect() cannot share with bind()'s ports.
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
    // SAFETY: setsockopt reads an int from a live local for the socket we own.
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

/// Reads a response head into `buf`; what follows it stays in `buf`.
pub async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Head, OpenError> {
    let mut scanned: usize = 0;
    loop {
        if let Some(end) = find(&buf[scanned.saturating_sub(3)..], b"\r\n\r\n")
            .map(|i| i + scanned.saturating_sub(3))
        {
            let head = parse_head(&buf[..end])?;
            buf.drain(..end + 4);
            return Ok(head);
        }
        scanned = buf.len();
        if buf.len() > MAX_HEAD {
            return Err(OpenError::Protocol("response head too long"));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(OpenError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_head(head: &[u8]) -> Result<Head, OpenError> {
    let text = std::str::from_utf8(head).map_err(|_| OpenError::Protocol("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|s| s.parse().ok())
        .ok_or(OpenError::Protocol("bad status line"))?;
    let mut out = Head {
        status,
        chunked: false,
        content_length: None,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            out.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            out.content_length = value.parse().ok();
        }
    }
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes `Transfer-Encoding: chunked`.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
    size: usize,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    /// After `;` or `\r` on the size line: skip to `\n`.
    SizeRest,
    Data,
    /// The CRLF after a chunk's data.
    DataEnd,
    Done,
}

impl Chunked {
    /// Feeds body bytes; `out` gets the decoded data. Returns true once the
    /// last chunk was read.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut impl FnMut(&[u8]),
    ) -> Result<bool, &'static str> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size => {
                    let b = input[0];
                    input = &input[1..];
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            let d = (b as char).to_digit(16).unwrap_or(0) as usize;
                            self.size = self
                                .size
                                .checked_mul(16)
                                .and_then(|s| s.checked_add(d))
                                .ok_or("chunk too big")?;
                        }
                        b';' | b'\r' | b' ' => self.state = ChunkState::SizeRest,
                        b'\n' => self.end_size(),
                        _ => return Err("bad chunk size"),
                    }
                }
                ChunkState::SizeRest => match input.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        input = &input[i + 1..];
                        self.end_size();
                    }
                    None => input = &[],
                },
                ChunkState::Data => {
                    let n = self.size.min(input.len());
                    out(&input[..n]);
                    input = &input[n..];
                    self.size -= n;
                    if self.size == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                }
                ChunkState::DataEnd => {
                    let b = input[0];
                    input = &input[1..];
                    if b == b'\n' {
                        self.state = ChunkState::Size;
                    } else if b != b'\r' {
                        return Err("bad chunk end");
                    }
                }
                ChunkState::Done => return Ok(true),
            }
        }
        Ok(self.state == ChunkState::Done)
    }

    fn end_size(&mut self) {
        self.state = if self.size == 0 {
            ChunkState::Done
        } else {
            ChunkState::Data
        };
    }
}

/// Sends the GET of an event stream and reads the response head.
pub async fn open_stream(
    source: Option<Ipv4Addr>,
    server: SocketAddr,
    path: &str,
    buf: &mut Vec<u8>,
) -> Result<(TcpStream, Head), OpenError> {
    let mut stream = connect_from(source, server).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {server}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let head = read_head(&mut stream, buf).await?;
    if head.status != 200 {
        return Err(OpenError::Status(head.status));
    }
    Ok((stream, head))
}

/// GET with `Accept: application/json` (redisse's stats); the body as text.
pub async fn get_json(server: SocketAddr) -> Result<String, OpenError> {
    let mut stream = connect_from(None, server).await?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {server}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    let head = read_head(&mut stream, &mut buf).await?;
    if head.status != 200 {
        return Err(OpenError::Status(head.status));
    }
    let want = head.content_length.unwrap_or(usize::MAX);
    let mut chunk = [0u8; 4096];
    while buf.len() < want {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_HEAD {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// One keep-alive connection that POSTs messages, one at a time.
pub struct PostConnection {
    server: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl PostConnection {
    pub fn new(server: SocketAddr) -> Self {
        PostConnection {
            server,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// POSTs `body` to `path`; returns the status. Reconnects once if the
    /// kept-alive connection was closed.
    pub async fn post(
        &mut self,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<u16, OpenError> {
        for attempt in 0..2 {
            let fresh = self.stream.is_none();
            match tokio::time::timeout(timeout, self.try_post(path, body)).await {
                Ok(Ok(status)) => return Ok(status),
                Ok(Err(e)) => {
                    self.stream = None;
                    if fresh || attempt == 1 {
                        return Err(e);
                    }
                }
                Err(_) => {
                    self.stream = None;
                    return Err(OpenError::Timeout);
                }
            }
        }
        Err(OpenError::Timeout)
    }

    async fn try_post(&mut self, path: &str, body: &[u8]) -> Result<u16, OpenError> {
        if self.stream.is_none() {
            self.stream = Some(connect_from(None, self.server).await?);
            self.buf.clear();
        }
        let stream = self.stream.as_mut().expect("connected");
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            self.server,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        stream.write_all(&request).await?;
        let head = read_head(stream, &mut self.buf).await?;
        // Drain the body so the next response starts clean.
        if head.chunked {
            let mut chunked = Chunked::default();
            loop {
                let leftover = std::mem::take(&mut self.buf);
                let done = chunked
                    .feed(&leftover, &mut |_| {})
                    .map_err(OpenError::Protocol)?;
                if done {
                    break;
                }
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(OpenError::Io(io::ErrorKind::UnexpectedEof.into()));
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        } else {
            let want = head.content_length.unwrap_or(0);
            while self.buf.len() < want {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(OpenError::Io(io::ErrorKind::UnexpectedEof.into()));
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
            self.buf.drain(..want);
        }
        Ok(head.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::{Payload, SseParser};

    #[test]
    fn chunked_and_sse() {
        let body = b"5\r\n: hb\n\r\n1a;x=y\r\nid: 3\ndata: 7 12 1000000\n\n\r\n0\r\n\r\n";
        let mut events = Vec::new();
        let mut sse = SseParser::default();
        let mut chunked = Chunked::default();
        // Byte by byte, to cross every boundary.
        let mut done = false;
        for b in body.iter() {
            done = chunked
                .feed(std::slice::from_ref(b), &mut |d| {
                    sse.feed(d, &mut |p| events.push(p))
                })
                .unwrap();
        }
        assert!(done);
        assert_eq!(
            events,
            vec![Payload {
                tag: 7,
                seq: 12,
                sent_us: 1_000_000
            }]
        );
    }

    #[test]
    fn head() {
        let h = parse_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream",
        )
        .unwrap();
        assert_eq!(h.status, 200);
        assert!(h.chunked);
    }
}

//! One client connection: read a request head, answer it, and for an
//! event stream, write its chunks as they come until it ends.
//!
//! Sized for SSE: the head is read into a buffer that is freed once parsed,
//! and a stream then holds no buffer of its own, only the shared event
//! texts it is writing. The socket is still read while streaming, to
//! notice at once a client that left.

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::ReadHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::debug;

use super::channels::ChannelSource;
use super::respond::{respond, Peer, Reply, Text, STREAM_HEADERS};
use super::stream::{EventStream, Next};
use super::Shared;
use crate::protocol::http::{
    may_complete_head, parse_request_head, response_head, ChunkHeader, Framing, HeadError,
    RequestHead, Status, CRLF, LAST_CHUNK, MAX_HEAD,
};

/// How long a client may take to send a request head, and how long an idle
/// kept-alive connection waits for the next one.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
const READ_SIZE: usize = 2048;
const UNKNOWN_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// How long, and how much, a closing connection reads and discards.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

pub struct Connection {
    socket: TcpStream,
    /// Bytes read and not parsed yet: a head coming in, or a pipelined request.
    buffer: Vec<u8>,
    peer: Peer,
}

impl Connection {
    pub fn new(socket: TcpStream, remote: SocketAddr, shared: &Shared) -> Self {
        // Events go out as soon as they are written, not when the last one was acknowledged.
        let _ = socket.set_nodelay(true);
        let local = match shared.channels {
            // Only the application's Rack env needs it: spare the system call otherwise.
            ChannelSource::Application(_) => socket.local_addr().unwrap_or(UNKNOWN_ADDR),
            ChannelSource::Query => UNKNOWN_ADDR,
        };
        Connection {
            socket,
            buffer: Vec::new(),
            peer: Peer { remote, local },
        }
    }

    /// Answers requests until the client leaves, a response ends the
    /// connection, or the server stops.
    pub async fn serve(mut self, shared: &Shared, mut stop: watch::Receiver<bool>) {
        loop {
            let head = tokio::select! {
                head = tokio::time::timeout(HEAD_TIMEOUT, self.read_head()) => head,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            let request = match head {
                Ok(Ok(Some(request))) => request,
                Ok(Err(e)) => return self.refuse(e).await,
                // Closed by the client, or idle too long.
                Ok(Ok(None)) | Err(_) => return,
            };
            let keep_alive = request.keep_alive() && !request.has_body();
            // Boxed, as is the lingering close's buffer: their state is needed
            // only for a moment, and inline it would size the task of every
            // connection, streams that live for hours included.
            match Box::pin(respond(shared, &request, &self.peer)).await {
                Reply::Stream { stream, headers } => {
                    let head = stream_head(&request, &headers, keep_alive);
                    if !self
                        .write_stream(stream, head, &request, keep_alive, shared)
                        .await
                    {
                        return;
                    }
                }
                Reply::StreamHead { headers } => {
                    let head = stream_head(&request, &headers, keep_alive);
                    if self.socket.write_all(&head).await.is_err() || !keep_alive {
                        return;
                    }
                }
                Reply::Text(text) => {
                    if self
                        .write_text(text, request.is_head(), keep_alive)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if !keep_alive {
                        // A body may still be coming: it must not reset the answer.
                        return self.linger_close().await;
                    }
                }
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Reads until a whole head is in; `None` if the client closed first.
    /// Bytes after the head (a pipelined request) stay in the buffer.
    async fn read_head(&mut self) -> Result<Option<RequestHead>, HeadError> {
        let mut unparsed = 0;
        loop {
            if may_complete_head(&self.buffer, unparsed) {
                if let Some((head, length)) = parse_request_head(&self.buffer)? {
                    self.buffer.drain(..length);
                    if self.buffer.is_empty() {
                        // Free it: a stream may now live for hours.
                        self.buffer = Vec::new();
                    }
                    return Ok(Some(head));
                }
            }
            unparsed = self.buffer.len();
            self.buffer
                .reserve(READ_SIZE.min(MAX_HEAD + 1 - self.buffer.len()));
            match self.socket.read_buf(&mut self.buffer).await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    /// Answers a head that could not be read, and closes.
    async fn refuse(mut self, error: HeadError) {
        debug!("bad request from {}: {error}", self.peer.remote);
        let status = error.status();
        let text = Text::plain(status, format!("{}\n{error}\n", status.line()));
        if self.write_text(text, false, false).await.is_ok() {
            self.linger_close().await;
        }
    }

    /// Writes a whole answer; its head alone for a HEAD request.
    async fn write_text(
        &mut self,
        text: Text,
        head_only: bool,
        keep_alive: bool,
    ) -> io::Result<()> {
        let Text {
            status,
            content_type,
            headers,
            body,
        } = text;
        let mut fields = vec![("Content-Type", content_type)];
        fields.extend(headers.iter().map(|(name, value)| (*name, value.as_str())));
        let mut response = response_head(status, &fields, Framing::Length(body.len()), keep_alive);
        if !head_only {
            response.extend_from_slice(&body);
        }
        self.socket.write_all(&response).await
    }

    /// Writes a stream until it ends (true: the connection may serve another
    /// request) or the client goes (false).
    async fn write_stream(
        &mut self,
        mut stream: EventStream,
        head: Vec<u8>,
        request: &RequestHead,
        keep_alive: bool,
        shared: &Shared,
    ) -> bool {
        let framing = stream_framing(request);
        let keep_alive = keep_alive && framing == Framing::Chunked;
        let (mut reader, mut writer) = self.socket.split();
        // The head and the opening (history, lastEventId) in one write.
        let head = Bytes::from(head);
        let dropped = || {
            shared.metrics.dropped_slow.fetch_add(1, Relaxed);
            false
        };
        let written = match stream.take_opening() {
            Some(opening) => {
                writer
                    .write_all_buf(&mut head.chain(frame(opening, framing)))
                    .await
            }
            None => writer.write_all(&head).await,
        };
        if written.is_err() {
            return false;
        }
        // A client that sent anything while its stream was open gets no
        // more requests read on this connection: those bytes were dropped,
        // and what follows them cannot be told from a new request.
        let mut sent_meanwhile = false;
        loop {
            let next = tokio::select! {
                next = poll_fn(|cx| stream.poll_next(cx)) => next,
                _ = client_gone(&mut reader, &mut sent_meanwhile) => return false,
            };
            let text = match next {
                Next::Write(text) => text,
                Next::End => break,
                Next::Drop => return dropped(),
            };
            let mut framed = frame(text, framing);
            tokio::select! {
                written = writer.write_all_buf(&mut framed) => if written.is_err() { return false },
                _ = client_gone(&mut reader, &mut sent_meanwhile) => return false,
                _ = stream.overflowed() => return dropped(),
            }
        }
        if framing == Framing::Chunked && writer.write_all(LAST_CHUNK).await.is_err() {
            return false;
        }
        keep_alive && !sent_meanwhile
    }

    /// Closes after an answer the client may still be sending to (the rest of
    /// a huge head, a body this server never reads): closing with unread data
    /// would reset the connection, and the client could lose the answer. So
    /// the write side is shut first, and what comes is read and dropped, for a
    /// bounded time and size, as nginx's lingering close does.
    async fn linger_close(mut self) {
        if self.socket.shutdown().await.is_err() {
            return;
        }
        let socket = &mut self.socket;
        let drain = async {
            let mut scratch = vec![0u8; 4096];
            let mut drained = 0;
            while drained < LINGER_BYTES {
                match socket.read(&mut scratch).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => drained += n,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    }
}

/// A text as the body's framing wants it: for chunks, size line, the
/// shared text, CRLF, written in one vectored call without copying.
fn frame(text: Bytes, framing: Framing) -> impl Buf {
    match framing {
        Framing::Chunked => ChunkHeader::new(text.len()).chain(text).chain(CRLF),
        _ => ChunkHeader::none().chain(text).chain(&b""[..]),
    }
}

/// A stream's response head, with its extra headers (CORS).
fn stream_head(
    request: &RequestHead,
    extra: &[(&'static str, String)],
    keep_alive: bool,
) -> Vec<u8> {
    let framing = stream_framing(request);
    let mut headers: Vec<(&str, &str)> = STREAM_HEADERS.to_vec();
    headers.extend(extra.iter().map(|(name, value)| (*name, value.as_str())));
    response_head(
        Status::Ok,
        &headers,
        framing,
        keep_alive && framing == Framing::Chunked,
    )
}

/// HTTP/1.0 has no chunks: the body ends when the connection does.
fn stream_framing(request: &RequestHead) -> Framing {
    if request.minor_version == 0 {
        Framing::UntilClose
    } else {
        Framing::Chunked
    }
}

/// Completes when the client closed its side (or the socket failed).
/// Anything it sends meanwhile is dropped, and noted in `sent`.
async fn client_gone(reader: &mut ReadHalf<'_>, sent: &mut bool) {
    let mut scratch = [0u8; 64];
    loop {
        match reader.read(&mut scratch).await {
            Ok(0) | Err(_) => return,
            Ok(_) => *sent = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn future_size<F, Fut>(_: F) -> usize
    where
        F: FnOnce(Connection, &'static Shared, watch::Receiver<bool>) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// Most of an idle stream's memory is its connection's task, sized by
    /// the largest state of `serve`: a buffer or an answer's state held
    /// inline there costs every stream for its whole life (the answer's
    /// state and a 4 KiB buffer once took an idle stream from 3.8 KiB to 7.4).
    #[test]
    fn a_connections_task_holds_no_passing_state() {
        let size = future_size(|connection, shared, stop| connection.serve(shared, stop));
        println!("a connection's task: {size} bytes");
        assert!(size <= 3072, "a connection's task takes {size} bytes");
    }
}

//! One client connection: read a request head, answer it, and for an
//! event stream, write its chunks as they come until it ends.
//!
//! Sized for SSE: the head is read into a buffer that is freed once parsed,
//! and a stream then holds no buffer of its own, only the shared event
//! texts it is writing. The socket is still read while streaming, to
//! notice at once a client that left.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info};

use super::channel_source::ChannelSource;
use super::respond::{respond, Peer, Reply, Text, STREAM_HEADERS};
use super::stream::{EventStream, Next};
use super::Shared;
use crate::protocol::http::{
    may_complete_head, parse_request_head, response_head, Framing, HeadError, RequestHead, Status,
    LAST_CHUNK, MAX_HEAD,
};

/// How long a client may take to send a request head, and how long an idle
/// kept-alive connection waits for the next one.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
const READ_SIZE: usize = 2048;
const UNKNOWN_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// How long, and how much, a closing connection reads and discards.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

pub struct ClientConnection {
    socket: TcpStream,
    /// Bytes read and not parsed yet: a head coming in, or a pipelined request.
    buffer: Vec<u8>,
    peer: Peer,
}

impl ClientConnection {
    pub fn new(socket: TcpStream, remote: SocketAddr, shared: &Shared) -> Self {
        // Events go out as soon as they are written, not when the last one was acknowledged.
        let _ = socket.set_nodelay(true);
        let local = match shared.channels {
            // Only the application's Rack env needs it: spare the system call otherwise.
            ChannelSource::Application(_) => socket.local_addr().unwrap_or(UNKNOWN_ADDR),
            ChannelSource::Query => UNKNOWN_ADDR,
        };
        ClientConnection {
            socket,
            buffer: Vec::new(),
            peer: Peer { remote, local },
        }
    }

    /// Answers requests until the client leaves, a response ends the
    /// connection, or the server stops.
    ///
    /// The task of a connection is sized by the largest state of this
    /// future, and a stream lives in it for hours: so everything but the
    /// stream's body is done in boxed futures, allocated only while they
    /// run (a request head, the answer, a closing).
    pub async fn serve(mut self, shared: &Shared, mut stop: watch::Receiver<bool>) {
        loop {
            match Box::pin(self.answer_next(shared, &mut stop)).await {
                Answered::Stream {
                    stream,
                    head,
                    shape,
                } => {
                    if !self.write_stream(stream, head, shape, shared).await {
                        return;
                    }
                }
                Answered::Done => {}
                Answered::Close => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Reads the next request and answers it, but for a stream's body.
    async fn answer_next(&mut self, shared: &Shared, stop: &mut watch::Receiver<bool>) -> Answered {
        let send_timeout = shared.limits.send_timeout;
        let head = tokio::select! {
            head = tokio::time::timeout(HEAD_TIMEOUT, self.read_head()) => head,
            _ = stop.wait_for(|stop| *stop) => return Answered::Close,
        };
        let request = match head {
            Ok(Ok(Some(request))) => request,
            Ok(Err(e)) => {
                self.answer_bad_head(e, send_timeout).await;
                return Answered::Close;
            }
            // Closed by the client, or idle too long.
            Ok(Ok(None)) | Err(_) => return Answered::Close,
        };
        let shape = AnswerShape::of(&request);
        // A client that leaves meanwhile (while the application picks its
        // channels, say) gives its request up.
        let ClientConnection {
            socket,
            buffer,
            peer,
        } = self;
        let reply = tokio::select! {
            reply = respond(shared, &request, peer) => reply,
            _ = client_left(socket, buffer) => {
                shared.metrics.abandoned.fetch_add(1, Relaxed);
                return Answered::Close;
            }
        };
        // A stream keeps what it needs and no more: its request head may
        // be 64 KiB, and it may live for hours.
        drop(request);
        match reply {
            Reply::Stream { stream, headers } => Answered::Stream {
                stream,
                head: stream_response_head(&headers, shape),
                shape,
            },
            Reply::StreamHead { headers } => {
                let head = stream_response_head(&headers, shape);
                let written = write_within(&mut self.socket, &head[..], send_timeout).await;
                if written.is_err() || !shape.keep_alive {
                    return Answered::Close;
                }
                Answered::Done
            }
            Reply::Text(text) => {
                let keep_alive = shape.keep_alive && !text.closes;
                let written = self.write_text(text, shape.head_only, keep_alive, send_timeout);
                if written.await.is_err() {
                    return Answered::Close;
                }
                if !keep_alive {
                    self.close(shape.has_body).await;
                    return Answered::Close;
                }
                Answered::Done
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
    async fn answer_bad_head(&mut self, error: HeadError, send_timeout: Duration) {
        debug!("bad request from {}: {error}", self.peer.remote);
        let status = error.status();
        let text = Text::plain(status, format!("{}\n{error}\n", status.line()));
        if self
            .write_text(text, false, false, send_timeout)
            .await
            .is_ok()
        {
            // What is left of the head may still be coming.
            self.close(true).await;
        }
    }

    /// Writes a whole answer; its head alone for a HEAD request.
    async fn write_text(
        &mut self,
        text: Text,
        head_only: bool,
        keep_alive: bool,
        send_timeout: Duration,
    ) -> io::Result<()> {
        let Text {
            status,
            content_type,
            headers,
            body,
            closes: _,
        } = text;
        let mut fields = vec![("Content-Type", content_type)];
        fields.extend(headers.iter().map(|(name, value)| (*name, value.as_str())));
        let mut response = response_head(status, &fields, Framing::Length(body.len()), keep_alive);
        if !head_only {
            response.extend_from_slice(&body);
        }
        let written = write_within(&mut self.socket, &response[..], send_timeout).await;
        if written
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::TimedOut)
        {
            info!(
                "closing the connection of {}: it took nothing of its answer for {send_timeout:?} (--send-timeout)",
                self.peer.remote
            );
        }
        written
    }

    /// Writes a stream until it ends (true: the connection may serve another
    /// request) or the client goes (false). Every write, the opening's
    /// too, is given up when the client falls too far behind, or takes
    /// nothing for the send timeout (the heartbeats it leaves untaken tell).
    async fn write_stream(
        &mut self,
        mut stream: Box<EventStream>,
        head: Vec<u8>,
        shape: AnswerShape,
        shared: &Shared,
    ) -> bool {
        let keep_alive = shape.keep_alive && shape.framing == Framing::Chunked;
        // A client that sent anything after its stream's request gets no
        // more requests read on this connection: what it sent while the
        // stream was open is dropped, and what follows cannot be told from
        // a new request. Nor is it kept meanwhile.
        let sent_before = !self.buffer.is_empty();
        self.buffer = Vec::new();
        // The head and the opening (history, lastEventId) in one write.
        let mut first = head;
        first.extend_from_slice(&stream.take_opening().unwrap_or_default());
        let body = BodyWriter {
            socket: &self.socket,
            stream,
            out: Bytes::from(first),
            client_sent: sent_before,
        };
        let (ended, client_sent) = body.await;
        match ended {
            Ended::Stream => {}
            Ended::ClientGone => return false,
            Ended::FellBehind => {
                shared.metrics.dropped_slow.fetch_add(1, Relaxed);
                return false;
            }
        }
        if shape.framing == Framing::Chunked {
            // Boxed: needed once, at the end of a stream.
            let written = write_within(&mut self.socket, LAST_CHUNK, shared.limits.send_timeout);
            if Box::pin(written).await.is_err() {
                return false;
            }
        }
        // A stopping server takes no more requests.
        keep_alive && !client_sent && !shared.draining.load(Relaxed)
    }

    /// Closes after an answer. Unread bytes make a close reset the
    /// connection, and the client could lose the answer: when some may
    /// still come (the rest of a head, a body this server never reads), the
    /// connection lingers; otherwise it closes at once, and a crowd of
    /// refused clients holds no descriptors.
    async fn close(&mut self, more_may_come: bool) {
        let pending = !self.buffer.is_empty()
            || !matches!(self.socket.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        if more_may_come || pending {
            self.linger_close().await;
        }
    }

    /// Closes after an answer the client may still be sending to (the rest of
    /// a huge head, a body this server never reads): closing with unread data
    /// would reset the connection, and the client could lose the answer. So
    /// the write side is shut first, and what comes is read and dropped, for a
    /// bounded time and size, as nginx's lingering close does.
    async fn linger_close(&mut self) {
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

/// What came of a request, but for a stream's body.
enum Answered {
    /// A stream: its response head, and its body to write.
    Stream {
        stream: Box<EventStream>,
        head: Vec<u8>,
        shape: AnswerShape,
    },
    /// The answer is written: on to the next request.
    Done,
    /// The connection is to close (it was closed already).
    Close,
}

/// What an answer's framing depends on in its request: all that is kept
/// of the request once it is answered.
#[derive(Debug, Clone, Copy)]
struct AnswerShape {
    head_only: bool,
    keep_alive: bool,
    has_body: bool,
    /// A stream's: HTTP/1.0 has no chunks, its body ends with the connection.
    framing: Framing,
}

impl AnswerShape {
    fn of(request: &RequestHead) -> Self {
        AnswerShape {
            head_only: request.is_head(),
            keep_alive: request.keep_alive() && !request.has_body(),
            has_body: request.has_body(),
            framing: request.streaming_framing(),
        }
    }
}

/// How a stream's body ended.
enum Ended {
    /// The stream ended: the response is finished.
    Stream,
    ClientGone,
    /// The client fell too far behind: its connection is dropped.
    FellBehind,
}

/// Writes a stream's body as its events come, and watches for the client
/// leaving. Written by hand, not as an `async` block, because it is what
/// an idle stream is for hours: its size is every stream's memory.
struct BodyWriter<'a> {
    socket: &'a TcpStream,
    stream: Box<EventStream>,
    /// Body bytes given by the stream and not written yet.
    out: Bytes,
    /// The client sent something after its request.
    client_sent: bool,
}

impl Future for BodyWriter<'_> {
    /// How the body ended, and whether the client sent anything meanwhile.
    type Output = (Ended, bool);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.poll_body(cx).map(|ended| (ended, this.client_sent))
    }
}

impl BodyWriter<'_> {
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Ended> {
        if self.client_left(cx) {
            return Poll::Ready(Ended::ClientGone);
        }
        loop {
            if self.out.is_empty() {
                match self.stream.poll_next(cx) {
                    Poll::Ready(Next::Write(bytes)) => self.out = bytes,
                    Poll::Ready(Next::End) => return Poll::Ready(Ended::Stream),
                    Poll::Ready(Next::FellBehind) => return Poll::Ready(Ended::FellBehind),
                    Poll::Pending => return Poll::Pending,
                }
                continue;
            }
            match self.socket.try_write(&self.out) {
                Ok(0) => return Poll::Ready(Ended::ClientGone),
                Ok(written) => self.out.advance(written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Stuck until the client reads: unless it fell too far
                    // behind meanwhile (then dropped at once).
                    if self.stream.poll_fell_behind(cx) {
                        return Poll::Ready(Ended::FellBehind);
                    }
                    match self.socket.poll_write_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(_)) => return Poll::Ready(Ended::ClientGone),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(_) => return Poll::Ready(Ended::ClientGone),
            }
        }
    }

    /// Whether the client closed its side (or the socket failed); if not, a
    /// wake-up when it does. What it sends meanwhile is read and dropped.
    fn client_left(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            match self.socket.poll_read_ready(cx) {
                Poll::Pending => return false,
                Poll::Ready(Err(_)) => return true,
                Poll::Ready(Ok(())) => {}
            }
            let mut scratch = [0u8; 64];
            match self.socket.try_read(&mut scratch) {
                Ok(0) => return true,
                Ok(_) => self.client_sent = true,
                // Read all: poll again, to be woken by what comes next.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return true,
            }
        }
    }
}

/// A stream's response head, with its extra headers (CORS).
fn stream_response_head(extra: &[(&'static str, String)], shape: AnswerShape) -> Vec<u8> {
    let mut headers: Vec<(&str, &str)> = STREAM_HEADERS.to_vec();
    headers.extend(extra.iter().map(|(name, value)| (*name, value.as_str())));
    response_head(
        Status::Ok,
        &headers,
        shape.framing,
        shape.keep_alive && shape.framing == Framing::Chunked,
    )
}

/// Writes all of `text`, unless the client takes nothing of it for
/// `send_timeout`: a client that never reads must not hold a connection
/// and its answer forever.
async fn write_within(
    writer: &mut (impl AsyncWrite + Unpin),
    mut text: impl Buf,
    send_timeout: Duration,
) -> io::Result<()> {
    while text.has_remaining() {
        match tokio::time::timeout(send_timeout, writer.write_buf(&mut text)).await {
            Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        }
    }
    Ok(())
}

/// Completes when the client closed its side while its request is being
/// answered. What it sends meanwhile (a pipelined request) is kept for
/// later, up to a head's size.
async fn client_left(socket: &mut TcpStream, buffer: &mut Vec<u8>) {
    loop {
        if buffer.len() > MAX_HEAD {
            return std::future::pending().await;
        }
        buffer.reserve(READ_SIZE);
        match socket.read_buf(buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn future_size<F, Fut>(_: F) -> usize
    where
        F: FnOnce(ClientConnection, &'static Shared, watch::Receiver<bool>) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// Much of an idle stream's memory is its connection's task, sized by
    /// the largest state of `serve`: a buffer or an answer's state held
    /// inline there costs every stream for its whole life (the answer's
    /// state and a 4 KiB buffer once took an idle stream from 3.8 KiB to
    /// 7.4; a stream's state held beside the future that wrote it, 2 KiB).
    #[test]
    fn a_connections_task_holds_no_passing_state() {
        let size = future_size(|connection, shared, stop| connection.serve(shared, stop));
        println!("a connection's task: {size} bytes");
        assert!(size <= 640, "a connection's task takes {size} bytes");
    }
}

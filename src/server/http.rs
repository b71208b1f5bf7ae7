//! Answering one HTTP request: stats, the error responses of SPEC §2, or a
//! new event stream.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::header::{HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use tokio::sync::Notify;
use tracing::{info, warn};

use super::channels::{ChannelSource, RequestInfo};
use super::hub::Hub;
use super::mailbox::Mailbox;
use super::stream::EventStream;
use super::Shared;
use crate::protocol::accept::{negotiate, Representation};
use crate::protocol::history::{plan_opening, Start};
use crate::protocol::request::{parse_last_event_id, parse_query, Channel};

/// A response's body: a whole text, or an event stream.
pub enum ResponseBody {
    Full(Option<Bytes>),
    Stream(Box<EventStream>),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResponseBody::Full(text) => Poll::Ready(text.take().map(|text| Ok(Frame::data(text)))),
            ResponseBody::Stream(stream) => Pin::new(stream.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(text) => {
                SizeHint::with_exact(text.as_ref().map_or(0, |t| t.len() as u64))
            }
            ResponseBody::Stream(stream) => stream.size_hint(),
        }
    }
}

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Full(Some(body.into())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn plain(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    text(status, "text/plain", body)
}

const NOT_ACCEPTABLE: &str =
    "406 Not Acceptable\nThis resource can only be represented as text/event-stream.\n";
const NOT_FOUND: &str = "404 Not Found\n";
const UNAVAILABLE: &str = "503 Service Unavailable\n";
const INTERNAL_ERROR: &str = "500 Internal Server Error\n";

/// The connection a request came on.
pub struct Peer {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// Drops the connection when its stream's client has stalled.
    pub abort: Arc<Notify>,
}

pub async fn respond<B>(
    shared: Arc<Shared>,
    request: Request<B>,
    peer: &Peer,
) -> Response<ResponseBody> {
    match negotiate(request.headers().get(ACCEPT).map(HeaderValue::as_bytes)) {
        Representation::Stats => text(StatusCode::OK, "application/json", shared.stats.to_json()),
        Representation::NotAcceptable => plain(StatusCode::NOT_ACCEPTABLE, NOT_ACCEPTABLE),
        Representation::EventStream => open_stream(shared, request, peer).await,
    }
}

async fn open_stream<B>(
    shared: Arc<Shared>,
    request: Request<B>,
    peer: &Peer,
) -> Response<ResponseBody> {
    let query = request.uri().query().unwrap_or("").as_bytes();
    let (options, query_channels) = match parse_query(query) {
        Ok(parsed) => parsed,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("400 Bad Request\n{e}\n")),
    };
    let channels = match &shared.channels {
        ChannelSource::Query => query_channels,
        ChannelSource::Application(requests) => {
            match requests.submit(request_info(&request, peer)).await {
                Ok(Ok(channels)) => dedup(channels),
                Ok(Err(message)) => {
                    warn!("the channels block failed for {}: {message}", peer.remote);
                    return plain(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR);
                }
                Err(_) => return plain(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE),
            }
        }
    };
    if channels.is_empty() {
        return plain(StatusCode::NOT_FOUND, NOT_FOUND);
    }
    if !shared.hub.is_up() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
    }
    let last_event_id = request
        .headers()
        .get("last-event-id")
        .and_then(|value| parse_last_event_id(value.as_bytes()))
        .or(options.last_event_id);
    match subscribe(&shared, &channels, last_event_id, options.polling, peer).await {
        Ok(stream) => {
            info!(
                "stream opened: {} channels {} last id {} {}",
                peer.remote,
                describe(&channels),
                last_event_id.map_or("none".to_string(), |id| id.to_string()),
                if options.polling {
                    "(long polling)"
                } else {
                    ""
                }
            );
            let mut response = Response::new(ResponseBody::Stream(Box::new(stream)));
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
            response
        }
        Err(reason) => {
            warn!("stream refused to {}: {reason}", peer.remote);
            plain(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE)
        }
    }
}

/// Subscribes first, then reads history, so that nothing published in
/// between is lost (SPEC §2); the stream skips what it gets twice.
async fn subscribe(
    shared: &Arc<Shared>,
    channels: &[Channel],
    last_event_id: Option<u64>,
    polling: bool,
    peer: &Peer,
) -> Result<EventStream, String> {
    let start = match last_event_id {
        Some(id) => Start::After(id),
        None => Start::Opened {
            counter: shared
                .store
                .counter()
                .await
                .map_err(|e| e.to_string())?
                .unwrap_or(0),
        },
    };
    let mailbox = Mailbox::new(peer.abort.clone());
    // Until the stream exists, leaving (an error, or the client going away
    // and this future dropped) must not leave the mailbox subscribed.
    let pending = PendingSubscription {
        hub: &shared.hub,
        stream: mailbox.id(),
    };
    shared
        .hub
        .subscribe(mailbox.clone(), channels.to_vec())
        .await
        .map_err(|e| e.to_string())?;
    let snapshot = shared
        .store
        .snapshot(start, channels)
        .await
        .map_err(|e| e.to_string())?;
    std::mem::forget(pending);
    let opening = plan_opening(start, snapshot.histories, snapshot.counter);
    Ok(EventStream::new(
        opening,
        mailbox,
        polling,
        shared.hub.clone(),
        shared.stats.clone(),
        peer.remote.to_string(),
    ))
}

struct PendingSubscription<'a> {
    hub: &'a Hub,
    stream: u64,
}

impl Drop for PendingSubscription<'_> {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.stream);
    }
}

fn request_info<B>(request: &Request<B>, peer: &Peer) -> RequestInfo {
    RequestInfo {
        method: request.method().to_string(),
        path: request.uri().path().to_string(),
        query: request.uri().query().unwrap_or("").to_string(),
        headers: request
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect(),
        remote_addr: peer.remote,
        local_addr: peer.local,
    }
}

fn dedup(channels: Vec<Channel>) -> Vec<Channel> {
    let mut unique: Vec<Channel> = Vec::with_capacity(channels.len());
    for channel in channels {
        if !channel.is_empty() && !unique.contains(&channel) {
            unique.push(channel);
        }
    }
    unique
}

fn describe(channels: &[Channel]) -> String {
    let names: Vec<_> = channels
        .iter()
        .map(|c| format!("{:?}", String::from_utf8_lossy(c)))
        .collect();
    format!("[{}]", names.join(", "))
}

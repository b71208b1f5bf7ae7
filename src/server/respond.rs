//! Answering one HTTP request: stats, the error responses of SPEC §2, or a
//! new event stream.

use std::net::SocketAddr;

use bytes::Bytes;
use tracing::{info, warn};

use super::accept::RETRY_AFTER;
use super::channels::{Answer, ChannelSource, RequestInfo};
use super::hub::Link;
use super::stream::{EventStream, StreamRequest};
use super::Shared;
use crate::protocol::accept::{negotiate, Representation};
use crate::protocol::http::{RequestHead, Status};
use crate::protocol::request::{parse_last_event_id, parse_query, unique_channels, Channel};

/// What a request gets: a whole text, or an event stream.
pub enum Reply {
    Text(Text),
    Stream(EventStream),
    /// A stream's head alone (a HEAD request): nothing is subscribed.
    StreamHead,
}

/// A response with a body known in full.
pub struct Text {
    pub status: Status,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Text {
    pub fn plain(status: Status, body: impl Into<Bytes>) -> Self {
        Text {
            status,
            content_type: "text/plain",
            headers: Vec::new(),
            body: body.into(),
        }
    }

    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

fn plain(status: Status, body: impl Into<Bytes>) -> Reply {
    Reply::Text(Text::plain(status, body))
}

pub const STREAM_HEADERS: &[(&str, &str)] = &[
    ("Content-Type", "text/event-stream"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),
];

const NOT_ACCEPTABLE: &str =
    "406 Not Acceptable\nThis resource can only be represented as text/event-stream.\n";
const NOT_FOUND: &str = "404 Not Found\n";
const UNAVAILABLE: &str = "503 Service Unavailable\n";
const INTERNAL_ERROR: &str = "500 Internal Server Error\n";
const METHOD_NOT_ALLOWED: &str = "405 Method Not Allowed\nOnly GET and HEAD are served.\n";

/// The connection a request came on.
pub struct Peer {
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

pub async fn respond(shared: &Shared, request: &RequestHead, peer: &Peer) -> Reply {
    if !matches!(request.method.as_str(), "GET" | "HEAD") {
        return Reply::Text(
            Text::plain(Status::MethodNotAllowed, METHOD_NOT_ALLOWED)
                .with_header("Allow", "GET, HEAD"),
        );
    }
    match negotiate(request.header("accept")) {
        Representation::Stats => Reply::Text(Text {
            status: Status::Ok,
            content_type: "application/json",
            headers: Vec::new(),
            body: shared.stats.to_json().into(),
        }),
        Representation::NotAcceptable => plain(Status::NotAcceptable, NOT_ACCEPTABLE),
        Representation::EventStream if request.is_head() => Reply::StreamHead,
        Representation::EventStream => open_stream(shared, request, peer).await,
    }
}

async fn open_stream(shared: &Shared, request: &RequestHead, peer: &Peer) -> Reply {
    let (options, query_channels) = match parse_query(request.query.as_bytes()) {
        Ok(parsed) => parsed,
        Err(e) => return plain(Status::BadRequest, format!("400 Bad Request\n{e}\n")),
    };
    let channels = match &shared.channels {
        ChannelSource::Query => query_channels,
        ChannelSource::Application(requests) => {
            match requests.ask(request_info(request, peer)).await {
                Answer::Channels(channels) => unique_channels(channels),
                Answer::Failed(message) => {
                    warn!("the channels block failed for {}: {message}", peer.remote);
                    return plain(Status::InternalServerError, INTERNAL_ERROR);
                }
                Answer::Unavailable(reason) => {
                    warn!("no channels for {}: {reason}", peer.remote);
                    return plain(Status::ServiceUnavailable, UNAVAILABLE);
                }
            }
        }
    };
    if channels.is_empty() {
        return plain(Status::NotFound, NOT_FOUND);
    }
    let max_channels = shared.limits.max_channels;
    if channels.len() > max_channels {
        return plain(
            Status::BadRequest,
            format!(
                "400 Bad Request\n{} channels asked for; a stream may have {max_channels} at most (--max-channels).\n",
                channels.len()
            ),
        );
    }
    let Some(slot) = shared.streams.reserve(shared.limits.max_streams) else {
        return Reply::Text(
            Text::plain(
                Status::ServiceUnavailable,
                format!(
                    "503 Service Unavailable\nThe server holds {} streams, its limit (--max-streams).\n",
                    shared.limits.max_streams
                ),
            )
            .with_header("Retry-After", RETRY_AFTER),
        );
    };
    if shared.hub.link() == Link::Down {
        return plain(Status::ServiceUnavailable, UNAVAILABLE);
    }
    let last_event_id = request
        .header("last-event-id")
        .and_then(parse_last_event_id)
        .or(options.last_event_id);
    let described = describe(&channels);
    let stream = StreamRequest {
        channels,
        last_event_id,
        polling: options.polling,
        remote: peer.remote,
        slot,
    };
    match EventStream::open(shared, stream).await {
        Ok(stream) => {
            info!(
                "stream opened: {} channels {described} last id {} {}",
                peer.remote,
                last_event_id.map_or("none".to_string(), |id| id.to_string()),
                if options.polling {
                    "(long polling)"
                } else {
                    ""
                }
            );
            Reply::Stream(stream)
        }
        Err(reason) => {
            warn!("stream refused to {}: {reason}", peer.remote);
            plain(Status::ServiceUnavailable, UNAVAILABLE)
        }
    }
}

fn request_info(request: &RequestHead, peer: &Peer) -> RequestInfo {
    RequestInfo {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        headers: request.headers.clone(),
        remote_addr: peer.remote,
        local_addr: peer.local,
    }
}

/// The channels for the log: the first few, and how many in all.
fn describe(channels: &[Channel]) -> String {
    const SHOWN: usize = 10;
    let names: Vec<_> = channels
        .iter()
        .take(SHOWN)
        .map(|c| format!("{:?}", String::from_utf8_lossy(c)))
        .collect();
    if channels.len() > SHOWN {
        format!("[{}, ... {} in all]", names.join(", "), channels.len())
    } else {
        format!("[{}]", names.join(", "))
    }
}

//! Answering one HTTP request: stats, the error responses of SPEC §2, or a
//! new event stream.

use std::net::SocketAddr;

use bytes::Bytes;
use tracing::{info, warn};

use super::channels::{ChannelSource, RequestInfo};
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
}

/// A response with a body known in full.
pub struct Text {
    pub status: Status,
    pub content_type: &'static str,
    pub body: Bytes,
}

impl Text {
    pub fn plain(status: Status, body: impl Into<Bytes>) -> Self {
        Text {
            status,
            content_type: "text/plain",
            body: body.into(),
        }
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

/// The connection a request came on.
pub struct Peer {
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

pub async fn respond(shared: &Shared, request: &RequestHead, peer: &Peer) -> Reply {
    match negotiate(request.header("accept")) {
        Representation::Stats => Reply::Text(Text {
            status: Status::Ok,
            content_type: "application/json",
            body: shared.stats.to_json().into(),
        }),
        Representation::NotAcceptable => plain(Status::NotAcceptable, NOT_ACCEPTABLE),
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
            match requests.submit(request_info(request, peer)).await {
                Ok(Ok(channels)) => unique_channels(channels),
                Ok(Err(message)) => {
                    warn!("the channels block failed for {}: {message}", peer.remote);
                    return plain(Status::InternalServerError, INTERNAL_ERROR);
                }
                Err(_) => return plain(Status::ServiceUnavailable, UNAVAILABLE),
            }
        }
    };
    if channels.is_empty() {
        return plain(Status::NotFound, NOT_FOUND);
    }
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

fn describe(channels: &[Channel]) -> String {
    let names: Vec<_> = channels
        .iter()
        .map(|c| format!("{:?}", String::from_utf8_lossy(c)))
        .collect();
    format!("[{}]", names.join(", "))
}

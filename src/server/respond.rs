//! Answering one HTTP request: stats, the error responses of SPEC §2, or a
//! new event stream.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use tracing::{info, warn};

use super::accept::RETRY_AFTER;
use super::channel_source::{Answer, ChannelSource, RequestInfo};
use super::hub::Link;
use super::metrics::{self, RedisLinks};
use super::stream::{EventStream, OpenError, StreamRequest};
use super::Shared;
use crate::channel::{unique_channels, Channel};
use crate::protocol::http::{RequestHead, Status};
use crate::protocol::negotiation::{negotiate, Representation};
use crate::protocol::request::{find_token, parse_last_event_id, parse_query};
use crate::token::{self, Grant, TokenError};
use crate::unix_time;

/// What a request gets: a whole text, or an event stream.
pub enum Reply {
    Text(Text),
    Stream {
        /// Boxed: a stream lives for hours in its connection's task, whose
        /// every state would otherwise be sized for it.
        stream: Box<EventStream>,
        /// Beyond `STREAM_HEADERS` (CORS).
        headers: Vec<(&'static str, String)>,
    },
    /// A stream's head alone (a HEAD request): nothing is subscribed.
    StreamHead {
        headers: Vec<(&'static str, String)>,
    },
}

impl Reply {
    fn stream(stream: EventStream) -> Self {
        Reply::Stream {
            stream: Box::new(stream),
            headers: Vec::new(),
        }
    }

    fn headers_mut(&mut self) -> &mut Vec<(&'static str, String)> {
        match self {
            Reply::Text(text) => &mut text.headers,
            Reply::Stream { headers, .. } | Reply::StreamHead { headers } => headers,
        }
    }
}

/// A response with a body known in full.
pub struct Text {
    pub status: Status,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    /// The connection closes after it, kept alive or not.
    pub closes: bool,
}

impl Text {
    pub fn plain(status: Status, body: impl Into<Bytes>) -> Self {
        Text {
            status,
            content_type: "text/plain",
            headers: Vec::new(),
            body: body.into(),
            closes: false,
        }
    }

    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn json(status: Status, body: impl Into<Bytes>) -> Self {
        Text {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: body.into(),
            closes: false,
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
const METHOD_NOT_ALLOWED: &str = "405 Method Not Allowed\nOnly GET and HEAD are served.\n";

/// The connection a request came on.
pub struct Peer {
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

/// The answer to a request, its CORS headers included.
pub async fn respond(shared: &Shared, request: &RequestHead, peer: &Peer) -> Reply {
    let origin = request.header("origin");
    let cors = &shared.access.cors;
    if request.method == "OPTIONS" && cors.is_enabled() {
        let mut preflight = Text::plain(Status::NoContent, "");
        preflight.headers = cors.preflight_headers(origin);
        return Reply::Text(preflight);
    }
    let mut reply = route(shared, request, peer).await;
    if let Reply::Text(Text {
        status: Status::ServiceUnavailable,
        ..
    }) = &reply
    {
        shared.metrics.unavailable.fetch_add(1, Relaxed);
    }
    reply.headers_mut().extend(cors.headers(origin));
    reply
}

async fn route(shared: &Shared, request: &RequestHead, peer: &Peer) -> Reply {
    if !matches!(request.method.as_str(), "GET" | "HEAD") {
        let allowed = if shared.access.cors.is_enabled() {
            "GET, HEAD, OPTIONS"
        } else {
            "GET, HEAD"
        };
        return Reply::Text(
            Text::plain(Status::MethodNotAllowed, METHOD_NOT_ALLOWED).with_header("Allow", allowed),
        );
    }
    let representation = negotiate(request.header("accept"));
    // The operators' endpoints, unless a stream is asked for (any path
    // serves streams, as in 0.4).
    if representation != Representation::EventStream {
        match request.path.as_str() {
            "/metrics" => return metrics(shared).await,
            "/health" => return health(shared).await,
            _ => {}
        }
    }
    match representation {
        Representation::Stats => {
            Reply::Text(Text::json(Status::Ok, shared.metrics.stats.to_json()))
        }
        Representation::NotAcceptable => plain(Status::NotAcceptable, NOT_ACCEPTABLE),
        Representation::EventStream if request.is_head() => {
            stream_head_reply(shared, request, peer)
        }
        Representation::EventStream => open_stream(shared, request, peer).await,
    }
}

/// The head a GET would get, without opening the stream: a token is still
/// needed, and checked.
fn stream_head_reply(shared: &Shared, request: &RequestHead, peer: &Peer) -> Reply {
    if matches!(shared.channels, ChannelSource::Query) && !shared.access.secrets.is_empty() {
        if let Err(reason) = granted(shared, request.query.as_bytes()) {
            return forbidden_token(shared, peer, reason);
        }
    }
    Reply::StreamHead {
        headers: Vec::new(),
    }
}

fn forbidden_token(shared: &Shared, peer: &Peer, reason: String) -> Reply {
    shared.metrics.tokens_refused.fetch_add(1, Relaxed);
    info!("stream refused to {}: {reason}", peer.remote);
    plain(Status::Forbidden, format!("403 Forbidden\n{reason}\n"))
}

/// How long `/health` waits for Redis to answer a PING.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// Up when both Redis connections are; for load balancers and probes.
async fn health(shared: &Shared) -> Reply {
    let pubsub = shared.hub.link();
    let commands = tokio::time::timeout(HEALTH_TIMEOUT, shared.history.ping())
        .await
        .unwrap_or(false);
    let word = |up: bool| if up { "up" } else { "down" };
    let pubsub_up = pubsub == Link::Up;
    let (status, reason) = match (pubsub_up, commands) {
        (true, true) => (Status::Ok, None),
        (false, _) if pubsub == Link::Connecting => (
            Status::ServiceUnavailable,
            Some("the Redis pub/sub connection is being made"),
        ),
        (false, _) => (
            Status::ServiceUnavailable,
            Some("the Redis pub/sub connection is down"),
        ),
        (true, false) => (
            Status::ServiceUnavailable,
            Some("the Redis command connection is down"),
        ),
    };
    let body = match reason {
        None => format!(
            "{{\"status\":\"ok\",\"pubsub\":\"{}\",\"commands\":\"{}\"}}\n",
            word(pubsub_up),
            word(commands)
        ),
        Some(reason) => format!(
            "{{\"status\":\"unavailable\",\"reason\":\"{reason}\",\"pubsub\":\"{}\",\"commands\":\"{}\"}}\n",
            word(pubsub_up),
            word(commands)
        ),
    };
    Reply::Text(Text::json(status, body))
}

async fn metrics(shared: &Shared) -> Reply {
    let links = RedisLinks {
        pubsub: shared.hub.link() == Link::Up,
        commands: shared.history.is_up(),
    };
    Reply::Text(Text {
        status: Status::Ok,
        content_type: metrics::CONTENT_TYPE,
        headers: Vec::new(),
        body: shared.metrics.encode(links).into(),
        closes: false,
    })
}

async fn open_stream(shared: &Shared, request: &RequestHead, peer: &Peer) -> Reply {
    let (options, query_channels) = match parse_query(request.query.as_bytes()) {
        Ok(parsed) => parsed,
        Err(e) => return plain(Status::BadRequest, format!("400 Bad Request\n{e}\n")),
    };
    let mut expires_at = None;
    let channels = match &shared.channels {
        ChannelSource::Query if !shared.access.secrets.is_empty() => {
            match granted(shared, request.query.as_bytes()) {
                Ok(grant) => {
                    expires_at = Some(grant.expires_at);
                    unique_channels(grant.channels)
                }
                Err(reason) => return forbidden_token(shared, peer, reason),
            }
        }
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
    if shared.draining.load(Relaxed) {
        // Its client reconnects to another server of the fleet.
        let mut stopping = Text::plain(
            Status::ServiceUnavailable,
            "503 Service Unavailable\nThe server is stopping.\n",
        )
        .with_header("Retry-After", RETRY_AFTER);
        stopping.closes = true;
        return Reply::Text(stopping);
    }
    let Some(slot) = shared.streams.reserve(shared.limits.max_streams) else {
        let mut full = Text::plain(
            Status::ServiceUnavailable,
            format!(
                "503 Service Unavailable\nThe server holds {} streams, its limit (--max-streams).\n",
                shared.limits.max_streams
            ),
        )
        .with_header("Retry-After", RETRY_AFTER);
        // Refused clients must not keep descriptors that stats, health
        // checks and the streams of the moment need.
        full.closes = true;
        return Reply::Text(full);
    };
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
        expires_at,
        framing: request.streaming_framing(),
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
            Reply::stream(stream)
        }
        Err(OpenError::Refused { channel, reason }) => {
            warn!(
                "stream refused to {}: Redis refused channel {:?} ({reason})",
                peer.remote,
                String::from_utf8_lossy(&channel)
            );
            plain(
                Status::Forbidden,
                format!(
                    "403 Forbidden\nThis server may not subscribe to channel {:?}.\n",
                    String::from_utf8_lossy(&channel)
                ),
            )
        }
        Err(reason) => {
            warn!("stream refused to {}: {reason}", peer.remote);
            plain(Status::ServiceUnavailable, UNAVAILABLE)
        }
    }
}

/// The grant of the request's token, or why there is none.
fn granted(shared: &Shared, query: &[u8]) -> Result<Grant, String> {
    let token = find_token(query).ok_or("missing token")?;
    let secrets: Vec<&[u8]> = shared.access.secrets.iter().map(Vec::as_slice).collect();
    let token = std::str::from_utf8(&token).map_err(|_| TokenError::Malformed.to_string())?;
    token::verify(token, &secrets, unix_time::now()).map_err(|e| e.to_string())
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

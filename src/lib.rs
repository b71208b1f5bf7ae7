//! # Redisse
//!
//! Server-Sent Events backed by Redis, compatible with the `redisse` 0.4
//! gem: same Redis keys, same event text, same server behaviour.
//!
//! # Layout
//!
//! - [`event`]: the text of one event (pure).
//! - [`protocol`]: the server's rules as pure functions: HTTP/1.1 heads,
//!   content negotiation, query parsing, history merging, stats JSON,
//!   CORS headers.
//! - [`percent`]: percent-encoding, for query strings and Redis URLs (pure).
//! - [`redis_url`]: Redis URLs (one server, a Sentinel group or a
//!   Cluster), TLS, and showing them without passwords.
//! - [`command_link`]: the connection for commands to the Redis of a URL.
//! - [`token`]: signed channel lists, made by the gem, checked by the server.
//! - [`publisher`]: publishing an event (blocking and interruptible, for
//!   the Ruby gem).
//! - [`process_local`]: state a forked child never shares with its parent.
//! - [`server`]: the server's I/O: the accept loop (`server::run`) and its
//!   spare descriptor (`accept`), its life cycle on threads of its own
//!   (`runtime`: logging, pid file, signals), one task per connection
//!   (`connection`), what a request gets (`respond`), a stream from its
//!   opening on (`stream`), the streams' mailboxes, the pub/sub hub
//!   (`hub`), the command store, where a stream's channels come from
//!   (`channels`: the query, or Ruby in process) and the counters behind
//!   `/metrics` (`metrics`).
//! - [`blocking`]: a queue that non-async threads (Ruby's) wait on.
//! - [`signal_mask`]: which threads take signals (Ruby's, never ours).
//! - [`cli`]: the command line's options and help, shared by the binary
//!   and the gem's `redisse` executable.

pub mod blocking;
pub mod cli;
pub mod command_link;
pub mod event;
pub mod percent;
pub mod process_local;
pub mod protocol;
pub mod publisher;
pub mod redis_url;
pub mod server;
pub mod signal_mask;
pub mod token;

//! # Redisse
//!
//! Server-Sent Events backed by Redis, compatible with the `redisse` 0.4
//! gem: same Redis keys, same event text, same server behaviour.
//!
//! # Layout
//!
//! Pure rules first (no I/O, unit-tested on their own):
//!
//! - [`channel`]: a channel's name, shared by streams and the hub.
//! - [`event`]: the text of one event, as `Redisse.publish` writes it.
//! - [`redis_layout`]: the keys, history size and id rule of 0.4's Redis
//!   layout, which the publisher writes and the server reads.
//! - [`protocol`]: the server's rules: HTTP/1.1 heads (`http`), content
//!   negotiation (`negotiation`), the query (`request`), a stream's opening
//!   (`history`), the stats JSON (`stats`), CORS headers (`cors`).
//! - [`percent`]: percent-encoding, for queries and Redis URLs.
//! - [`token`]: signed channel lists, made by the gem, checked by the server.
//! - [`unix_time`]: the wall clock that tokens expire by.
//!
//! Then I/O:
//!
//! - [`redis_url`]: Redis URLs (one server, a Sentinel group or a
//!   Cluster), TLS, and showing them without passwords.
//! - [`command_link`]: the connection for commands to the Redis of a URL.
//! - [`publisher`]: publishing an event (blocking and interruptible, for
//!   the Ruby gem).
//! - [`server`]: the server: the accept loop (`server::run`) and its spare
//!   descriptor (`accept`), one task per client (`connection`), what a
//!   request gets (`respond`), a stream from its opening on (`stream`),
//!   its mailbox (`mailbox`), the one pub/sub connection fanning events out
//!   (`hub`), the one command connection reading histories
//!   (`history_reader`), where a stream's channels come from
//!   (`channel_source`: the query, or Ruby in process), the counters behind
//!   `/metrics` (`metrics`), memory given back after bursts (`heap`),
//!   and its life cycle on threads of its own (`runtime`: logging, pid
//!   file, signals).
//! - [`cli`]: the command line's options and help, shared by the binary
//!   and the gem's `redisse` executable.
//!
//! And what the Ruby extension needs of the process:
//!
//! - [`blocking`]: a queue that non-async threads (Ruby's) wait on.
//! - [`signal_mask`]: which threads take signals (Ruby's, never ours).
//! - [`process_local`]: state a forked child never shares with its parent.

pub mod blocking;
pub mod channel;
pub mod cli;
pub mod command_link;
pub mod event;
pub mod percent;
pub mod process_local;
pub mod protocol;
pub mod publisher;
pub mod redis_layout;
pub mod redis_url;
pub mod server;
pub mod signal_mask;
pub mod token;
pub mod unix_time;

//! # Redisse
//!
//! Server-Sent Events backed by Redis, compatible with the `redisse` 0.4
//! gem: same Redis keys, same event text, same server behaviour.
//!
//! # Layout
//!
//! - [`event`]: the text of one event (pure).
//! - [`protocol`]: the server's rules as pure functions: content
//!   negotiation, query parsing, history merging, stats JSON.
//! - [`redis_url`]: Redis URLs, and showing them without passwords.
//! - [`publisher`]: publishing an event (blocking, for the Ruby gem).
//! - [`server`]: the server's I/O: the pub/sub hub, the command store,
//!   the streams, the HTTP handling and the accept loop.
//! - [`blocking`]: a queue that non-async threads (Ruby's) wait on.
//! - [`cli`]: the command line, logging and pid file, shared by the binary
//!   and the gem's `redisse` executable.

pub mod blocking;
pub mod cli;
pub mod event;
pub mod protocol;
pub mod publisher;
pub mod redis_url;
pub mod server;

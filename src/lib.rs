//! # Redisse
//!
//! Server-Sent Events backed by Redis, compatible with the `redisse` 0.4
//! gem: same Redis keys, same event text, same server behaviour.
//!
//! # Layout
//!
//! - [`event`]: the text of one event (pure).
//! - [`protocol`]: the server's rules as pure functions: HTTP/1.1 heads,
//!   content negotiation, query parsing, history merging, stats JSON.
//! - [`redis_url`]: Redis URLs, and showing them without passwords.
//! - [`publisher`]: publishing an event (blocking, for the Ruby gem).
//! - [`server`]: the server's I/O: the accept loop (`server::run`), its
//!   life cycle on threads of its own (`runtime`: logging, pid file,
//!   signals), one task per connection (`connection`), what a request gets
//!   (`respond`), a stream from its opening on (`stream`), the streams'
//!   mailboxes, the pub/sub hub and the command store.
//! - [`blocking`]: a queue that non-async threads (Ruby's) wait on.
//! - [`signal_mask`]: keeping signals on Ruby's threads, off the server's.
//! - [`cli`]: the command line's options and help, shared by the binary
//!   and the gem's `redisse` executable.

pub mod blocking;
pub mod cli;
pub mod event;
pub mod protocol;
pub mod publisher;
pub mod redis_url;
pub mod server;
pub mod signal_mask;

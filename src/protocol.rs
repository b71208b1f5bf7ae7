//! The server's protocol as pure functions: what a request asks for, what a
//! stream starts with, what the stats say. No I/O here, so every rule of
//! SPEC §2 is unit-tested on its own.

pub mod cors;
pub mod history;
pub mod http;
pub mod negotiation;
pub mod request;
pub mod stats;

//! `Redisse::Native`: the Ruby binding of the `redisse` crate (this file is
//! its crate root, `lib.rs` as Cargo names it).
//!
//! Thin on purpose: it converts types, releases the GVL around blocking
//! calls (through [`gvl::without_gvl`], which hands interrupts back to
//! Ruby as values) and maps errors to the exception classes that Ruby
//! defines (`lib/redisse/errors.rb`). Rust threads never call Ruby: the
//! server hands channel requests to Ruby threads through a queue, and
//! their answers come back through a channel. The rules are written down
//! in doc/native-interface.md.

mod errors;
mod gvl;

use std::cell::RefCell;
use std::time::Duration;

use magnus::{function, method, prelude::*, Error, RArray, RClass, RString, Ruby};
use redisse::blocking::Popped;
use redisse::cli::{self, Command, Defaults};
use redisse::publisher::{PendingPublish, PublishError};
use redisse::server::channel_source::{ChannelRequest, ChannelRequests, ChannelSource};
use redisse::server::runtime::{self, RunningServer, Settings, Signals, Waited};

use errors::{command_line_error, connection_error, error, invalid_event_error};
use gvl::Released;

fn bytes(s: RString) -> Vec<u8> {
    // SAFETY: copied at once, with the GVL held and no Ruby call in between.
    unsafe { s.as_slice().to_vec() }
}

fn optional_bytes(s: Option<RString>) -> Option<Vec<u8>> {
    s.map(bytes)
}

/// An Array of Strings (already `to_s`-converted by Ruby) as channel names.
fn channel_names(channels: RArray) -> Result<Vec<redisse::channel::Channel>, Error> {
    (0..channels.len())
        .map(|i| {
            channels
                .entry::<RString>(i as isize)
                .map(|c| bytes(c).into())
        })
        .collect()
}

// ---- event text -----------------------------------------------------------

fn server_sent_event(
    ruby: &Ruby,
    data: RString,
    event_type: Option<RString>,
    id: Option<RString>,
    retry: Option<RString>,
) -> Result<RString, Error> {
    let (data, event_type, id, retry) = (
        bytes(data),
        optional_bytes(event_type),
        optional_bytes(id),
        optional_bytes(retry),
    );
    redisse::event::encode(
        &data,
        event_type.as_deref(),
        id.as_deref(),
        retry.as_deref(),
    )
    .map(|text| ruby.str_from_slice(&text))
    .map_err(|e| invalid_event_error(ruby, e.to_string()))
}

// ---- signed channel lists -------------------------------------------------

/// The token granting `channels` until `expires_at` (Unix seconds).
fn stream_token(
    channels: RArray,
    expires_at: u64,
    secret: RString,
    key_id: Option<String>,
) -> Result<String, Error> {
    let grant = redisse::token::Grant {
        channels: channel_names(channels)?,
        expires_at,
        key_id,
    };
    Ok(redisse::token::sign(&grant, &bytes(secret)))
}

// ---- publisher ------------------------------------------------------------

/// `Redisse::Native::Publisher`: named as its Ruby class, which wraps the
/// crate's publisher of the same name.
#[magnus::wrap(class = "Redisse::Native::Publisher", free_immediately, size)]
struct Publisher(redisse::publisher::Publisher);

impl Publisher {
    fn new(
        ruby: &Ruby,
        url: String,
        connect_timeout: f64,
        command_timeout: f64,
    ) -> Result<Self, Error> {
        let timeout = |seconds: f64| {
            Duration::try_from_secs_f64(seconds)
                .map_err(|_| error(ruby, format!("invalid timeout {seconds}")))
        };
        redisse::publisher::Publisher::new(
            &url,
            timeout(connect_timeout)?,
            timeout(command_timeout)?,
        )
        .map(Publisher)
        .map_err(|e| publish_error(ruby, e))
    }

    /// Starts a publish; Ruby waits for it with `Pending#wait`.
    fn publish(
        ruby: &Ruby,
        rb_self: &Self,
        channel: RString,
        event_type: RString,
        data: RString,
    ) -> Result<Pending, Error> {
        let (channel, event_type, data) = (bytes(channel), bytes(event_type), bytes(data));
        rb_self
            .0
            .start(&channel, &event_type, &data)
            .map(|pending| Pending(RefCell::new(Some(pending))))
            .map_err(|e| publish_error(ruby, e))
    }

    fn url(&self) -> String {
        self.0.url().to_string()
    }
}

/// A publish under way (`Redisse::Native::Publisher::Pending`).
#[magnus::wrap(class = "Redisse::Native::Publisher::Pending", free_immediately, size)]
struct Pending(RefCell<Option<PendingPublish>>);

impl Pending {
    /// The event id once published; `nil` when interrupted, for Ruby to
    /// take the interrupt and then wait again, or give up (`cancel`).
    fn wait(ruby: &Ruby, rb_self: &Self) -> Result<Option<u64>, Error> {
        let result = {
            let slot = rb_self.0.borrow();
            let Some(pending) = slot.as_ref() else {
                return Err(error(ruby, "this publish is over"));
            };
            match gvl::without_gvl(ruby, || pending.wait(), || pending.interrupt())? {
                Released::Ran(Some(result)) => result,
                Released::Ran(None) | Released::NotRun => return Ok(None),
            }
        };
        rb_self.0.borrow_mut().take();
        result.map(Some).map_err(|e| publish_error(ruby, e))
    }

    /// Gives up a publish that was not waited to its end: its connection is
    /// dropped, and the next publish opens a new one.
    fn cancel(&self) {
        if let Some(pending) = self.0.borrow_mut().take() {
            pending.cancel();
        }
    }
}

fn publish_error(ruby: &Ruby, e: PublishError) -> Error {
    match e {
        PublishError::InvalidEvent(_) => invalid_event_error(ruby, e.to_string()),
        PublishError::InvalidUrl(_) | PublishError::Connection { .. } => {
            connection_error(ruby, e.to_string())
        }
        PublishError::Command { .. } | PublishError::Runtime(_) | PublishError::Lost => {
            error(ruby, e.to_string())
        }
    }
}

// ---- server ---------------------------------------------------------------

/// The server's command line, parsed (`Redisse::Native::CommandLine`):
/// `help` is the text to print when `--help` was given; otherwise it
/// starts a server, once.
#[magnus::wrap(class = "Redisse::Native::CommandLine", free_immediately, size)]
struct CommandLine(RefCell<Parsed>);

enum Parsed {
    Help(String),
    Serve(Box<Settings>),
    /// Its settings went to a server.
    Started,
}

impl CommandLine {
    fn parse(ruby: &Ruby, argv: Vec<String>, redis: String, port: String) -> Result<Self, Error> {
        let parsed = match cli::parse(argv.into_iter().map(Into::into), &Defaults { redis, port }) {
            Ok(Command::Help(text)) => Parsed::Help(text),
            Ok(Command::Serve(settings)) => Parsed::Serve(settings),
            Err(e) => return Err(command_line_error(ruby, e.to_string())),
        };
        Ok(CommandLine(RefCell::new(parsed)))
    }

    /// The help text, when `--help` was given.
    fn help(&self) -> Option<String> {
        match &*self.0.borrow() {
            Parsed::Help(text) => Some(text.clone()),
            _ => None,
        }
    }

    /// The secret set in Ruby: the server's, unless `--secret-file` names one.
    fn set_secret(ruby: &Ruby, rb_self: &Self, secret: RString) -> Result<(), Error> {
        match &mut *rb_self.0.borrow_mut() {
            Parsed::Serve(settings) => {
                settings.secret = Some(bytes(secret));
                Ok(())
            }
            _ => Err(error(ruby, "this command line starts no server")),
        }
    }

    fn take_settings(ruby: &Ruby, rb_self: &Self) -> Result<Settings, Error> {
        match std::mem::replace(&mut *rb_self.0.borrow_mut(), Parsed::Started) {
            Parsed::Serve(settings) => Ok(*settings),
            Parsed::Help(text) => {
                *rb_self.0.borrow_mut() = Parsed::Help(text);
                Err(error(ruby, "this command line asks for help, not a server"))
            }
            Parsed::Started => Err(error(ruby, "this command line already started a server")),
        }
    }
}

/// `Redisse::Native::Server`: named as its Ruby class; the running server
/// it holds is the crate's.
#[magnus::wrap(class = "Redisse::Native::Server", free_immediately, size)]
struct Server {
    running: RunningServer,
    requests: Option<std::sync::Arc<ChannelRequests>>,
}

impl Server {
    /// `channels_timeout`: seconds a `channels` call may take (in-process mode).
    fn start(
        ruby: &Ruby,
        command_line: &CommandLine,
        in_process: bool,
        channels_timeout: f64,
    ) -> Result<Self, Error> {
        let options = CommandLine::take_settings(ruby, command_line)?;
        let timeout = Duration::try_from_secs_f64(channels_timeout)
            .map_err(|_| error(ruby, format!("invalid channels_timeout {channels_timeout}")))?;
        let requests = in_process.then(|| std::sync::Arc::new(ChannelRequests::new(timeout)));
        let channels = requests
            .clone()
            .map_or(ChannelSource::Query, ChannelSource::Application);
        let running = runtime::start(options, channels, Signals::LeaveToCaller)
            .map_err(|e| error(ruby, e.to_string()))?;
        Ok(Server { running, requests })
    }

    fn port(&self) -> u16 {
        self.running.local_addr().port()
    }

    /// `true` once stopped; `false` when interrupted, for Ruby to take the
    /// interrupt and call again.
    fn wait(ruby: &Ruby, rb_self: &Self) -> Result<bool, Error> {
        let running = &rb_self.running;
        let waited = gvl::without_gvl(ruby, || running.wait(), || running.interrupt())?;
        Ok(matches!(waited, Released::Ran(Waited::Stopped)))
    }

    fn shutdown(&self) {
        self.running.shutdown();
    }

    /// The next request for the `channels` block, or `nil`: woken by an
    /// interrupt (Ruby takes it, then asks again), or no more requests
    /// will come (`channel_requests_closed?`).
    fn next_channel_request(ruby: &Ruby, rb_self: &Self) -> Result<Option<Request>, Error> {
        let Some(requests) = rb_self.requests.as_deref() else {
            return Ok(None);
        };
        // A request popped here is owned by the Ruby object at once: if the
        // thread dies before it answers, freeing the object answers it.
        match gvl::without_gvl(ruby, || requests.pop(), || requests.interrupt())? {
            Released::Ran(Popped::Item(request)) => Ok(Some(Request(RefCell::new(Some(request))))),
            Released::Ran(Popped::Interrupted | Popped::Closed) | Released::NotRun => Ok(None),
        }
    }

    /// Whether the server stopped taking channel requests (or never took
    /// any: it is not in-process).
    fn channel_requests_closed(&self) -> bool {
        self.requests
            .as_deref()
            .is_none_or(ChannelRequests::is_closed)
    }
}

#[magnus::wrap(class = "Redisse::Native::ChannelRequest", free_immediately, size)]
struct Request(RefCell<Option<ChannelRequest>>);

impl Request {
    /// Reads a part of the request, while it is not answered.
    fn read<T>(
        ruby: &Ruby,
        rb_self: &Self,
        part: impl FnOnce(&ChannelRequest) -> T,
    ) -> Result<T, Error> {
        let slot = rb_self.0.borrow();
        let request = slot
            .as_ref()
            .ok_or_else(|| error(ruby, "this request was answered already"))?;
        Ok(part(request))
    }

    fn request_method(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        Self::read(ruby, rb_self, |r| r.info.method.clone())
    }

    fn path(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        Self::read(ruby, rb_self, |r| r.info.path.clone())
    }

    fn query_string(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        Self::read(ruby, rb_self, |r| r.info.query.clone())
    }

    /// `[[name, value], ...]`, in the order received, repeats included.
    fn headers(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        let slot = rb_self.0.borrow();
        let info = &slot
            .as_ref()
            .ok_or_else(|| error(ruby, "this request was answered already"))?
            .info;
        let headers = ruby.ary_new_capa(info.headers.len());
        for (name, value) in &info.headers {
            headers.push(
                ruby.ary_new_from_values(&[ruby.str_new(name), ruby.str_from_slice(value)]),
            )?;
        }
        Ok(headers)
    }

    fn remote_addr(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        Self::read(ruby, rb_self, |r| r.info.remote_addr.ip().to_string())
    }

    fn server_name(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        Self::read(ruby, rb_self, |r| r.info.local_addr.ip().to_string())
    }

    fn server_port(ruby: &Ruby, rb_self: &Self) -> Result<u16, Error> {
        Self::read(ruby, rb_self, |r| r.info.local_addr.port())
    }

    /// Seconds left before the request's deadline (it then gets a 503).
    fn time_left(ruby: &Ruby, rb_self: &Self) -> Result<f64, Error> {
        Self::read(ruby, rb_self, |r| r.time_left().as_secs_f64())
    }

    fn take(ruby: &Ruby, rb_self: &Self) -> Result<ChannelRequest, Error> {
        rb_self
            .0
            .borrow_mut()
            .take()
            .ok_or_else(|| error(ruby, "this request was answered already"))
    }

    fn reply(ruby: &Ruby, rb_self: &Self, channels: RArray) -> Result<(), Error> {
        Self::take(ruby, rb_self)?.reply(channel_names(channels)?);
        Ok(())
    }

    fn fail(ruby: &Ruby, rb_self: &Self, message: String) -> Result<(), Error> {
        Self::take(ruby, rb_self)?.fail(message);
        Ok(())
    }

    fn decline(ruby: &Ruby, rb_self: &Self, reason: String) -> Result<(), Error> {
        Self::take(ruby, rb_self)?.decline(reason);
        Ok(())
    }

    /// Whether `reply`, `fail` or `decline` was called already.
    fn answered(&self) -> bool {
        self.0.borrow().is_none()
    }
}

#[magnus::init(name = "redisse")]
fn init(ruby: &Ruby) -> Result<(), Error> {
    errors::resolve(ruby)?;
    let native = errors::redisse(ruby).define_module("Native")?;
    native.define_module_function("server_sent_event", function!(server_sent_event, 4))?;
    native.define_module_function("stream_token", function!(stream_token, 4))?;

    let publisher = native.define_class("Publisher", ruby.class_object())?;
    publisher.define_singleton_method("new", function!(Publisher::new, 3))?;
    publisher.define_method("publish", method!(Publisher::publish, 3))?;
    publisher.define_method("url", method!(Publisher::url, 0))?;
    let pending = publisher.define_class("Pending", ruby.class_object())?;
    pending.define_method("wait", method!(Pending::wait, 0))?;
    pending.define_method("cancel", method!(Pending::cancel, 0))?;

    let command_line = native.define_class("CommandLine", ruby.class_object())?;
    command_line.define_singleton_method("parse", function!(CommandLine::parse, 3))?;
    command_line.define_method("help", method!(CommandLine::help, 0))?;
    command_line.define_method("secret=", method!(CommandLine::set_secret, 1))?;

    let server: RClass = native.define_class("Server", ruby.class_object())?;
    server.define_singleton_method("start", function!(Server::start, 3))?;
    server.define_method("port", method!(Server::port, 0))?;
    server.define_method("wait", method!(Server::wait, 0))?;
    server.define_method("shutdown", method!(Server::shutdown, 0))?;
    server.define_method(
        "next_channel_request",
        method!(Server::next_channel_request, 0),
    )?;
    server.define_method(
        "channel_requests_closed?",
        method!(Server::channel_requests_closed, 0),
    )?;

    let request = native.define_class("ChannelRequest", ruby.class_object())?;
    request.define_method("request_method", method!(Request::request_method, 0))?;
    request.define_method("path", method!(Request::path, 0))?;
    request.define_method("query_string", method!(Request::query_string, 0))?;
    request.define_method("headers", method!(Request::headers, 0))?;
    request.define_method("remote_addr", method!(Request::remote_addr, 0))?;
    request.define_method("server_name", method!(Request::server_name, 0))?;
    request.define_method("server_port", method!(Request::server_port, 0))?;
    request.define_method("time_left", method!(Request::time_left, 0))?;
    request.define_method("reply", method!(Request::reply, 1))?;
    request.define_method("fail", method!(Request::fail, 1))?;
    request.define_method("decline", method!(Request::decline, 1))?;
    request.define_method("answered?", method!(Request::answered, 0))?;
    Ok(())
}

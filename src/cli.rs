//! The `redisse` command line (SPEC §2), shared by the plain binary and the
//! gem's executable: its options, their defaults and their help. What
//! they start is `server::runtime`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches};
use thiserror::Error;

use crate::server::runtime::Settings;

/// The defaults that the caller knows: the gem's configured Redis URL and port.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub redis: String,
    pub port: String,
}

impl Defaults {
    /// `$REDISSE_REDIS` and `$REDISSE_PORT`, else the 0.4 gem's defaults.
    pub fn from_env() -> Self {
        Defaults {
            redis: std::env::var("REDISSE_REDIS")
                .unwrap_or_else(|_| "redis://localhost:6379/".into()),
            port: std::env::var("REDISSE_PORT").unwrap_or_else(|_| "8080".into()),
        }
    }
}

pub enum Command {
    Help(String),
    Serve(Box<Settings>),
}

#[derive(Debug, Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
}

fn command(defaults: &Defaults) -> clap::Command {
    clap::Command::new("redisse")
        .about("Server-Sent Events server backed by Redis")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(
            Arg::new("redis")
                .long("redis")
                .value_name("URL")
                .default_value(defaults.redis.clone())
                .help(
                    "Redis URL: redis://[:password@]host[:port][/db], rediss://..., unix:///path",
                ),
        )
        .arg(
            Arg::new("port")
                .short('p')
                .long("port")
                .value_name("PORT")
                .default_value(defaults.port.clone())
                .help("Port to listen on"),
        )
        .arg(
            Arg::new("address")
                .short('a')
                .long("address")
                .value_name("HOST")
                .default_value("0.0.0.0")
                .help("Address to bind to"),
        )
        .arg(
            Arg::new("stdout")
                .short('s')
                .long("stdout")
                .action(ArgAction::SetTrue)
                .help("Log to standard output"),
        )
        .arg(
            Arg::new("verbose")
                .short('v')
                .long("verbose")
                .action(ArgAction::SetTrue)
                .help("Log every event (debug level)"),
        )
        .arg(
            Arg::new("log")
                .short('l')
                .long("log")
                .value_name("FILE")
                .help("Log to FILE"),
        )
        .arg(
            Arg::new("pid")
                .short('P')
                .long("pid")
                .value_name("FILE")
                .help("Write the process id to FILE"),
        )
        .arg(
            Arg::new("heartbeat")
                .long("heartbeat")
                .value_name("SECONDS")
                .default_value("15")
                .help("Seconds between heartbeat comments on each stream"),
        )
        .arg(
            Arg::new("send-timeout")
                .long("send-timeout")
                .value_name("SECONDS")
                .default_value("30")
                .help("A client that takes nothing of what is written to it for this long is dropped"),
        )
        .arg(
            Arg::new("drain")
                .long("drain")
                .value_name("SECONDS")
                .default_value("0")
                .help("On SIGTERM, stop accepting and end the open streams spread over this long, each told to reconnect (retry:), so that they come back to the other servers a few at a time; a second SIGTERM ends them at once. 0: all at once"),
        )
        .arg(
            Arg::new("max-channels")
                .long("max-channels")
                .value_name("N")
                .default_value("1000")
                .help("Channels a stream may listen to; a request for more gets a 400"),
        )
        .arg(
            Arg::new("max-streams")
                .long("max-streams")
                .value_name("N")
                .help("Streams open at once; more get a 503 with Retry-After [default: the open-file limit, less a twentieth (16 to 256) kept for Redis, stats and refusals]"),
        )
        .arg(
            Arg::new("secret-file")
                .long("secret-file")
                .value_name("FILE")
                .help("Streams need a token signed with the secret in FILE [default: $REDISSE_SECRET, if set]"),
        )
        .arg(
            Arg::new("previous-secret-file")
                .long("previous-secret-file")
                .value_name("FILE")
                .help("Also accept tokens signed with the secret in FILE, while rotating [default: $REDISSE_SECRET_PREVIOUS]"),
        )
        .arg(
            Arg::new("cors-origin")
                .long("cors-origin")
                .value_name("ORIGIN")
                .action(ArgAction::Append)
                .help("Let pages of ORIGIN (e.g. https://app.example, or *) open streams; repeatable"),
        )
        .arg(
            Arg::new("environment")
                .short('e')
                .long("environment")
                .value_name("NAME")
                .help(
                    "Accepted for compatibility; the server behaves the same in every environment",
                ),
        )
        .arg(
            Arg::new("daemonize")
                .short('d')
                .long("daemonize")
                .action(ArgAction::SetTrue)
                .help("Not supported: run under a process manager (systemd, foreman...)"),
        )
        .arg(
            Arg::new("config")
                .short('c')
                .long("config")
                .value_name("FILE")
                .help("Not supported: configure Redisse in Ruby, or with the options above"),
        )
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::SetTrue)
                .help("Show this help"),
        )
}

/// Reads the arguments (without the program name).
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    defaults: &Defaults,
) -> Result<Command, CliError> {
    let mut command = command(defaults);
    let args = std::iter::once(OsString::from("redisse")).chain(args);
    let matches = command
        .try_get_matches_from_mut(args)
        .map_err(|e| CliError::Usage(e.render().to_string()))?;
    if matches.get_flag("help") {
        return Ok(Command::Help(command.render_help().to_string()));
    }
    options(&matches).map(|settings| Command::Serve(Box::new(settings)))
}

fn options(matches: &ArgMatches) -> Result<Settings, CliError> {
    let value = |name: &str| matches.get_one::<String>(name).cloned();
    let usage =
        |message: String| CliError::Usage(format!("redisse: {message}\nTry 'redisse --help'."));
    if matches.get_flag("daemonize") {
        return Err(usage("--daemonize is not supported: run redisse in the foreground under a process manager (systemd, foreman, ...)".into()));
    }
    if let Some(file) = value("config") {
        return Err(usage(format!("--config {file} is not supported: configure Redisse in Ruby (Redisse.redis_server=, Redisse.channels) or with --redis and --port")));
    }
    let port_text = value("port").unwrap_or_default();
    let port = port_text
        .parse()
        .map_err(|_| usage(format!("invalid port {port_text:?}")))?;
    let seconds = |name: &str| -> Result<Duration, CliError> {
        let text = value(name).unwrap_or_default();
        text.parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0 && s.is_finite())
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| {
                usage(format!(
                    "invalid --{name} {text:?}: a number of seconds above 0"
                ))
            })
    };
    let heartbeat = seconds("heartbeat")?;
    let send_timeout = seconds("send-timeout")?;
    let drain = match value("drain").as_deref() {
        Some("0") | None => Duration::ZERO,
        Some(_) => seconds("drain")?,
    };
    let count = |name: &str| -> Result<Option<usize>, CliError> {
        value(name)
            .map(|text| {
                text.parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| usage(format!("invalid --{name} {text:?}: a number above 0")))
            })
            .transpose()
    };
    let max_channels =
        count("max-channels")?.unwrap_or(crate::server::Limits::DEFAULT_MAX_CHANNELS);
    let max_streams = count("max-streams")?;
    let mut notices = Vec::new();
    if let Some(environment) = value("environment") {
        notices.push(format!("--environment {environment} is ignored: the server behaves the same in every environment"));
    }
    Ok(Settings {
        redis: value("redis").unwrap_or_default(),
        address: value("address").unwrap_or_default(),
        port,
        stdout: matches.get_flag("stdout"),
        verbose: matches.get_flag("verbose"),
        log: value("log").map(PathBuf::from),
        pid: value("pid").map(PathBuf::from),
        heartbeat,
        send_timeout,
        drain,
        max_channels,
        max_streams,
        secret_file: value("secret-file").map(PathBuf::from),
        secret: None,
        previous_secret_file: value("previous-secret-file").map(PathBuf::from),
        cors_origins: matches
            .get_many::<String>("cors-origin")
            .map(|values| values.cloned().collect())
            .unwrap_or_default(),
        notices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Command, CliError> {
        let defaults = Defaults {
            redis: "redis://default/".into(),
            port: "8080".into(),
        };
        parse(args.iter().map(OsString::from), &defaults)
    }

    fn serve(args: &[&str]) -> Settings {
        match parse_args(args) {
            Ok(Command::Serve(options)) => *options,
            Ok(Command::Help(_)) => panic!("help"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_and_options() {
        let o = serve(&[]);
        assert_eq!(
            (o.redis.as_str(), o.port, o.address.as_str()),
            ("redis://default/", 8080, "0.0.0.0")
        );
        assert_eq!(o.heartbeat, Duration::from_secs(15));
        assert_eq!(o.send_timeout, Duration::from_secs(30));
        assert_eq!(o.drain, Duration::ZERO, "0.4 ended every stream at once");
        assert_eq!(serve(&["--drain", "20"]).drain, Duration::from_secs(20));
        assert_eq!(
            serve(&["--send-timeout", "2.5"]).send_timeout,
            Duration::from_millis(2500)
        );
        assert_eq!((o.max_channels, o.max_streams), (1000, None));
        let o = serve(&["--max-channels", "10", "--max-streams", "500"]);
        assert_eq!((o.max_channels, o.max_streams), (10, Some(500)));
        let o = serve(&[
            "--cors-origin",
            "http://a",
            "--cors-origin",
            "http://b",
            "--secret-file",
            "s",
        ]);
        assert_eq!(o.cors_origins, vec!["http://a", "http://b"]);
        assert_eq!(o.secret_file, Some(PathBuf::from("s")));
        let o = serve(&[
            "--redis",
            "redis://r/2",
            "-p",
            "9000",
            "-a",
            "127.0.0.1",
            "-s",
            "-v",
            "-P",
            "x.pid",
            "--heartbeat",
            "0.5",
        ]);
        assert_eq!(
            (o.redis.as_str(), o.port, o.address.as_str()),
            ("redis://r/2", 9000, "127.0.0.1")
        );
        assert!(o.stdout && o.verbose);
        assert_eq!(o.pid, Some(PathBuf::from("x.pid")));
        assert_eq!(o.heartbeat, Duration::from_millis(500));
        assert_eq!(
            serve(&["-l", "server.log"]).log,
            Some(PathBuf::from("server.log"))
        );
    }

    #[test]
    fn help() {
        let Ok(Command::Help(text)) = parse_args(&["-h"]) else {
            panic!("no help")
        };
        for option in [
            "--redis",
            "--port",
            "--address",
            "--stdout",
            "--verbose",
            "--log",
            "--pid",
            "--heartbeat",
            "--send-timeout",
            "--drain",
            "--max-channels",
            "--max-streams",
            "--secret-file",
            "--cors-origin",
        ] {
            assert!(text.contains(option), "{option} missing from help");
        }
    }

    #[test]
    fn old_options_are_accepted_or_explained() {
        assert_eq!(serve(&["-e", "production"]).notices.len(), 1);
        let Err(CliError::Usage(message)) = parse_args(&["-d"]) else {
            panic!()
        };
        assert!(message.contains("--daemonize is not supported"));
        let Err(CliError::Usage(message)) = parse_args(&["-c", "config.rb"]) else {
            panic!()
        };
        assert!(message.contains("--config config.rb is not supported"));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse_args(&["-p", "http"]).is_err());
        assert!(parse_args(&["--heartbeat", "0"]).is_err());
        assert!(parse_args(&["--send-timeout", "-1"]).is_err());
        assert!(parse_args(&["--drain", "soon"]).is_err());
        assert!(parse_args(&["--max-channels", "0"]).is_err());
        assert!(parse_args(&["--max-streams", "lots"]).is_err());
        assert!(parse_args(&["--nonsense"]).is_err());
    }
}

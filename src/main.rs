//! The `redisse` server as a plain binary, for hosts without Ruby.

use std::process::ExitCode;

use redisse::cli::{self, Command, Defaults};
use redisse::server::channel_source::ChannelSource;
use redisse::server::runtime::{self, Signals, Waited};

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args_os().skip(1), &Defaults::from_env()) {
        Ok(Command::Help(text)) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Serve(options)) => *options,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match runtime::start(options, ChannelSource::Query, Signals::Handle) {
        Ok(server) => {
            while server.wait() != Waited::Stopped {}
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("redisse: {e}");
            ExitCode::FAILURE
        }
    }
}

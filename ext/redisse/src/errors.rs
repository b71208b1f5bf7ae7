//! The exception classes the extension raises. They are Ruby's
//! (`lib/redisse/errors.rb`, loaded first): resolved once when the
//! extension loads, and a missing one fails the load itself.

use magnus::value::Lazy;
use magnus::{prelude::*, Error, ExceptionClass, RModule, Ruby};

static REDISSE: Lazy<RModule> = Lazy::new(|ruby| {
    ruby.class_object()
        .const_get("Redisse")
        .expect("checked by resolve")
});

macro_rules! exception_classes {
    ($($name:ident => $ruby_name:literal),* $(,)?) => {
        $(
            static $name: Lazy<ExceptionClass> = Lazy::new(|ruby| {
                ruby.get_inner(&REDISSE)
                    .const_get($ruby_name)
                    .expect("checked by resolve")
            });
        )*
        const NAMES: &[&str] = &[$($ruby_name),*];

        fn force(ruby: &Ruby) {
            $(Lazy::force(&$name, ruby);)*
        }
    };
}

exception_classes! {
    ERROR => "Error",
    CONNECTION_ERROR => "ConnectionError",
    INVALID_EVENT_ERROR => "InvalidEventError",
    COMMAND_LINE_ERROR => "CommandLineError",
}

/// The module the extension defines `Native` in.
pub fn redisse(ruby: &Ruby) -> RModule {
    ruby.get_inner(&REDISSE)
}

/// Looks every class up, at load time: a `LoadError` that names what is
/// missing, rather than a different exception later.
pub fn resolve(ruby: &Ruby) -> Result<(), Error> {
    let missing = |name: String| {
        Error::new(
            ruby.exception_load_error(),
            format!("{name} is not defined: require \"redisse/errors\" before the extension"),
        )
    };
    let redisse: RModule = match ruby.class_object().const_get::<_, magnus::Value>("Redisse") {
        Ok(value) => {
            RModule::from_value(value).ok_or_else(|| missing("Redisse (a module)".into()))?
        }
        Err(_) => return Err(missing("Redisse".into())),
    };
    for name in NAMES {
        let class = redisse
            .const_get::<_, magnus::Value>(*name)
            .ok()
            .and_then(ExceptionClass::from_value);
        if class.is_none() {
            return Err(missing(format!("Redisse::{name} (an exception class)")));
        }
    }
    force(ruby);
    Ok(())
}

/// `Redisse::Error`: anything else that went wrong.
pub fn error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.get_inner(&ERROR), message.into())
}

pub fn connection_error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.get_inner(&CONNECTION_ERROR), message.into())
}

pub fn invalid_event_error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.get_inner(&INVALID_EVENT_ERROR), message.into())
}

pub fn command_line_error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.get_inner(&COMMAND_LINE_ERROR), message.into())
}

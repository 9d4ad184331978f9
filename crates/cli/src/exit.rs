//! What went wrong, as one line on stderr and an exit status a script can
//! branch on:
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | anything else: a file that cannot be read or written, a network failure, a timeout |
//! | 2 | usage: a bad argument, option or input line, an invalid config |
//! | 3 | authentication: no credentials, or credentials refused (HTTP 401 or 403) |
//! | 4 | not found (HTTP 404) |
//! | 5 | any other error answer of the API |
//! | 6 | a bulk upload ended (or was cancelled with Ctrl-C) with input lines not stored: they are in the report file |

use std::fmt;
use std::process::ExitCode;

use cm_api::{AuthError, ConfigError, Error};

/// Exit statuses; see the [module](self) table.
pub mod code {
    pub const OTHER: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const AUTH: u8 = 3;
    pub const NOT_FOUND: u8 = 4;
    pub const API: u8 = 5;
    pub const PARTIAL: u8 = 6;
}

/// Why a command failed: a one-line message and its exit status.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    /// A bad argument or input.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: code::USAGE,
        }
    }

    /// A file or terminal that failed.
    pub fn io(what: impl fmt::Display, error: std::io::Error) -> Self {
        Self {
            message: format!("{what}: {error}"),
            code: code::OTHER,
        }
    }

    /// `what` could not be found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: code::NOT_FOUND,
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self {
            code: code_of(&error),
            message: one_line(&error),
        }
    }
}

/// The status for an error of the API client.
pub fn code_of(error: &Error) -> u8 {
    match error {
        Error::Config(ConfigError::MissingCredentials | ConfigError::MissingEnvVar { .. }) => {
            code::AUTH
        }
        Error::Config(_) | Error::InvalidRequest { .. } => code::USAGE,
        Error::Auth(AuthError::Transport { .. }) => code::OTHER,
        Error::Auth(_) => code::AUTH,
        Error::Transport { .. } | Error::Handler { .. } => code::OTHER,
        _ => match error.status() {
            Some(401 | 403) => code::AUTH,
            Some(404) => code::NOT_FOUND,
            _ => code::API,
        },
    }
}

/// The error and its causes on one line (`a: b: c`), without repeating a
/// cause that the message already shows.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line.replace(['\n', '\r'], " ")
}

/// Prints `failure` as `cm: <message>` on stderr and returns its status.
pub fn report(failure: &Failure) -> ExitCode {
    eprintln!("cm: {}", failure.message);
    ExitCode::from(failure.code)
}

//! The one error type of the crate.

use std::fmt;
use std::time::Duration;

use std::path::PathBuf;

use crate::endpoint::EndpointError;
use crate::server_timing::ServerTiming;

/// A boxed error, used as the `source()` of variants whose cause is a
/// dependency's type we do not expose.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Longest excerpt of a response body kept in an error, in characters.
pub(crate) const SNIPPET_CHARS: usize = 200;

/// A short, single-line excerpt of a body for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == SNIPPET_CHARS {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out.trim().to_owned()
}

/// A message for a one-line `Display`: control characters (newlines)
/// become spaces and anything past [`SNIPPET_CHARS`] is cut, as [`snippet`]
/// does for bodies. The full text stays in the error's fields.
pub(crate) fn one_line(message: &str) -> String {
    snippet(message.as_bytes())
}

/// What went wrong with a call, classified by where it failed.
///
/// | variant | where | anything sent? |
/// | --- | --- | --- |
/// | [`Config`](Error::Config) | building the client | no |
/// | [`InvalidRequest`](Error::InvalidRequest) | building the request | no |
/// | [`Auth`](Error::Auth) | getting a token | not to the API |
/// | [`Transport`](Error::Transport) | connecting, TLS, timeouts | maybe |
/// | [`RateLimited`](Error::RateLimited) | waiting at a closed [`RateGate`](crate::RateGate) past the deadline | no |
/// | [`Api`](Error::Api) | the platform answered with its error envelope | yes |
/// | [`UnexpectedResponse`](Error::UnexpectedResponse) | something else answered (proxy page, empty body) | yes |
/// | [`Decode`](Error::Decode) | a success body did not match the schema | yes |
/// | [`CursorNotAdvancing`](Error::CursorNotAdvancing) | a paginated walk was given a cursor it had seen | yes |
/// | [`Handler`](Error::Handler) | your handler, called with data from the API | n/a |
///
/// `Display` is one line (a long or multi-line server message is cut; the
/// full text is in the fields); `source()` leads to the underlying cause,
/// which `Display` does not repeat.
///
/// ```
/// # async fn run(client: cm_api::Client) {
/// match client.list_datasets().send().await {
///     Ok(found) => println!("{} datasets", found.datasets.len()),
///     Err(err) if err.status() == Some(404) => println!("not found: {}", err.message().unwrap_or("")),
///     Err(err) if err.is_retryable() => println!("try again later: {err}"),
///     Err(err) => println!("failed: {err}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client configuration is invalid; nothing was sent.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The request could not be built (e.g. a required parameter is missing); nothing was sent.
    #[error("{}invalid request: {}", op_prefix(operation), one_line(message))]
    #[non_exhaustive]
    InvalidRequest {
        /// The operation id, when known.
        operation: Option<&'static str>,
        /// What is wrong.
        message: String,
    },

    /// No token could be obtained, or a refreshed token was refused.
    #[error(transparent)]
    Auth(#[from] AuthError),

    /// The request or response did not make it across the network.
    #[error("{}{kind} after {attempts} attempt(s)", op_prefix(operation))]
    #[non_exhaustive]
    Transport {
        /// The operation id, when known.
        operation: Option<&'static str>,
        /// What kind of network failure.
        kind: TransportKind,
        /// How many attempts were made.
        attempts: u32,
        /// Whether the server may have applied the request anyway; see
        /// [`Error::maybe_applied`].
        maybe_applied: bool,
        /// The underlying network error.
        #[source]
        source: BoxError,
    },

    /// The platform answered with its error envelope
    /// (`{"status": "error", "message": ...}`), or with a body whose
    /// `"status"` contradicts the HTTP status.
    #[error(
        "{}HTTP {status}: {}{}",
        op_prefix(operation),
        one_line(message),
        id_suffix(request_id)
    )]
    #[non_exhaustive]
    Api {
        /// The operation id, when known.
        operation: Option<&'static str>,
        /// The HTTP status.
        status: u16,
        /// The platform's message.
        message: String,
        /// The `x-request-id` response header, if sent.
        request_id: Option<String>,
        /// The server's timing metrics.
        server_timing: ServerTiming,
        /// How many attempts were made.
        attempts: u32,
        /// The server's `Retry-After`, when the client did not wait that long.
        retry_after: Option<Duration>,
        /// Whether an earlier attempt may have been applied; see
        /// [`Error::maybe_applied`].
        maybe_applied: bool,
    },

    /// Something other than the platform answered, e.g. a proxy's HTML page
    /// or an empty body.
    #[error("{}unexpected HTTP {status} response{}: {snippet}{}", op_prefix(operation), content_type.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(), id_suffix(request_id))]
    #[non_exhaustive]
    UnexpectedResponse {
        /// The operation id, when known.
        operation: Option<&'static str>,
        /// The HTTP status.
        status: u16,
        /// The `x-request-id` response header, if sent (a gateway in front
        /// of the platform may still have passed it on).
        request_id: Option<String>,
        /// The `content-type` header, if any.
        content_type: Option<String>,
        /// A short excerpt of the body.
        snippet: String,
        /// The server's timing metrics.
        server_timing: ServerTiming,
        /// How many attempts were made.
        attempts: u32,
        /// The server's `Retry-After`, when the client did not wait that long.
        retry_after: Option<Duration>,
        /// Whether an earlier attempt may have been applied; see
        /// [`Error::maybe_applied`].
        maybe_applied: bool,
    },

    /// The job's [`RateGate`](crate::RateGate) stays closed (after a 429)
    /// beyond the call's deadline, so the call gave up without sending.
    #[error(
        "{}rate limited: the rate gate stays closed for {retry_after:?}, beyond the call's deadline",
        op_prefix(operation)
    )]
    #[non_exhaustive]
    RateLimited {
        /// The operation id, when known.
        operation: Option<&'static str>,
        /// How long the gate stays closed.
        retry_after: Duration,
        /// Attempts made before (0 when the first attempt was never sent).
        attempts: u32,
    },

    /// A paginated operation returned a cursor it had already returned, so
    /// following it would loop forever. Items before it were yielded; see
    /// [`Paginated::resume_cursor`](crate::paginate::Paginated::resume_cursor).
    #[error(
        "{}the server returned an already seen cursor after {pages} page(s); stopping instead of looping",
        op_prefix(operation)
    )]
    #[non_exhaustive]
    CursorNotAdvancing {
        /// The operation id, when known.
        operation: Option<&'static str>,
        /// Pages fetched, including the one with the repeated cursor.
        pages: u64,
    },

    /// A user-supplied handler (e.g. of a
    /// [`StreamConsumer`](crate::stream_consumer::StreamConsumer)) failed;
    /// nothing was acknowledged for the input it failed on.
    #[error("handler failed")]
    #[non_exhaustive]
    Handler {
        /// The handler's error.
        #[source]
        source: BoxError,
    },

    /// A success response's body did not match the expected schema.
    #[error("{}could not decode the HTTP {status} response{}{}", op_prefix(operation), path.as_deref().map(|p| format!(" at `{p}`")).unwrap_or_default(), id_suffix(request_id))]
    #[non_exhaustive]
    Decode {
        /// The operation id, when known.
        operation: Option<&'static str>,
        /// The HTTP status.
        status: u16,
        /// The `x-request-id` response header, if sent: what a support
        /// ticket about an answer that does not decode needs.
        request_id: Option<String>,
        /// How many attempts were made.
        attempts: u32,
        /// Where in the body decoding failed, e.g. `datasets[0].name`.
        path: Option<String>,
        /// A short excerpt of the body.
        snippet: String,
        /// The decoder's error; its `Display` is the decoder's message.
        #[source]
        source: BoxError,
    },

    /// A download arrived but could not be written where it was going
    /// (e.g. the disk is full); the API call itself succeeded.
    #[error("could not write the download{}", path.as_deref().map(|p| format!(" to {}", p.display())).unwrap_or_default())]
    #[non_exhaustive]
    Write {
        /// The file being written, for `Download::save`.
        path: Option<std::path::PathBuf>,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// ` (request id X)` for a `Display`, or nothing.
fn id_suffix(request_id: &Option<String>) -> String {
    request_id
        .as_deref()
        .map(|id| format!(" (request id {id})"))
        .unwrap_or_default()
}

fn op_prefix(operation: &Option<&'static str>) -> String {
    operation.map(|o| format!("{o}: ")).unwrap_or_default()
}

/// The kind of a [`Error::Transport`] failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// No connection could be made (DNS, refused, TLS).
    Connect,
    /// The connect or request timeout, or the call's deadline, expired.
    Timeout,
    /// The connection failed while sending the request or reading the response.
    Connection,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "could not connect",
            Self::Timeout => "timed out",
            Self::Connection => "connection failed",
        })
    }
}

impl Error {
    /// An [`Error::Api`] built by hand, as if the platform had answered
    /// `status` with `message`: for fakes of this crate's traits (e.g.
    /// [`bulk::SyncTarget`](crate::bulk::SyncTarget)) in tests.
    ///
    /// ```
    /// let err = cm_api::Error::api(422, "comment 7 has no messages");
    /// assert_eq!(err.status(), Some(422));
    /// assert!(!err.is_retryable());
    /// ```
    pub fn api(status: u16, message: impl Into<String>) -> Self {
        Self::Api {
            operation: None,
            status,
            message: message.into(),
            request_id: None,
            server_timing: ServerTiming::default(),
            attempts: 1,
            retry_after: None,
            maybe_applied: false,
        }
    }

    /// The same error, carrying a server's `Retry-After` of `wait` (for an
    /// [`Api`](Error::Api) or [`UnexpectedResponse`](Error::UnexpectedResponse)
    /// error; others are returned unchanged): for fakes in tests.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let err = cm_api::Error::api(429, "slow down").with_retry_after(Duration::from_secs(3600));
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    /// ```
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        if let Self::Api { retry_after, .. } | Self::UnexpectedResponse { retry_after, .. } =
            &mut self
        {
            *retry_after = Some(wait);
        }
        self
    }

    /// How long the server asked to wait before trying again, when the
    /// client did not wait that long itself (a `Retry-After` longer than
    /// [`RetryPolicy::max_backoff`](crate::RetryPolicy::max_backoff) or the
    /// time left before the deadline, or a closed
    /// [`RateGate`](crate::RateGate)). Wait at least this long before
    /// calling again.
    ///
    /// ```no_run
    /// # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
    /// loop {
    ///     match client.list_datasets().send().await {
    ///         Err(err) if err.retry_after().is_some() => {
    ///             tokio::time::sleep(err.retry_after().unwrap()).await;
    ///         }
    ///         other => break other.map(drop),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } | Self::UnexpectedResponse { retry_after, .. } => {
                *retry_after
            }
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether the server may have applied the request even though the
    /// call failed: an attempt's answer was lost after it was sent (a
    /// timeout, a reset, a body cut short) or was a 500, 502 or 504, or a
    /// success answer could not be decoded. `false` when every attempt was
    /// refused or rejected, or nothing was sent.
    ///
    /// A retried call can fail *because* an earlier attempt was applied:
    /// a create whose answer was lost, sent again, is answered 409 "already
    /// exists". Check this before reporting such a failure as "not done":
    ///
    /// ```no_run
    /// # async fn run(client: cm_api::Client, body: cm_api::types::CreateSourceRequest) -> Result<(), cm_api::Error> {
    /// match client.create_source().project("acme").source_name("inbox").body(body).send().await {
    ///     Ok(_) => {}
    ///     Err(err) if err.status() == Some(409) && err.maybe_applied() => {
    ///         // Our own earlier attempt created it: look it up instead.
    ///         client.get_source().project("acme").source_name("inbox").send().await?;
    ///     }
    ///     Err(err) => return Err(err),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn maybe_applied(&self) -> bool {
        match self {
            Self::Transport { maybe_applied, .. }
            | Self::Api { maybe_applied, .. }
            | Self::UnexpectedResponse { maybe_applied, .. } => *maybe_applied,
            Self::Decode { .. } => true,
            _ => false,
        }
    }

    /// The HTTP status of the response, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. }
            | Self::UnexpectedResponse { status, .. }
            | Self::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The platform's (or identity server's) message, when there was one.
    pub fn message(&self) -> Option<&str> {
        match self {
            Self::Api { message, .. } => Some(message),
            Self::Auth(AuthError::Rejected {
                description, error, ..
            }) => Some(description.as_deref().unwrap_or(error)),
            _ => None,
        }
    }

    /// The operation id of the failed call, when known.
    pub fn operation_id(&self) -> Option<&'static str> {
        match self {
            Self::InvalidRequest { operation, .. }
            | Self::Transport { operation, .. }
            | Self::Api { operation, .. }
            | Self::UnexpectedResponse { operation, .. }
            | Self::Decode { operation, .. }
            | Self::RateLimited { operation, .. }
            | Self::CursorNotAdvancing { operation, .. } => *operation,
            _ => None,
        }
    }

    /// The response's `x-request-id`, for every error that saw a response
    /// carrying one: an API error, an unexpected answer (a proxy's page),
    /// and a success answer that did not decode. Quote it to support.
    ///
    /// ```no_run
    /// # async fn run(client: cm_api::Client) {
    /// if let Err(err) = client.list_datasets().send().await {
    ///     eprintln!("{err} (request id: {})", err.request_id().unwrap_or("none"));
    /// }
    /// # }
    /// ```
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Api { request_id, .. }
            | Self::UnexpectedResponse { request_id, .. }
            | Self::Decode { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// How many attempts the call made before it failed, for every error
    /// after something was sent (`None` when nothing was, e.g. a
    /// configuration error). A closed rate gate may report 0.
    ///
    /// ```
    /// let err = cm_api::Error::api(503, "busy");
    /// assert_eq!(err.attempts(), Some(1));
    /// ```
    pub fn attempts(&self) -> Option<u32> {
        match self {
            Self::Transport { attempts, .. }
            | Self::Api { attempts, .. }
            | Self::UnexpectedResponse { attempts, .. }
            | Self::Decode { attempts, .. }
            | Self::RateLimited { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }

    /// The server's timing metrics, for errors that carry a response.
    pub fn server_timing(&self) -> Option<&ServerTiming> {
        match self {
            Self::Api { server_timing, .. } | Self::UnexpectedResponse { server_timing, .. } => {
                Some(server_timing)
            }
            _ => None,
        }
    }

    /// Whether the same call could succeed later: network failures and
    /// 429/500/502/503/504 answers. Retryable operations have already been
    /// retried by the client when this is returned. Before repeating an
    /// operation that is not idempotent, see [`maybe_applied`](Self::maybe_applied).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::RateLimited { .. } => true,
            Self::Auth(auth) => auth.is_retryable(),
            Self::Api { status, .. } | Self::UnexpectedResponse { status, .. } => {
                crate::retry::is_retryable_status(*status)
            }
            _ => false,
        }
    }
}

/// Lets `Endpoint::uipath_cloud(..)?` and friends be used where a
/// [`Error`] is returned: a bad endpoint in code is invalid configuration.
impl From<crate::EndpointError> for Error {
    fn from(source: crate::EndpointError) -> Self {
        Self::Config(ConfigError::Endpoint {
            origin: "code".into(),
            source,
        })
    }
}

// The errors of the client's parts live here, so that this module depends
// on none of them: `auth` and `config` re-export theirs.

/// Why no usable token could be obtained. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The identity server refused the exchange (bad client id or secret,
    /// scope not granted to the application...).
    #[error("authentication failed: the identity server rejected the client credentials with HTTP {status}: {}{}", one_line(error), .description.as_deref().map(|d| format!(" ({})", one_line(d))).unwrap_or_default())]
    Rejected {
        /// HTTP status of the identity server's answer.
        status: u16,
        /// The OAuth `error` code, e.g. `invalid_client`.
        error: String,
        /// The OAuth `error_description`, if any.
        description: Option<String>,
    },
    /// The identity server's answer could not be used (not JSON, no token).
    #[error("authentication failed: the identity server answered HTTP {status}: {detail}")]
    InvalidResponse {
        /// HTTP status of the identity server's answer.
        status: u16,
        /// What was wrong, with a short, bounded excerpt of an error body.
        detail: String,
    },
    /// The identity server could not be reached.
    #[error("authentication failed: could not reach the identity server at {token_url}")]
    Transport {
        /// The token endpoint that was called.
        token_url: String,
        /// The underlying connection error.
        #[source]
        source: BoxError,
    },
    /// No token arrived in time: the identity server did not answer within
    /// the attempt timeout, or a provider took longer than the call's
    /// deadline. Retryable.
    #[error("authentication failed: no token within {after:?}")]
    Timeout {
        /// The time allowed.
        after: Duration,
    },
    /// A custom [`TokenProvider`](crate::auth::TokenProvider) failed, or the client-credentials
    /// exchange could not run to its end (its tokio runtime shut down, or
    /// it panicked); `source()` says which.
    #[error("authentication failed: the token provider failed")]
    Provider(#[source] BoxError),
}

impl AuthError {
    /// Whether trying again later could succeed (the identity server was
    /// unreachable or answered 429, 500, 502, 503 or 504).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::Timeout { .. } => true,
            Self::Rejected { status, .. } | Self::InvalidResponse { status, .. } => {
                crate::retry::is_retryable_status(*status)
            }
            Self::Provider(_) => false,
        }
    }
}

/// Why the client could not be configured. Nothing was sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An endpoint was given but is invalid.
    #[error("invalid configuration: the endpoint from {origin} is invalid: {source}")]
    Endpoint {
        /// Where the endpoint came from, e.g. `environment variable REINFER_ENDPOINT`.
        origin: String,
        /// Why it was rejected.
        #[source]
        source: EndpointError,
    },
    /// No source set an endpoint.
    #[error(
        "invalid configuration: no endpoint; call ClientBuilder::endpoint, set REINFER_ENDPOINT or select a profile with an `endpoint`"
    )]
    MissingEndpoint,
    /// No source set credentials.
    #[error(
        "invalid configuration: no credentials; call ClientBuilder::token or ::client_credentials, set REINFER_TOKEN (or REINFER_CLIENT_ID and REINFER_CLIENT_SECRET) or select a profile that names them"
    )]
    MissingCredentials,
    /// Two sources of the same precedence set a value differently.
    #[error(
        "invalid configuration: conflicting {setting}: {first} and {second} disagree; remove one of them"
    )]
    Conflict {
        /// The setting, e.g. `endpoint`.
        setting: &'static str,
        /// One source, e.g. `environment variable REINFER_ENDPOINT`.
        first: String,
        /// The other source, e.g. `profile "prod" (selected by REINFER_PROFILE)`.
        second: String,
    },
    /// An environment variable named by the configuration is not set.
    #[error(
        "invalid configuration: environment variable {var} (named by {origin}) is not set or empty"
    )]
    MissingEnvVar {
        /// The variable.
        var: String,
        /// Who named it.
        origin: String,
    },
    /// The configuration file could not be read or parsed.
    #[error("invalid configuration: cannot use config file {}: {reason}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A profile was selected but no configuration file has it.
    #[error("invalid configuration: profile \"{name}\" (selected by {origin}) is not defined in {}{}", path.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "any config file (no config directory)".to_owned()), available_hint(available))]
    UnknownProfile {
        /// The profile name.
        name: String,
        /// Who selected it.
        origin: String,
        /// The file searched, if any.
        path: Option<PathBuf>,
        /// The profiles the file defines.
        available: Vec<String>,
    },
    /// Client credentials are used with an endpoint whose identity server
    /// cannot be derived.
    #[error(
        "invalid configuration: no token URL for client credentials with endpoint {endpoint}; set ClientCredentials::token_url or the profile's `token_url`"
    )]
    MissingTokenUrl {
        /// The endpoint.
        endpoint: String,
    },
    /// Another invalid value.
    #[error("invalid configuration: {what}: {reason}")]
    Invalid {
        /// Which value.
        what: String,
        /// Why.
        reason: String,
    },
}

fn available_hint(available: &[String]) -> String {
    if available.is_empty() {
        String::new()
    } else {
        format!(" (defined: {})", available.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_bounded_single_lines() {
        assert_eq!(snippet(b"  <html>\n<b>x</b>\r\n"), "<html> <b>x</b>");
        let long = "é".repeat(500);
        let s = snippet(long.as_bytes());
        assert_eq!(s.chars().count(), SNIPPET_CHARS + 1);
        assert!(s.ends_with('…'));
        assert_eq!(snippet(&[0xff, 0xfe]), "\u{fffd}\u{fffd}");
    }

    #[test]
    fn display_is_one_line_and_never_repeats_the_source() {
        let long = format!("first line\nsecond line {}", "x".repeat(1000));
        let err = Error::api(422, long.clone());
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.chars().count() < 250, "{text}");
        assert_eq!(err.message(), Some(long.as_str()));

        let io = std::io::Error::other("disk full");
        let err = Error::Write {
            path: None,
            source: io,
        };
        assert_eq!(err.to_string(), "could not write the download");
        assert_eq!(
            std::error::Error::source(&err).unwrap().to_string(),
            "disk full"
        );
        let err = Error::Handler {
            source: "ERP is down".into(),
        };
        assert!(!err.to_string().contains("ERP"), "{err}");
    }

    #[test]
    fn error_is_small_enough_to_return() {
        assert!(
            // clippy's `result_large_err` refuses 128 bytes and more.
            std::mem::size_of::<Error>() < 128,
            "{}",
            std::mem::size_of::<Error>()
        );
    }
}

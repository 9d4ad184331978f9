//! The authenticated client and the adapter under every operation's
//! `send()`: it runs the generated call and maps its outcome to a
//! [`Response`] or an [`Error`]. The builder is in [`builder`], the response
//! in [`response`].

use std::fmt;
use std::future::Future;
use std::time::Duration;

use cm_api_gen::ResponseValue;
use serde::de::DeserializeOwned;

use crate::endpoint::Endpoint;
use crate::error::{Error, TransportKind, snippet};
use crate::retry::CallOptions;
use crate::scope::{CallContext, CallState};
use crate::server_timing::ServerTiming;

mod builder;
mod response;

pub use builder::ClientBuilder;
pub use response::Response;

/// Default time allowed to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time allowed for one attempt, from connecting to the end of the
/// body; for a streamed file (download or upload), the longest time without
/// progress.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// An authenticated client for the Communications Mining API.
///
/// Cheap to clone: clones share the connection pool and the token cache.
///
/// ```no_run
/// # async fn run() -> Result<(), cm_api::Error> {
/// let client = cm_api::Client::from_env()?;
/// for dataset in &client.list_datasets().send().await?.datasets {
///     println!("{}", dataset.name);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) generated: cm_api_gen::Client,
    endpoint: Endpoint,
    default_project: Option<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("default_project", &self.default_project)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client configured from the environment and the configuration file
    /// only; see [`ClientBuilder`] for the rules.
    pub fn from_env() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// A builder, to set values in code; unset values still come from the
    /// environment and the configuration file.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The project to use when none is given, from the builder or profile.
    pub fn default_project(&self) -> Option<&str> {
        self.default_project.as_deref()
    }

    /// Runs a generated call (a closure over the generated client) and maps
    /// its result: the adapter under every builder's `send()` and the
    /// hand-written helpers.
    pub(crate) async fn send<'a, F, Fut, T, E>(&'a self, call: F) -> Result<Response<T>, Error>
    where
        F: FnOnce(&'a cm_api_gen::Client) -> Fut,
        Fut: Future<Output = Result<ResponseValue<T>, cm_api_gen::Error<E>>>,
        T: DeserializeOwned,
        E: ErrorBody,
    {
        self.send_with(CallOptions::new(), call).await
    }

    /// [`send`](Self::send) with a call's own options.
    pub(crate) async fn send_with<'a, F, Fut, T, E>(
        &'a self,
        options: CallOptions,
        call: F,
    ) -> Result<Response<T>, Error>
    where
        F: FnOnce(&'a cm_api_gen::Client) -> Fut,
        Fut: Future<Output = Result<ResponseValue<T>, cm_api_gen::Error<E>>>,
        T: DeserializeOwned,
        E: ErrorBody,
    {
        self.run(options, call(&self.generated), decode_path::<T>)
            .await
    }

    /// The `send()` of a generated JSON operation's builder.
    pub(crate) async fn call_json<T, E>(
        &self,
        options: CallOptions,
        _operation: &'static str,
        call: impl Future<Output = Result<ResponseValue<T>, cm_api_gen::Error<E>>>,
    ) -> Result<Response<T>, Error>
    where
        T: DeserializeOwned,
        E: ErrorBody,
    {
        self.run(options, call, decode_path::<T>).await
    }

    /// The `send()` of a generated operation whose body is raw bytes.
    pub(crate) async fn call_download<E: ErrorBody>(
        &self,
        options: CallOptions,
        operation: &'static str,
        call: impl Future<Output = Result<ResponseValue<cm_api_gen::ByteStream>, cm_api_gen::Error<E>>>,
    ) -> Result<Response<crate::Download>, Error> {
        let call = async move {
            let value = call.await?;
            let status = value.status();
            let headers = value.headers().clone();
            let download =
                crate::Download::new(operation, &headers, value.into_inner().into_inner())
                    .with_progress_timeout(crate::scope::progress_timeout());
            Ok(ResponseValue::new(download, status, headers))
        };
        let response = self.run(options, call, |_| None).await?;
        let attempts = response.attempts();
        Ok(response.map(|download| download.with_attempts(attempts)))
    }

    /// Runs `call` with `options` (over any scope around it) and a fresh
    /// call record, and maps the outcome to a [`Response`] or an [`Error`].
    async fn run<T, E, Fut>(
        &self,
        options: CallOptions,
        call: Fut,
        path_of: fn(&[u8]) -> Option<String>,
    ) -> Result<Response<T>, Error>
    where
        Fut: Future<Output = Result<ResponseValue<T>, cm_api_gen::Error<E>>>,
        E: ErrorBody,
    {
        let context = CallContext::default();
        let result = options.scope(context.scope(call)).await;
        let state = context.take();
        if let Some(error) = contradiction_error(&state) {
            return Err(error);
        }
        match result {
            Ok(value) => Ok(Response {
                status: value.status().as_u16(),
                server_timing: ServerTiming::from_headers(value.headers()),
                request_id: request_id(value.headers()),
                attempts: state.attempts.max(1),
                headers: value.headers().clone(),
                value: value.into_inner(),
            }),
            Err(error) => Err(map_error(error, state, path_of).await),
        }
    }
}

/// The error body type of a generated operation. Sealed: implemented for
/// the specification's `ErrorResponse` and for `()`.
pub trait ErrorBody: sealed::Sealed {
    /// The envelope's `message`.
    #[doc(hidden)]
    fn message(&self) -> Option<&str>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for cm_api_gen::types::ErrorResponse {}
    impl Sealed for () {}
}

impl ErrorBody for cm_api_gen::types::ErrorResponse {
    fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
}

impl ErrorBody for () {
    fn message(&self) -> Option<&str> {
        None
    }
}

fn request_id(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn content_type(headers: Option<&http::HeaderMap>) -> Option<String> {
    headers?
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Where `body` fails to decode as `T`, decoded as the generated client
/// decodes it (`cm_api_gen::hooks::decode_json`: no nesting limit).
fn decode_path<T: DeserializeOwned>(body: &[u8]) -> Option<String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    de.disable_recursion_limit();
    match serde_path_to_error::deserialize::<_, T>(serde_stacker::Deserializer::new(&mut de)) {
        Ok(_) => None,
        Err(e) => Some(e.path().to_string()).filter(|p| p != "."),
    }
}

fn contradiction_error(state: &CallState) -> Option<Error> {
    let contradiction = state.contradiction.as_ref()?;
    let status = state.status?;
    let headers = state.headers.as_ref();
    let message = match (&contradiction.message, contradiction.claimed.as_str()) {
        (Some(m), "error") => m.clone(),
        (_, claimed) => {
            format!("the body claims \"status\": \"{claimed}\" but the HTTP status is {status}")
        }
    };
    Some(Error::Api {
        operation: state.operation,
        status,
        message,
        request_id: headers.and_then(request_id),
        server_timing: headers.map(ServerTiming::from_headers).unwrap_or_default(),
        attempts: state.attempts,
        retry_after: None,
        maybe_applied: state.maybe_applied,
    })
}

/// An [`Error::Transport`] for a network failure: while sending a request,
/// or later, while streaming a download's body. A request reqwest could
/// not build (a header value from the caller's input, say) is the caller's
/// mistake, not the network's: [`Error::InvalidRequest`], never retried.
pub(crate) fn transport_error(
    operation: Option<&'static str>,
    source: reqwest::Error,
    attempts: u32,
    deadline_hit: bool,
    maybe_applied: bool,
) -> Error {
    if source.is_builder() {
        return Error::InvalidRequest {
            operation,
            message: source.without_url().to_string(),
        };
    }
    let kind = if source.is_timeout() || deadline_hit {
        TransportKind::Timeout
    } else if source.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Connection
    };
    Error::Transport {
        operation,
        kind,
        attempts: attempts.max(1),
        // A connect error sent nothing.
        maybe_applied: maybe_applied && kind != TransportKind::Connect,
        source: Box::new(source.without_url()),
    }
}

/// An [`Error::Transport`] timeout for a file transfer that stopped moving.
pub(crate) fn stalled_error(
    operation: Option<&'static str>,
    stalled: crate::progress::Stalled,
    attempts: u32,
    maybe_applied: bool,
) -> Error {
    Error::Transport {
        operation,
        kind: TransportKind::Timeout,
        attempts: attempts.max(1),
        maybe_applied,
        source: Box::new(stalled),
    }
}

async fn map_error<E: ErrorBody>(
    error: cm_api_gen::Error<E>,
    mut state: CallState,
    path_of: fn(&[u8]) -> Option<String>,
) -> Error {
    use cm_api_gen::Error as G;
    let operation = state.operation;
    if let Some(auth) = state.auth_error.take() {
        return Error::Auth(auth);
    }
    if let Some(retry_after) = state.rate_limited {
        return Error::RateLimited {
            operation,
            retry_after,
            attempts: state.attempts,
        };
    }
    if let Some(stalled) = state.stalled {
        return stalled_error(operation, stalled, state.attempts, state.maybe_applied);
    }
    let retry_after = state.retry_after;
    let maybe_applied = state.maybe_applied;
    match error {
        G::InvalidRequest(message) | G::Custom(message) => {
            Error::InvalidRequest { operation, message }
        }
        G::CommunicationError(e) | G::InvalidUpgrade(e) | G::ResponseBodyError(e) => {
            transport_error(
                operation,
                e,
                state.attempts,
                state.deadline_hit,
                maybe_applied,
            )
        }
        G::ErrorResponse(value) => {
            let message = match value.as_ref().message() {
                Some(message) => message.to_owned(),
                None => value
                    .status()
                    .canonical_reason()
                    .unwrap_or("no message")
                    .to_owned(),
            };
            Error::Api {
                operation,
                status: value.status().as_u16(),
                message,
                request_id: request_id(value.headers()),
                server_timing: ServerTiming::from_headers(value.headers()),
                attempts: state.attempts.max(1),
                retry_after,
                maybe_applied,
            }
        }
        G::InvalidResponsePayload(bytes, source) => match state.status {
            Some(status) if !(200..300).contains(&status) => Error::UnexpectedResponse {
                operation,
                status,
                request_id: state.headers.as_ref().and_then(request_id),
                content_type: content_type(state.headers.as_ref()),
                snippet: snippet(&bytes),
                server_timing: state
                    .headers
                    .as_ref()
                    .map(ServerTiming::from_headers)
                    .unwrap_or_default(),
                attempts: state.attempts.max(1),
                retry_after,
                maybe_applied,
            },
            status => Error::Decode {
                operation,
                status: status.unwrap_or(200),
                request_id: state.headers.as_ref().and_then(request_id),
                attempts: state.attempts.max(1),
                path: path_of(&bytes),
                snippet: snippet(&bytes),
                source: Box::new(source),
            },
        },
        G::UnexpectedResponse(response) => {
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = match response.bytes().await {
                Ok(body) => snippet(&body),
                Err(_) => String::new(),
            };
            Error::UnexpectedResponse {
                operation,
                status,
                request_id: request_id(&headers),
                content_type: content_type(Some(&headers)),
                snippet: body,
                server_timing: ServerTiming::from_headers(&headers),
                attempts: state.attempts.max(1),
                retry_after,
                maybe_applied,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request reqwest refuses to build (here a header value with a line
    /// break, as caller input could carry) is the caller's mistake: never
    /// a retryable network error, which bulk jobs and the stream consumer
    /// would send again.
    #[test]
    fn a_request_that_cannot_be_built_is_an_invalid_request_not_a_network_error() {
        let builder_error = reqwest::Client::new()
            .get("http://127.0.0.1:9/api/v1/datasets")
            .header("x-tag", "a\nb")
            .build()
            .unwrap_err();
        assert!(builder_error.is_builder());

        let error = transport_error(Some("list_datasets"), builder_error, 1, false, false);

        assert!(
            matches!(
                &error,
                Error::InvalidRequest {
                    operation: Some("list_datasets"),
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(!error.is_retryable());
        assert!(!error.maybe_applied());
    }
}

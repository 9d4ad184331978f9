//! The [`RequestHooks`] implementation: authentication, retries, timeouts,
//! tracing and response inspection for every generated operation.
//!
//! The generated code only reports hook failures as strings and loses the
//! status of non-JSON error bodies, so each call made through
//! an operation's `send()` runs inside a task-local
//! [`CallContext`] into which the hooks record what they saw: the typed auth
//! error, the final status and headers, the attempt count and any
//! contradiction between the envelope and the HTTP status. The adapter then
//! builds the typed [`Error`](crate::Error) from it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cm_api_gen::hooks::{BoxFuture, HookError, RequestHooks};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, RETRY_AFTER};
use tokio::time::Instant;
use tracing::Instrument;

use crate::auth::TokenProvider;
use crate::error::AuthError;
use crate::progress::{Progress, Stalled};
use crate::retry::{
    Attempt, CallOptions, Decision, Failure, RateGate, RetryPolicy, TIMER_CAP, decide,
    instant_after, is_retryable_status, parse_retry_after, retry_class,
};
use crate::scope::{CallContext, Contradiction, current_gate, note_attempt};
use crate::secret::Secret;

/// The hooks installed in the generated client.
pub(crate) struct Transport {
    pub(crate) provider: Arc<dyn TokenProvider>,
    pub(crate) retry: RetryPolicy,
    /// The per-attempt timeout (`ClientBuilder::request_timeout`).
    pub(crate) request_timeout: Duration,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("provider", &self.provider)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

fn bearer(token: &Secret) -> Result<HeaderValue, AuthError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        AuthError::Provider("the token contains characters not allowed in an HTTP header".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A failure worth another attempt of a retryable operation: nothing
/// came back, or the response was cut (connect, send, timeout, body).
fn is_transient(err: &reqwest::Error) -> bool {
    err.is_connect() || err.is_timeout() || err.is_request() || err.is_body() || err.is_decode()
}

/// Operations whose answer is a file: the spec's non-JSON success bodies.
/// A test checks the list against the spec.
const DOWNLOADS: &[&str] = &[
    "get_attachment",
    "get_document",
    "get_comment_audio",
    "get_appliance_config",
    "get_attachment_page_image",
    "get_attachment_page_thumbnail",
];

/// Operations whose request body is a file: the spec's hand-written
/// uploads (multipart, then raw bodies). A test checks the list against
/// the spec.
const UPLOADS: &[&str] = &[
    "upload_comment_attachment",
    "upload_comment_audio",
    "upload_document",
    "upload_email_attachment",
    "upload_ixp_document",
    "update_appliance_config",
    "upload_files",
    "detect_csv_format",
    "sync_comments_from_csv",
];

/// Whether a request moves a file, and which way: a file transfer is
/// bounded by progress, not by a total ("Timeouts" in `DESIGN.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transfer {
    /// JSON both ways: buffered, bounded by the attempt timeout.
    None,
    /// The request body is a file; the JSON answer is buffered.
    Upload,
    /// The answer is a file, streamed to the caller unread.
    Download,
}

fn transfer_of(operation: &str, request: &reqwest::Request) -> Transfer {
    let csv = request
        .headers()
        .get(ACCEPT)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/csv"));
    if DOWNLOADS.contains(&operation) || csv {
        Transfer::Download
    } else if UPLOADS.contains(&operation) {
        Transfer::Upload
    } else {
        Transfer::None
    }
}

/// A rate-limited answer's wait: the `Retry-After` when sent, parsed once.
fn retry_after_of(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// Whether `wait` from now still ends before `deadline` (`None`: no deadline).
fn fits(wait: Duration, deadline: Option<Instant>) -> bool {
    match (deadline, instant_after(wait)) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(deadline), Some(end)) => end < deadline,
    }
}

/// Records a call the rate gate refused before anything was sent (the
/// gate stays closed past the deadline) and returns its error, which the
/// adapter turns into `Error::RateLimited`.
fn refuse_at_gate(closed: Duration, attempts: u32, why: &'static str) -> reqwest::Error {
    tracing::warn!(wait_ms = closed.as_millis() as u64, "{why}");
    CallContext::update(|s| {
        s.attempts = attempts;
        s.rate_limited = Some(closed);
    });
    stand_in_error()
}

/// `future`, watched by `progress` when the attempt has a progress clock.
async fn watched<F: Future>(
    progress: Option<&Progress>,
    future: F,
) -> Result<F::Output, AttemptError> {
    match progress {
        Some(progress) => progress.watch(future).await.map_err(AttemptError::Stalled),
        None => Ok(future.await),
    }
}

/// A `reqwest::Error` returned through the hooks' interface (which takes
/// no other type) for a failure the call record describes: the adapter
/// reports the recorded failure, never this.
fn stand_in_error() -> reqwest::Error {
    let mut response = http::Response::new(Bytes::new());
    *response.status_mut() = http::StatusCode::REQUEST_TIMEOUT;
    match reqwest::Response::from(response).error_for_status() {
        Err(err) => err,
        Ok(_) => unreachable!("a 408 is an error status"),
    }
}

/// What one attempt produced.
enum Outcome {
    /// A response whose body was read (JSON and error bodies).
    Buffered(http::Response<Bytes>),
    /// A downloaded file's body, passed through unread.
    Streamed(reqwest::Response),
}

impl Outcome {
    fn status(&self) -> u16 {
        match self {
            Self::Buffered(r) => r.status().as_u16(),
            Self::Streamed(r) => r.status().as_u16(),
        }
    }

    fn headers(&self) -> &http::HeaderMap {
        match self {
            Self::Buffered(r) => r.headers(),
            Self::Streamed(r) => r.headers(),
        }
    }
}

/// How one attempt failed before any response was read.
enum AttemptError {
    /// reqwest's own error: connect, send, timeout, body.
    Http(reqwest::Error),
    /// A file transfer made no progress for its progress timeout.
    Stalled(Stalled),
}

impl AttemptError {
    /// The retry decision's view of the failure; `None` for a failure that
    /// repeating cannot fix (a redirect loop, a request reqwest refused).
    fn failure(&self) -> Option<Failure> {
        match self {
            Self::Http(err) if err.is_connect() => Some(Failure::NotSent),
            Self::Http(err) if is_transient(err) => Some(Failure::Lost),
            Self::Http(_) => None,
            Self::Stalled(_) => Some(Failure::Lost),
        }
    }
}

/// The bounds on one attempt; see "Timeouts" in `crates/api/DESIGN.md`.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    /// reqwest's total timeout for the attempt (`None`: none).
    total: Option<Duration>,
    /// The longest time without progress, for a file transfer.
    progress: Option<Duration>,
}

impl Transport {
    async fn send(
        &self,
        client: &reqwest::Client,
        mut request: reqwest::Request,
        operation: &'static str,
    ) -> reqwest::Result<reqwest::Response> {
        let options = CallOptions::current();
        // A per-call retry policy replaces the client's for this call.
        let policy = options.retry.unwrap_or(self.retry);
        let started = Instant::now();
        // `None`: no deadline (a duration too large for the clock). Shared
        // with the token wait in `prepare`: one deadline per call.
        let deadline = CallContext::deadline(self.call_budget(&options));
        let transfer = transfer_of(operation, &request);
        let class = retry_class(operation, request.method().as_str());
        let span = tracing::Span::current();
        let mut attempt: u32 = 0;
        let mut refreshed = false;
        let mut maybe_applied = false;
        let gate = current_gate();
        loop {
            // Waiting at the gate counts against the deadline.
            if let Some(gate) = &gate {
                let closed = gate.remaining();
                if !closed.is_zero() && !fits(closed, deadline) {
                    return Err(refuse_at_gate(
                        closed,
                        attempt,
                        "rate gate closed beyond the call's deadline: not sending",
                    ));
                }
                // The gate may be closed again (longer) while waiting: the
                // wait still ends at the deadline.
                let opened = match deadline {
                    None => {
                        gate.wait().await;
                        true
                    }
                    Some(deadline) => tokio::time::timeout_at(deadline, gate.wait()).await.is_ok(),
                };
                if !opened {
                    return Err(refuse_at_gate(
                        gate.remaining(),
                        attempt,
                        "rate gate still closed at the call's deadline: not sending",
                    ));
                }
            }
            attempt += 1;
            note_attempt();
            let spare = request.try_clone();
            let bounds = self.bounds(&options, transfer, deadline);
            *request.timeout_mut() = bounds.total;
            let result = self.attempt(client, request, transfer, bounds).await;
            span.record("attempts", attempt);
            span.record("duration_ms", started.elapsed().as_secs_f64() * 1000.0);
            let (failure, outcome) = match result {
                Ok(outcome) => {
                    let status = outcome.status();
                    span.record("status", status);
                    // The last answer's server time, when it sends one.
                    if let Some(total) =
                        crate::server_timing::ServerTiming::from_headers(outcome.headers()).total()
                    {
                        span.record("server_ms", total.as_secs_f64() * 1000.0);
                    }
                    if status < 400 {
                        return Ok(self.finish(outcome, attempt, maybe_applied));
                    }
                    let retry_after = retry_after_of(outcome.headers());
                    (
                        Failure::Status {
                            status,
                            retry_after,
                        },
                        Ok(outcome),
                    )
                }
                Err(error) => match error.failure() {
                    Some(failure) => (failure, Err(error)),
                    None => return Err(self.give_up(error, attempt, deadline, maybe_applied)),
                },
            };
            maybe_applied |= failure.maybe_applied();
            let backoff = policy.backoff(attempt);
            if let Failure::Status {
                status,
                retry_after,
            } = failure
                && is_retryable_status(status)
            {
                // Parsed once; the same wait closes the gate and delays the retry.
                pause_gate(
                    gate.as_deref(),
                    status,
                    retry_after,
                    retry_after.unwrap_or(backoff),
                );
            }
            let decision = decide(&Attempt {
                failure,
                class,
                attempt,
                max_attempts: policy.get_max_attempts(),
                replayable: spare.is_some(),
                may_refresh: !refreshed,
                backoff,
                max_backoff: policy.get_max_backoff(),
                gate: gate.as_deref().map(RateGate::remaining).unwrap_or_default(),
                time_left: deadline.map(|d| d.saturating_duration_since(Instant::now())),
            });
            // `decide` retries and refreshes only a replayable request, so
            // `spare` is there whenever it is needed.
            match (decision, spare) {
                (Decision::Retry { wait }, Some(next)) => {
                    match &outcome {
                        Ok(_) => {
                            tracing::warn!(attempt, status = ?failure, wait_ms = wait.as_millis() as u64, "retryable status, retrying")
                        }
                        Err(AttemptError::Http(err)) => {
                            tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, error = %err.without_url_ref(), "transport failure, retrying")
                        }
                        Err(AttemptError::Stalled(stalled)) => {
                            tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, error = %stalled, "transfer stalled, retrying")
                        }
                    }
                    tokio::time::sleep(wait).await;
                    request = next;
                    continue;
                }
                (Decision::Refresh, Some(mut next)) => {
                    refreshed = true;
                    match self.refreshed_request(&mut next, deadline).await {
                        Ok(true) => {
                            tracing::info!(attempt, "401: retrying once with a refreshed token");
                            request = next;
                            continue;
                        }
                        Ok(false) => {}
                        Err(auth) => CallContext::update(|s| s.auth_error = Some(auth)),
                    }
                }
                (Decision::Return { retry_after }, _) => {
                    // Not waited out here: the caller learns how long to wait.
                    CallContext::update(|s| s.retry_after = retry_after);
                }
                (Decision::Retry { .. } | Decision::Refresh, None) => {}
            }
            return match outcome {
                Ok(outcome) => Ok(self.finish(outcome, attempt, maybe_applied)),
                Err(error) => Err(self.give_up(error, attempt, deadline, maybe_applied)),
            };
        }
    }

    /// Records a failed last attempt and returns its error.
    fn give_up(
        &self,
        error: AttemptError,
        attempt: u32,
        deadline: Option<Instant>,
        maybe_applied: bool,
    ) -> reqwest::Error {
        let deadline_hit = deadline.is_some_and(|d| Instant::now() >= d);
        match error {
            AttemptError::Http(err) => {
                let deadline_hit = err.is_timeout() && deadline_hit;
                CallContext::update(|s| {
                    s.attempts = attempt;
                    s.deadline_hit = deadline_hit;
                    s.maybe_applied = maybe_applied;
                });
                err
            }
            AttemptError::Stalled(stalled) => {
                CallContext::update(|s| {
                    s.attempts = attempt;
                    s.stalled = Some(stalled);
                    s.maybe_applied = maybe_applied;
                });
                // A stand-in for the hooks' interface; the adapter reports
                // the stall it finds in the call record instead.
                stand_in_error()
            }
        }
    }

    /// The bounds of the next attempt. A buffered call's attempt ends by
    /// the attempt timeout and the deadline, whichever comes first. A file
    /// transfer is bounded by progress (the attempt timeout, per call or
    /// the client's), and by a total only when one is set for the call.
    fn bounds(
        &self,
        options: &CallOptions,
        transfer: Transfer,
        deadline: Option<Instant>,
    ) -> Bounds {
        let attempt_timeout = options.attempt_timeout.unwrap_or(self.request_timeout);
        match transfer {
            Transfer::None => {
                let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                let total = remaining.map_or(attempt_timeout, |r| r.min(attempt_timeout));
                Bounds {
                    total: Some(total.min(TIMER_CAP)),
                    progress: None,
                }
            }
            Transfer::Upload | Transfer::Download => Bounds {
                total: options.attempt_timeout.map(|t| t.min(TIMER_CAP)),
                progress: Some(attempt_timeout),
            },
        }
    }

    /// The time budget of one call: the per-call override, else the policy's.
    fn call_budget(&self, options: &CallOptions) -> Duration {
        options
            .deadline
            .unwrap_or(options.retry.unwrap_or(self.retry).get_deadline())
    }

    /// One attempt: the response and, unless it is a downloaded file, its
    /// whole body, so that a body cut short is retried like any other
    /// transient failure. A file transfer's request body and response
    /// headers are watched by a progress clock.
    async fn attempt(
        &self,
        client: &reqwest::Client,
        mut request: reqwest::Request,
        transfer: Transfer,
        bounds: Bounds,
    ) -> Result<Outcome, AttemptError> {
        let progress = bounds.progress.map(Progress::start);
        if let Some(progress) = &progress
            && let Some(body) = request.body_mut().take()
        {
            *request.body_mut() = Some(progress.track(body));
        }
        let response = watched(progress.as_ref(), client.execute(request))
            .await?
            .map_err(AttemptError::Http)?;
        let status = response.status();
        if transfer == Transfer::Download && status.is_success() {
            // A file: never buffered, never read as an envelope.
            CallContext::update(|s| s.progress_timeout = bounds.progress);
            return Ok(Outcome::Streamed(response));
        }
        if let Some(progress) = &progress {
            progress.tick();
        }
        let version = response.version();
        let headers = response.headers().clone();
        let body = watched(progress.as_ref(), response.bytes())
            .await?
            .map_err(AttemptError::Http)?;
        let mut rebuilt = http::Response::new(body);
        *rebuilt.status_mut() = status;
        *rebuilt.version_mut() = version;
        *rebuilt.headers_mut() = headers;
        Ok(Outcome::Buffered(rebuilt))
    }

    /// Puts a refreshed token on `request`; `false` if the provider has
    /// none. The provider gets what is left of the call's deadline.
    async fn refreshed_request(
        &self,
        request: &mut reqwest::Request,
        deadline: Option<Instant>,
    ) -> Result<bool, AuthError> {
        let rejected = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(Secret::new)
            .unwrap_or_else(|| Secret::new(""));
        let refreshed = match deadline {
            None => self.provider.refresh(&rejected).await,
            Some(until) => {
                let after = until.saturating_duration_since(Instant::now());
                tokio::time::timeout_at(until, self.provider.refresh(&rejected))
                    .await
                    .unwrap_or(Err(AuthError::Timeout { after }))
            }
        };
        match refreshed? {
            Some(token) if token.secret() != &rejected => {
                request
                    .headers_mut()
                    .insert(AUTHORIZATION, bearer(token.secret())?);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Records the final response and checks a buffered body's `"status"`
    /// against the HTTP status.
    fn finish(&self, outcome: Outcome, attempt: u32, maybe_applied: bool) -> reqwest::Response {
        let response = match outcome {
            Outcome::Streamed(response) => {
                record_final(
                    response.status().as_u16(),
                    response.headers(),
                    attempt,
                    maybe_applied,
                );
                return response;
            }
            Outcome::Buffered(response) => response,
        };
        let status = response.status();
        record_final(status.as_u16(), response.headers(), attempt, maybe_applied);
        // A scan, not a parse: the typed decoder parses the body next.
        let envelope = crate::envelope::scan(response.body());
        let claimed = envelope.status.as_deref();
        let contradicts = match claimed {
            Some("error") => status.is_success(),
            Some("ok") => !status.is_success(),
            _ => false,
        };
        if contradicts {
            let contradiction = Contradiction {
                claimed: claimed.unwrap_or_default().to_owned(),
                message: envelope.message.map(std::borrow::Cow::into_owned),
            };
            tracing::warn!(status = status.as_u16(), claimed = %contradiction.claimed, "body status contradicts the HTTP status");
            CallContext::update(|s| s.contradiction = Some(contradiction));
        }
        reqwest::Response::from(response)
    }
}

fn record_final(status: u16, headers: &http::HeaderMap, attempt: u32, maybe_applied: bool) {
    CallContext::update(|s| {
        s.status = Some(status);
        s.headers = Some(headers.clone());
        s.attempts = attempt;
        s.maybe_applied = maybe_applied;
    });
}

impl RequestHooks for Transport {
    fn prepare<'a>(
        &'a self,
        request: &'a mut reqwest::Request,
        operation_id: &'static str,
    ) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(async move {
            CallContext::update(|s| s.operation = Some(operation_id));
            // The provider (which retries its own exchange) gets the call's
            // deadline; what it uses is no longer available to `send`.
            let budget = self.call_budget(&CallOptions::current());
            let token = match CallContext::deadline(budget) {
                None => self.provider.token().await,
                Some(until) => tokio::time::timeout_at(until, self.provider.token())
                    .await
                    .unwrap_or(Err(AuthError::Timeout { after: budget })),
            };
            let header = token.and_then(|token| bearer(token.secret()));
            match header {
                Ok(value) => {
                    request.headers_mut().insert(AUTHORIZATION, value);
                    Ok(())
                }
                Err(auth) => {
                    let message = auth.to_string();
                    CallContext::update(|s| s.auth_error = Some(auth));
                    Err(message.into())
                }
            }
        })
    }

    fn execute<'a>(
        &'a self,
        client: &'a reqwest::Client,
        request: reqwest::Request,
        operation_id: &'static str,
    ) -> BoxFuture<'a, reqwest::Result<reqwest::Response>> {
        let span = tracing::info_span!(
            "cm_api.request",
            operation = operation_id,
            method = %request.method(),
            path = %request.url().path(),
            status = tracing::field::Empty,
            attempts = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
            server_ms = tracing::field::Empty,
        );
        Box::pin(self.send(client, request, operation_id).instrument(span))
    }
}

/// Closes the job's [`RateGate`](crate::RateGate), if any, after a
/// rate-limiting answer: for the `Retry-After` when sent, else for one
/// `backoff` on a 429 (capped by the gate). Gateway errors without
/// `Retry-After` leave it open.
fn pause_gate(
    gate: Option<&RateGate>,
    status: u16,
    retry_after: Option<Duration>,
    backoff: Duration,
) {
    let Some(gate) = gate else { return };
    let wait = match (retry_after, status) {
        (Some(wait), _) => wait,
        (None, 429) => backoff,
        (None, _) => return,
    };
    tracing::warn!(
        status,
        wait_ms = wait.as_millis() as u64,
        "rate limited: pausing every request of the job"
    );
    gate.pause_for(wait);
}

/// `reqwest::Error::without_url` by reference, for log lines.
trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(url.as_str(), url.path());
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::{DOWNLOADS, UPLOADS};

    /// Every operation of the spec whose success body is not JSON is a
    /// download, every one that `cm-api` sends by hand (a file) is an
    /// upload, and nothing else is either.
    #[test]
    fn file_transfers_are_the_specs_file_bodies() {
        let text = include_str!("../../../spec/openapi.yaml");
        let options = serde_saphyr::options! { strict_booleans: true };
        let spec: serde_json::Value =
            serde_saphyr::from_str_with_options(text, options).expect("valid YAML");
        let mut downloads: Vec<&str> = Vec::new();
        let mut uploads: Vec<&str> = Vec::new();
        for item in spec["paths"].as_object().expect("paths").values() {
            for operation in item.as_object().expect("path item").values() {
                let Some(id) = operation.get("operationId").and_then(|v| v.as_str()) else {
                    continue;
                };
                let success = &operation["responses"]["200"]["content"];
                let binary_answer = success.get("application/json").is_none()
                    && success.as_object().is_some_and(|c| !c.is_empty());
                if binary_answer {
                    downloads.push(id);
                }
                if operation.get("x-hand-written").is_some() {
                    uploads.push(id);
                }
            }
        }
        for (found, expected) in [(downloads, DOWNLOADS), (uploads, UPLOADS)] {
            let mut found = found;
            let mut expected: Vec<&str> = expected.to_vec();
            found.sort_unstable();
            expected.sort_unstable();
            assert_eq!(found, expected);
        }
    }
}

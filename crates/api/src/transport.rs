//! The [`RequestHooks`] implementation: authentication, retries, timeouts,
//! tracing and response inspection for every generated operation.
//!
//! The generated code only reports hook failures as strings and loses the
//! status of non-JSON error bodies, so each call made through
//! [`Client::send`](crate::Client::send) runs inside a task-local
//! [`CallContext`] into which the hooks record what they saw: the typed auth
//! error, the final status and headers, the attempt count and any
//! contradiction between the envelope and the HTTP status. The adapter then
//! builds the typed [`Error`](crate::Error) from it.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use cm_api_gen::hooks::{BoxFuture, HookError, RequestHooks};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use tracing::Instrument;

use crate::auth::{AuthError, TokenProvider};
use crate::retry::{RetryClass, RetryPolicy, is_retryable_status, parse_retry_after, retry_class};
use crate::secret::Secret;

tokio::task_local! {
    static CALL: CallContext;
}

/// What the hooks observed during one call.
#[derive(Debug, Default)]
pub(crate) struct CallState {
    pub(crate) operation: Option<&'static str>,
    pub(crate) auth_error: Option<AuthError>,
    pub(crate) status: Option<u16>,
    pub(crate) headers: Option<http::HeaderMap>,
    pub(crate) attempts: u32,
    /// Set when the body's `"status"` contradicts the HTTP status.
    pub(crate) contradiction: Option<Contradiction>,
    /// Set when the call's deadline cut the last attempt short.
    pub(crate) deadline_hit: bool,
}

/// A body whose `"status"` field contradicts the HTTP status.
#[derive(Debug)]
pub(crate) struct Contradiction {
    pub(crate) claimed: String,
    pub(crate) message: Option<String>,
}

/// Shared per-call state, set by the adapter with [`CallContext::scope`].
#[derive(Clone, Debug, Default)]
pub(crate) struct CallContext(Arc<Mutex<CallState>>);

impl CallContext {
    /// Runs `future` with this context visible to the hooks.
    pub(crate) async fn scope<F: std::future::Future>(&self, future: F) -> F::Output {
        CALL.scope(self.clone(), future).await
    }

    /// Takes the recorded state out.
    pub(crate) fn take(&self) -> CallState {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CallState> {
        // A poisoned lock only means a hook panicked mid-update; the data is still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Updates the current call's state, if the call runs inside a context.
    fn update(f: impl FnOnce(&mut CallState)) {
        let _ = CALL.try_with(|ctx| f(&mut ctx.lock()));
    }
}

/// The hooks installed in the generated client.
pub(crate) struct Transport {
    pub(crate) provider: Arc<dyn TokenProvider>,
    pub(crate) retry: RetryPolicy,
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

fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let media = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            media == "application/json" || media.ends_with("+json")
        })
}

/// The envelope fields used to detect a contradicting body.
#[derive(serde::Deserialize)]
struct Envelope {
    status: Option<serde_json::Value>,
    message: Option<serde_json::Value>,
}

fn is_transient(err: &reqwest::Error) -> bool {
    err.is_connect() || err.is_timeout() || err.is_request()
}

impl Transport {
    async fn send(
        &self,
        client: &reqwest::Client,
        mut request: reqwest::Request,
        operation: &'static str,
    ) -> reqwest::Result<reqwest::Response> {
        let started = Instant::now();
        let deadline = started + self.retry.get_deadline();
        let class = retry_class(operation, request.method().as_str());
        let span = tracing::Span::current();
        let mut attempt: u32 = 0;
        let mut retries: u32 = 0;
        let mut refreshed = false;
        let gate = crate::retry::current_gate();
        loop {
            if let Some(gate) = &gate {
                gate.wait().await;
            }
            attempt += 1;
            let spare = request.try_clone();
            let remaining = deadline.saturating_duration_since(Instant::now());
            *request.timeout_mut() = Some(self.request_timeout.min(remaining));
            let may_retry =
                class == RetryClass::Idempotent && retries + 1 < self.retry.get_max_attempts();
            let result = client.execute(request).await;
            span.record("attempts", attempt);
            span.record("duration_ms", started.elapsed().as_millis() as u64);
            let response = match result {
                Err(err) => {
                    if let Some(next) = spare.filter(|_| may_retry && is_transient(&err)) {
                        let wait = self.retry.backoff(retries + 1);
                        if Instant::now() + wait < deadline {
                            tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, error = %err.without_url_ref(), "transport failure, retrying");
                            tokio::time::sleep(wait).await;
                            retries += 1;
                            request = next;
                            continue;
                        }
                    }
                    let deadline_hit = err.is_timeout() && Instant::now() >= deadline;
                    CallContext::update(|s| {
                        s.attempts = attempt;
                        s.deadline_hit = deadline_hit;
                    });
                    return Err(err);
                }
                Ok(response) => response,
            };
            let status = response.status().as_u16();
            span.record("status", status);

            if status == 401 && !refreshed {
                if let Some(mut next) = spare {
                    match self.refreshed_request(&mut next).await {
                        Ok(true) => {
                            tracing::info!(attempt, "401: retrying once with a refreshed token");
                            refreshed = true;
                            request = next;
                            continue;
                        }
                        Ok(false) => {}
                        Err(auth) => CallContext::update(|s| s.auth_error = Some(auth)),
                    }
                }
            } else if let Some(next) = spare.filter(|_| may_retry && is_retryable_status(status)) {
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                pause_gate(
                    gate.as_deref(),
                    status,
                    retry_after,
                    self.retry.backoff(retries + 1),
                );
                let wait = match retry_after {
                    Some(wait) if self.retry.accepts_retry_after(wait) => Some(wait),
                    Some(_) => None,
                    None => Some(self.retry.backoff(retries + 1)),
                };
                if let Some(wait) = wait.filter(|w| Instant::now() + *w < deadline) {
                    tracing::warn!(
                        attempt,
                        status,
                        wait_ms = wait.as_millis() as u64,
                        "retryable status, retrying"
                    );
                    drop(response);
                    tokio::time::sleep(wait).await;
                    retries += 1;
                    request = next;
                    continue;
                }
            } else if is_retryable_status(status) {
                // Not retried here, but the rest of a gated job must still slow down.
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                pause_gate(
                    gate.as_deref(),
                    status,
                    retry_after,
                    self.retry.backoff(retries + 1),
                );
            }
            return self.inspect(response, attempt).await;
        }
    }

    /// Puts a refreshed token on `request`; `false` if the provider has none.
    async fn refreshed_request(&self, request: &mut reqwest::Request) -> Result<bool, AuthError> {
        let rejected = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(Secret::new)
            .unwrap_or_else(|| Secret::new(""));
        match self.provider.refresh(&rejected).await? {
            Some(token) if token.secret() != &rejected => {
                request
                    .headers_mut()
                    .insert(AUTHORIZATION, bearer(token.secret())?);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Records the final response and, for JSON and error bodies, buffers the
    /// body to check its `"status"` against the HTTP status. Non-JSON success
    /// bodies (downloads) are passed through unread.
    async fn inspect(
        &self,
        response: reqwest::Response,
        attempt: u32,
    ) -> reqwest::Result<reqwest::Response> {
        let status = response.status();
        let headers = response.headers().clone();
        let buffer = is_json(&headers) || !status.is_success();
        CallContext::update(|s| {
            s.status = Some(status.as_u16());
            s.headers = Some(headers.clone());
            s.attempts = attempt;
        });
        if !buffer {
            return Ok(response);
        }
        let version = response.version();
        let body = response.bytes().await?;
        if let Ok(envelope) = serde_json::from_slice::<Envelope>(&body) {
            let claimed = envelope.status.as_ref().and_then(|v| v.as_str());
            let contradicts = match claimed {
                Some("error") => status.is_success(),
                Some("ok") => !status.is_success(),
                _ => false,
            };
            if contradicts {
                let contradiction = Contradiction {
                    claimed: claimed.unwrap_or_default().to_owned(),
                    message: envelope.message.and_then(|m| m.as_str().map(str::to_owned)),
                };
                tracing::warn!(status = status.as_u16(), claimed = %contradiction.claimed, "body status contradicts the HTTP status");
                CallContext::update(|s| s.contradiction = Some(contradiction));
            }
        }
        let mut rebuilt = http::Response::new(body);
        *rebuilt.status_mut() = status;
        *rebuilt.version_mut() = version;
        *rebuilt.headers_mut() = headers;
        Ok(reqwest::Response::from(rebuilt))
    }
}

impl RequestHooks for Transport {
    fn prepare<'a>(
        &'a self,
        request: &'a mut reqwest::Request,
        operation_id: &'static str,
    ) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(async move {
            CallContext::update(|s| s.operation = Some(operation_id));
            // A custom provider gets the same time budget as one request.
            let token = tokio::time::timeout(self.request_timeout, self.provider.token())
                .await
                .unwrap_or_else(|_| {
                    Err(AuthError::Provider(
                        "timed out waiting for the token provider".into(),
                    ))
                });
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
        );
        Box::pin(self.send(client, request, operation_id).instrument(span))
    }
}

/// Closes the job's [`RateGate`](crate::RateGate), if any, after a
/// rate-limiting answer: for the `Retry-After` when sent, else for one
/// `backoff` on a 429. Gateway errors without `Retry-After` leave it open.
fn pause_gate(
    gate: Option<&crate::retry::RateGate>,
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

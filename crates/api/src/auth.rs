//! Credentials and the tokens they produce.
//!
//! Two kinds of credentials are supported: a developer API token, sent as is,
//! and OAuth 2.0 client credentials (an external application registered in
//! UiPath), exchanged at the identity server for short-lived access tokens.
//! Both are [`TokenProvider`]s; a custom provider can be plugged in with
//! [`ClientBuilder::token_provider`](crate::ClientBuilder::token_provider).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use futures::future::Shared;
use serde::Deserialize;
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{BoxError, snippet};
use crate::retry::{
    Attempt, Decision, Failure, RetryClass, RetryPolicy, TIMER_CAP, decide, instant_after,
    parse_retry_after,
};
use crate::secret::Secret;

pub use crate::error::AuthError;

/// A boxed, `Send` future, as returned by [`TokenProvider`] methods.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The scopes requested by default in the client-credentials exchange.
pub const DEFAULT_SCOPE: &str = "PM.User PM.User.Read Ixp.ApiAccess";

/// How long before its expiry a cached access token is replaced by default.
pub const DEFAULT_REFRESH_BUFFER: Duration = Duration::from_secs(60);

/// A bearer token, with its expiry when known.
///
/// Expiries are instants of tokio's clock ([`tokio::time::Instant`]), so
/// that tests can drive them with `tokio::time::pause()`.
///
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
///
/// let token = cm_api::AccessToken::new("t0ken", Instant::now().checked_add(Duration::from_secs(3600)));
/// assert!(token.expires_at().is_some());
/// assert_eq!(format!("{token:?}").contains("t0ken"), false);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    secret: Secret,
    expires_at: Option<Instant>,
}

impl AccessToken {
    /// A token that expires at `expires_at` (`None`: never, or unknown).
    pub fn new(secret: impl Into<Secret>, expires_at: Option<Instant>) -> Self {
        Self {
            secret: secret.into(),
            expires_at,
        }
    }

    /// The token value, to send as `Authorization: Bearer <token>`.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// When the token stops being valid, if known.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// Whether the token has not expired at `now`.
    fn is_valid(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// Supplies the bearer token for each request.
///
/// Implementations cache as they see fit; [`token`](TokenProvider::token) is
/// called before every request, so it should be cheap when a valid token is
/// cached.
pub trait TokenProvider: fmt::Debug + Send + Sync + 'static {
    /// A token to send now.
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>>;

    /// Called once when the API answered 401 to a request sent with
    /// `rejected`: returns a different token to retry with, or `None` when
    /// there is none (the 401 is then returned). The default returns `None`.
    fn refresh<'a>(
        &'a self,
        rejected: &'a Secret,
    ) -> BoxFuture<'a, Result<Option<AccessToken>, AuthError>> {
        let _ = rejected;
        Box::pin(async { Ok(None) })
    }
}

/// A fixed developer API token (from the Communications Mining settings page).
#[derive(Clone, Debug)]
pub struct StaticToken(AccessToken);

impl StaticToken {
    /// Uses `token` for every request.
    pub fn new(token: impl Into<Secret>) -> Self {
        Self(AccessToken::new(token, None))
    }
}

impl TokenProvider for StaticToken {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// OAuth 2.0 client credentials of a UiPath external application.
///
/// ```
/// use std::time::Duration;
/// use cm_api::ClientCredentials;
///
/// let credentials = ClientCredentials::new("my-app-id", "my-app-secret")
///     .scope("Ixp.ApiAccess")
///     .refresh_buffer(Duration::from_secs(120));
/// assert!(!format!("{credentials:?}").contains("my-app-secret"));
/// ```
#[derive(Clone, Debug)]
pub struct ClientCredentials {
    pub(crate) client_id: String,
    pub(crate) client_secret: Secret,
    pub(crate) scope: Option<String>,
    pub(crate) token_url: Option<String>,
    pub(crate) refresh_buffer: Duration,
}

impl ClientCredentials {
    /// Credentials with the default scope ([`DEFAULT_SCOPE`]) and a token URL
    /// derived from the endpoint.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<Secret>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scope: None,
            token_url: None,
            refresh_buffer: DEFAULT_REFRESH_BUFFER,
        }
    }

    /// The space-separated scopes to request.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The identity server's token endpoint, instead of the one derived from
    /// the API endpoint (`https://{host}/identity_/connect/token` on UiPath hosts).
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// How long before expiry a cached token is replaced (default 60 s),
    /// at most half the token's lifetime: a token issued for 60 s is
    /// replaced after 30 s whatever the buffer. While it is replaced,
    /// requests keep using the still-valid token.
    pub fn refresh_buffer(mut self, buffer: Duration) -> Self {
        self.refresh_buffer = buffer;
        self
    }

    /// The application (client) id; not a secret.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}

/// Exchanges client credentials for access tokens and caches them.
///
/// * One exchange at a time: callers that need a token while one runs wait
///   for it and share its result, success or failure.
/// * The exchange is a spawned task: it runs to completion (caching its
///   token) even when every caller waiting for it gives up.
/// * A token in its refresh window (its last `refresh_buffer`, at most half
///   its lifetime) is still served while one background task replaces it.
/// * A transient failure of the exchange (network, timeout, 429, 5xx) is
///   retried under the client's [`RetryPolicy`].
pub(crate) struct ClientCredentialsProvider {
    inner: Arc<Inner>,
}

struct Inner {
    credentials: ClientCredentials,
    token_url: String,
    scope: String,
    http: reqwest::Client,
    retry: RetryPolicy,
    attempt_timeout: Duration,
    state: Mutex<State>,
    exchanges: AtomicU64,
}

/// The result of the running exchange, for every waiter.
type Exchange = Shared<futures::future::BoxFuture<'static, Result<Cached, Arc<AuthError>>>>;

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    inflight: Option<Inflight>,
    /// Numbers the exchanges, so that one clears only itself from `inflight`.
    started: u64,
}

struct Inflight {
    id: u64,
    exchange: Exchange,
}

/// Clears `inflight` if it is still exchange `id`, when the exchange task
/// ends in any way (done, panicked, or dropped by its runtime's shutdown).
struct ClearInflight {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for ClearInflight {
    fn drop(&mut self) {
        self.inner.clear_inflight(self.id);
    }
}

/// Why an exchange task ended without a result. The panic's message is not
/// kept (it could quote anything).
#[derive(Debug, thiserror::Error)]
enum ExchangeAborted {
    #[error("the token exchange was cancelled: its tokio runtime shut down")]
    Cancelled,
    #[error("the token exchange panicked")]
    Panicked,
    #[error("the token exchange needs a tokio runtime, and none is running")]
    NoRuntime,
}

#[derive(Clone, Debug)]
struct Cached {
    token: AccessToken,
    /// When to start replacing the token (`None`: never).
    refresh_at: Option<Instant>,
}

impl fmt::Debug for ClientCredentialsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("ClientCredentialsProvider")
            .field("client_id", &inner.credentials.client_id)
            .field("token_url", &inner.token_url)
            .field("scope", &inner.scope)
            .field("exchanges", &inner.exchanges.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl ClientCredentialsProvider {
    pub(crate) fn new(
        credentials: ClientCredentials,
        token_url: String,
        http: reqwest::Client,
        retry: RetryPolicy,
        attempt_timeout: Duration,
    ) -> Arc<Self> {
        let scope = credentials
            .scope
            .clone()
            .unwrap_or_else(|| DEFAULT_SCOPE.to_owned());
        Arc::new(Self {
            inner: Arc::new(Inner {
                credentials,
                token_url,
                scope,
                http,
                retry,
                attempt_timeout,
                state: Mutex::new(State::default()),
                exchanges: AtomicU64::new(0),
            }),
        })
    }

    /// The running exchange, or a new one spawned on the current tokio
    /// runtime: it caches its token and clears `inflight` whether or not
    /// anyone waits for it. `background`: nobody waits, so a failure is
    /// logged.
    fn exchange(&self, state: &mut State, background: bool) -> Exchange {
        if let Some(running) = &state.inflight {
            return running.exchange.clone();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let error = Arc::new(AuthError::Provider(Box::new(ExchangeAborted::NoRuntime)));
            return futures::future::ready(Err(error)).boxed().shared();
        };
        state.started += 1;
        let id = state.started;
        let inner = Arc::clone(&self.inner);
        let task = async move {
            // Made on the first poll: dropping a task never polled does not
            // lock (`spawn` may drop it at once, under the caller's lock).
            let _clear = ClearInflight {
                inner: Arc::clone(&inner),
                id,
            };
            let result = inner.exchange_with_retries().await.map_err(Arc::new);
            {
                let mut state = inner.lock();
                if let Ok(cached) = &result {
                    state.cached = Some(cached.clone());
                }
                if state.inflight.as_ref().is_some_and(|i| i.id == id) {
                    state.inflight = None;
                }
            }
            if let (Err(error), true) = (&result, background) {
                // The message never holds a secret. The next request tries again.
                tracing::warn!(%error, "background token refresh failed; the current token is used until it expires");
            }
            result
        };
        let handle = runtime.spawn(task);
        // Weak: `inflight` holds this future, which must not keep `Inner` alive.
        let inner = Arc::downgrade(&self.inner);
        let exchange = handle
            .map(move |joined| {
                joined.unwrap_or_else(|e| {
                    // Maybe never polled (so no `ClearInflight`): clear here.
                    if let Some(inner) = inner.upgrade() {
                        inner.clear_inflight(id);
                    }
                    let aborted = if e.is_panic() {
                        ExchangeAborted::Panicked
                    } else {
                        ExchangeAborted::Cancelled
                    };
                    Err(Arc::new(AuthError::Provider(Box::new(aborted))))
                })
            })
            .boxed()
            .shared();
        state.inflight = Some(Inflight {
            id,
            exchange: exchange.clone(),
        });
        exchange
    }

    async fn wait_for(exchange: Exchange) -> Result<AccessToken, AuthError> {
        match exchange.await {
            Ok(cached) => Ok(cached.token),
            Err(shared) => Err(AuthError::shared(&shared)),
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain data: a poisoned lock still holds a valid cache.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets exchange `id` if it is still the running one.
    fn clear_inflight(&self, id: u64) {
        let mut state = self.lock();
        if state.inflight.as_ref().is_some_and(|i| i.id == id) {
            state.inflight = None;
        }
    }

    /// Exchanges until a token arrives or [`decide`] gives up: the same
    /// rule as every API call's, for an idempotent request.
    async fn exchange_with_retries(&self) -> Result<Cached, AuthError> {
        let deadline = instant_after(self.retry.get_deadline());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (error, retry_after) = match self.exchange_once().await {
                Ok(cached) => return Ok(cached),
                Err(failed) => failed,
            };
            let failure = match &error {
                AuthError::Transport { .. } | AuthError::Timeout { .. } => Failure::Lost,
                AuthError::Rejected { status, .. } | AuthError::InvalidResponse { status, .. } => {
                    Failure::Status {
                        status: *status,
                        retry_after,
                    }
                }
                AuthError::Provider(_) => return Err(error),
            };
            let decision = decide(&Attempt {
                failure,
                class: RetryClass::Idempotent,
                attempt,
                max_attempts: self.retry.get_max_attempts(),
                replayable: true,
                may_refresh: false,
                backoff: self.retry.backoff(attempt),
                max_backoff: self.retry.get_max_backoff(),
                gate: Duration::ZERO,
                time_left: deadline.map(|d| d.saturating_duration_since(Instant::now())),
            });
            let Decision::Retry { wait } = decision else {
                return Err(error);
            };
            tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, %error, "token exchange failed, retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// One exchange; a failure comes with the `Retry-After` the identity
    /// server sent, if any.
    async fn exchange_once(&self) -> Result<Cached, (AuthError, Option<Duration>)> {
        let span = tracing::info_span!(
            "cm_api.token_exchange",
            token_url = %self.token_url,
            status = tracing::field::Empty,
        );
        async {
            self.exchanges.fetch_add(1, Ordering::Relaxed);
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", self.credentials.client_id.as_str()),
                ("client_secret", self.credentials.client_secret.expose()),
                ("scope", self.scope.as_str()),
            ];
            let failed = |source: reqwest::Error| {
                if source.is_timeout() {
                    AuthError::Timeout {
                        after: self.attempt_timeout,
                    }
                } else {
                    AuthError::Transport {
                        token_url: self.token_url.clone(),
                        source: Box::new(source.without_url()),
                    }
                }
            };
            let response = self
                .http
                .post(&self.token_url)
                .header(reqwest::header::ACCEPT, "application/json")
                .timeout(self.attempt_timeout.min(TIMER_CAP))
                .form(&form)
                .send()
                .await
                .map_err(|e| (failed(e), None))?;
            let status = response.status().as_u16();
            tracing::Span::current().record("status", status);
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let body = response.bytes().await.map_err(|e| (failed(e), None))?;
            parse_token_response(
                status,
                &body,
                Instant::now(),
                self.credentials.refresh_buffer,
            )
            .map_err(|e| (e, retry_after))
        }
        .instrument(span)
        .await
    }
}

/// Turns the identity server's answer into a token or a typed error. A 2xx
/// body is never echoed (it may hold a token); an error body may be.
/// The refresh starts `buffer` before expiry, at most half the lifetime.
fn parse_token_response(
    status: u16,
    body: &[u8],
    now: Instant,
    buffer: Duration,
) -> Result<Cached, AuthError> {
    if (200..300).contains(&status) {
        let parsed: TokenResponse =
            serde_json::from_slice(body).map_err(|e| AuthError::InvalidResponse {
                status,
                detail: format!(
                    "the token response is not the expected JSON ({:?} error at line {} column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            })?;
        if parsed.access_token.is_empty() {
            return Err(AuthError::InvalidResponse {
                status,
                detail: "the token response has an empty access_token".to_owned(),
            });
        }
        let lifetime = parsed.expires_in.map(Duration::from_secs);
        let expires_at = lifetime.and_then(|l| now.checked_add(l));
        let refresh_at = lifetime.and_then(|l| now.checked_add(l - buffer.min(l / 2)));
        return Ok(Cached {
            token: AccessToken::new(parsed.access_token, expires_at),
            refresh_at,
        });
    }
    match serde_json::from_slice::<OAuthErrorBody>(body) {
        Ok(e) => Err(AuthError::Rejected {
            status,
            error: e.error,
            description: e.error_description,
        }),
        Err(_) => Err(AuthError::InvalidResponse {
            status,
            detail: format!("unexpected body: {}", snippet(body)),
        }),
    }
}

impl TokenProvider for ClientCredentialsProvider {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(async move {
            let now = Instant::now();
            let exchange = {
                let mut state = self.inner.lock();
                if let Some(cached) = &state.cached {
                    if cached.refresh_at.is_none_or(|at| now < at) {
                        return Ok(cached.token.clone());
                    }
                    if cached.token.is_valid(now) {
                        // Due for refresh but still valid: serve it, refresh once in the background.
                        let token = cached.token.clone();
                        if state.inflight.is_none() {
                            // Runs (and caches its token) with nobody waiting.
                            drop(self.exchange(&mut state, true));
                        }
                        return Ok(token);
                    }
                }
                self.exchange(&mut state, false)
            };
            Self::wait_for(exchange).await
        })
    }

    fn refresh<'a>(
        &'a self,
        rejected: &'a Secret,
    ) -> BoxFuture<'a, Result<Option<AccessToken>, AuthError>> {
        Box::pin(async move {
            let exchange = {
                let mut state = self.inner.lock();
                match &state.cached {
                    // Another request already replaced the rejected token.
                    Some(cached)
                        if cached.token.secret() != rejected
                            && cached.token.is_valid(Instant::now()) =>
                    {
                        return Ok(Some(cached.token.clone()));
                    }
                    Some(_) => state.cached = None,
                    None => {}
                }
                self.exchange(&mut state, false)
            };
            Self::wait_for(exchange).await.map(Some)
        })
    }
}

/// The cause of a failed exchange shared by several waiters.
#[derive(Debug)]
struct SharedCause(Arc<AuthError>);

impl fmt::Display for SharedCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::error::Error::source(&*self.0) {
            Some(cause) => fmt::Display::fmt(cause, f),
            None => Ok(()),
        }
    }
}

impl std::error::Error for SharedCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0).and_then(std::error::Error::source)
    }
}

impl AuthError {
    /// A copy of a failure shared by every waiter of one exchange.
    fn shared(error: &Arc<AuthError>) -> Self {
        let cause = || -> BoxError { Box::new(SharedCause(Arc::clone(error))) };
        match &**error {
            Self::Rejected {
                status,
                error,
                description,
            } => Self::Rejected {
                status: *status,
                error: error.clone(),
                description: description.clone(),
            },
            Self::InvalidResponse { status, detail } => Self::InvalidResponse {
                status: *status,
                detail: detail.clone(),
            },
            Self::Transport { token_url, .. } => Self::Transport {
                token_url: token_url.clone(),
                source: cause(),
            },
            Self::Timeout { after } => Self::Timeout { after: *after },
            Self::Provider(_) => Self::Provider(cause()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_variants() {
        let now = Instant::now();
        let buffer = DEFAULT_REFRESH_BUFFER;
        let cached = parse_token_response(
            200,
            br#"{"access_token":"abc","expires_in":3600,"token_type":"Bearer"}"#,
            now,
            buffer,
        )
        .unwrap();
        assert_eq!(cached.token.secret().expose(), "abc");
        assert_eq!(
            cached.token.expires_at(),
            Some(now + Duration::from_secs(3600))
        );
        assert_eq!(cached.refresh_at, Some(now + Duration::from_secs(3540)));

        let err = parse_token_response(
            200,
            br#"{"access_token":"leaky","expires_in":"x"}"#,
            now,
            buffer,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            AuthError::InvalidResponse { status: 200, .. }
        ));
        assert!(!err.to_string().contains("leaky"), "{err}");

        let err = parse_token_response(
            400,
            br#"{"error":"invalid_scope","error_description":"scope X not allowed"}"#,
            now,
            buffer,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "authentication failed: the identity server rejected the client credentials with HTTP 400: invalid_scope (scope X not allowed)"
        );

        let err = parse_token_response(502, b"<html>Bad gateway</html>", now, buffer).unwrap_err();
        assert_eq!(
            err.to_string(),
            "authentication failed: the identity server answered HTTP 502: unexpected body: <html>Bad gateway</html>"
        );
        assert!(err.is_retryable());
    }

    #[test]
    fn the_buffer_is_at_most_half_the_lifetime_and_never_overflows() {
        let now = Instant::now();
        let body = br#"{"access_token":"abc","expires_in":30}"#;
        let cached = parse_token_response(200, body, now, Duration::from_secs(60)).unwrap();
        assert_eq!(cached.refresh_at, Some(now + Duration::from_secs(15)));
        let cached = parse_token_response(200, body, now, Duration::MAX).unwrap();
        assert_eq!(cached.refresh_at, Some(now + Duration::from_secs(15)));
        let huge = format!(r#"{{"access_token":"abc","expires_in":{}}}"#, u64::MAX);
        let cached = parse_token_response(200, huge.as_bytes(), now, Duration::MAX).unwrap();
        assert!(cached.token.is_valid(now));
        assert!(AccessToken::new("t", None).is_valid(now));
    }

    #[test]
    fn a_shared_failure_keeps_its_kind_and_cause() {
        let original = Arc::new(AuthError::Transport {
            token_url: "https://id.example/token".into(),
            source: "connection refused".into(),
        });
        let copy = AuthError::shared(&original);
        assert!(copy.is_retryable());
        assert_eq!(copy.to_string(), original.to_string());
        let cause = std::error::Error::source(&copy).unwrap().to_string();
        assert_eq!(cause, "connection refused");
    }
}

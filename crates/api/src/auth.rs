//! Credentials and the tokens they produce.
//!
//! Two kinds of credentials are supported: a developer API token, sent as is,
//! and OAuth 2.0 client credentials (an external application registered in
//! UiPath), exchanged at the identity server for short-lived access tokens.
//! Both are [`TokenProvider`]s; a custom provider can be plugged in with
//! [`ClientBuilder::token_provider`](crate::ClientBuilder::token_provider).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::Instrument;

use crate::error::{BoxError, snippet};
use crate::secret::Secret;

/// A boxed, `Send` future, as returned by [`TokenProvider`] methods.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The scopes requested by default in the client-credentials exchange.
pub const DEFAULT_SCOPE: &str = "PM.User PM.User.Read Ixp.ApiAccess";

/// How long before its expiry a cached access token is replaced by default.
pub const DEFAULT_REFRESH_BUFFER: Duration = Duration::from_secs(60);

/// A bearer token, with its expiry when known.
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

    fn is_fresh(&self, buffer: Duration) -> bool {
        match self.expires_at {
            None => true,
            Some(at) => Instant::now() + buffer < at,
        }
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

    /// How long before expiry a cached token is replaced (default 60 s).
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
/// Concurrent callers share one exchange: the cache is behind an async mutex
/// held during the exchange, so callers that arrive meanwhile wait and then
/// reuse the new token.
pub(crate) struct ClientCredentialsProvider {
    credentials: ClientCredentials,
    token_url: String,
    scope: String,
    http: reqwest::Client,
    cache: tokio::sync::Mutex<Option<AccessToken>>,
    exchanges: AtomicU64,
}

impl fmt::Debug for ClientCredentialsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentialsProvider")
            .field("client_id", &self.credentials.client_id)
            .field("token_url", &self.token_url)
            .field("scope", &self.scope)
            .field("exchanges", &self.exchanges.load(Ordering::Relaxed))
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
    ) -> Arc<Self> {
        let scope = credentials
            .scope
            .clone()
            .unwrap_or_else(|| DEFAULT_SCOPE.to_owned());
        Arc::new(Self {
            credentials,
            token_url,
            scope,
            http,
            cache: tokio::sync::Mutex::new(None),
            exchanges: AtomicU64::new(0),
        })
    }

    async fn exchange(&self) -> Result<AccessToken, AuthError> {
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
            let transport = |source: reqwest::Error| AuthError::Transport {
                token_url: self.token_url.clone(),
                source: Box::new(source.without_url()),
            };
            let response = self
                .http
                .post(&self.token_url)
                .header(reqwest::header::ACCEPT, "application/json")
                .form(&form)
                .send()
                .await
                .map_err(transport)?;
            let status = response.status().as_u16();
            tracing::Span::current().record("status", status);
            let body = response.bytes().await.map_err(transport)?;
            parse_token_response(status, &body, Instant::now())
        }
        .instrument(span)
        .await
    }
}

/// Turns the identity server's answer into a token or a typed error. A 2xx
/// body is never echoed (it may hold a token); an error body may be.
fn parse_token_response(status: u16, body: &[u8], now: Instant) -> Result<AccessToken, AuthError> {
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
        let expires_at = parsed
            .expires_in
            .and_then(|s| now.checked_add(Duration::from_secs(s)));
        return Ok(AccessToken::new(parsed.access_token, expires_at));
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
            let mut cache = self.cache.lock().await;
            if let Some(token) = cache
                .as_ref()
                .filter(|t| t.is_fresh(self.credentials.refresh_buffer))
            {
                return Ok(token.clone());
            }
            let token = self.exchange().await?;
            *cache = Some(token.clone());
            Ok(token)
        })
    }

    fn refresh<'a>(
        &'a self,
        rejected: &'a Secret,
    ) -> BoxFuture<'a, Result<Option<AccessToken>, AuthError>> {
        Box::pin(async move {
            let mut cache = self.cache.lock().await;
            // Another request may already have replaced the rejected token.
            if let Some(token) = cache
                .as_ref()
                .filter(|t| t.secret() != rejected && t.is_fresh(self.credentials.refresh_buffer))
            {
                return Ok(Some(token.clone()));
            }
            *cache = None;
            let token = self.exchange().await?;
            *cache = Some(token.clone());
            Ok(Some(token))
        })
    }
}

/// Why no usable token could be obtained. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The identity server refused the exchange (bad client id or secret,
    /// scope not granted to the application...).
    #[error("authentication failed: the identity server rejected the client credentials with HTTP {status}: {error}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
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
    /// A custom [`TokenProvider`] failed.
    #[error("authentication failed: the token provider failed")]
    Provider(#[source] BoxError),
}

impl AuthError {
    /// Whether trying again later could succeed (the identity server was
    /// unreachable or answered 429/5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Rejected { status, .. } | Self::InvalidResponse { status, .. } => {
                *status == 429 || *status >= 500
            }
            Self::Provider(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_variants() {
        let now = Instant::now();
        let token = parse_token_response(
            200,
            br#"{"access_token":"abc","expires_in":3600,"token_type":"Bearer"}"#,
            now,
        )
        .unwrap();
        assert_eq!(token.secret().expose(), "abc");
        assert_eq!(token.expires_at(), Some(now + Duration::from_secs(3600)));

        let err = parse_token_response(200, br#"{"access_token":"leaky","expires_in":"x"}"#, now)
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
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "authentication failed: the identity server rejected the client credentials with HTTP 400: invalid_scope (scope X not allowed)"
        );

        let err = parse_token_response(502, b"<html>Bad gateway</html>", now).unwrap_err();
        assert_eq!(
            err.to_string(),
            "authentication failed: the identity server answered HTTP 502: unexpected body: <html>Bad gateway</html>"
        );
        assert!(err.is_retryable());
    }

    #[test]
    fn freshness_uses_the_buffer() {
        let soon = AccessToken::new("t", Some(Instant::now() + Duration::from_secs(30)));
        assert!(soon.is_fresh(Duration::from_secs(10)));
        assert!(!soon.is_fresh(Duration::from_secs(60)));
        assert!(AccessToken::new("t", None).is_fresh(Duration::from_secs(60)));
    }
}

//! [`ClientBuilder`]: the settings of a [`Client`], resolved at `build()`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{ClientCredentials, ClientCredentialsProvider, StaticToken, TokenProvider};
use crate::config::{ConfigError, Credentials, Sources};
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::retry::RetryPolicy;
use crate::secret::Secret;
use crate::transport::Transport;

use super::{Client, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};

/// Configures a [`Client`].
///
/// # Where settings come from
///
/// For each setting the first source that has it wins:
///
/// 1. **code**: values set on this builder;
/// 2. **environment**: [`REINFER_ENDPOINT`](crate::config::ENDPOINT_ENV),
///    [`REINFER_TOKEN`](crate::config::TOKEN_ENV), or
///    [`REINFER_CLIENT_ID`](crate::config::CLIENT_ID_ENV) with
///    [`REINFER_CLIENT_SECRET`](crate::config::CLIENT_SECRET_ENV);
/// 3. **profile**: the selected profile of the [configuration file](crate::config).
///
/// The profile is selected by [`profile`](Self::profile), else
/// `REINFER_PROFILE`, else the file's `default_profile`; the file is the one
/// given to [`config_path`](Self::config_path), else `CM_API_CONFIG`, else
/// [`default_config_path`](crate::config::default_config_path). Endpoint and credentials are resolved separately
/// (a profile can supply the endpoint while `REINFER_TOKEN` supplies the
/// token). A profile's scope, token URL and default project apply whenever
/// the profile is selected, unless set in code.
///
/// These combinations are errors, reported before anything is sent and
/// naming both sources:
///
/// * `REINFER_ENDPOINT` is set, a profile is selected *explicitly* (in code
///   or by `REINFER_PROFILE`) and its endpoint differs: the environment would
///   silently redirect a profile chosen on purpose. An endpoint set in code
///   overrides both without error; a profile that is only the file's
///   `default_profile` is overridden silently.
/// * One source sets two kinds of credentials (e.g. `REINFER_TOKEN` and
///   `REINFER_CLIENT_ID`, or both `token` and `client_credentials` in code).
/// * A selected profile that does not exist, or an environment variable a
///   profile names that is not set.
///
/// ```
/// use std::time::Duration;
/// use cm_api::{Client, Endpoint, RetryPolicy};
///
/// let client = Client::builder()
///     .endpoint(Endpoint::uipath_cloud("acme", "DefaultTenant")?)
///     .token("my-developer-token")
///     .request_timeout(Duration::from_secs(300))
///     .retry_policy(RetryPolicy::default().max_attempts(6))
///     .build()?;
/// assert_eq!(client.endpoint().tenant(), Some("DefaultTenant"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct ClientBuilder {
    /// Where the endpoint, credentials and default project come from, as
    /// far as code says; the environment and profiles are read at `build()`.
    pub(crate) sources: Sources,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) user_agent: Option<String>,
    pub(crate) user_agent_suffix: Option<String>,
    pub(crate) root_certificates: Vec<Vec<u8>>,
    pub(crate) proxy: Option<String>,
    pub(crate) no_proxy: Option<String>,
    pub(crate) default_headers: Vec<(String, String)>,
    pub(crate) http_client: Option<reqwest::Client>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoint", &self.sources.endpoint)
            .field("token", &self.sources.token)
            .field("client_credentials", &self.sources.client_credentials)
            .field("token_provider", &self.sources.token_provider)
            .field("profile", &self.sources.profile)
            .field("config_path", &self.sources.config_path)
            .field("default_project", &self.sources.default_project)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("user_agent", &self.user_agent)
            .field("user_agent_suffix", &self.user_agent_suffix)
            .field("root_certificates", &self.root_certificates.len())
            .field("proxy", &self.proxy.as_deref().map(redacted_proxy))
            .field("no_proxy", &self.no_proxy)
            .field(
                "default_headers",
                &self
                    .default_headers
                    .iter()
                    .map(|(n, _)| n)
                    .collect::<Vec<_>>(),
            )
            .field("http_client", &self.http_client.is_some())
            .finish_non_exhaustive()
    }
}

/// A proxy URL for `Debug`: scheme, host and port, with `***@` for a user
/// name or password (`http://***@host:3128`). The path, query and fragment
/// are left out too (a proxy has no use for them, and a mistyped URL may
/// have its credentials there). A string without a scheme is read as
/// `reqwest` reads it (`http://` prepended); one that still does not parse
/// is not printed at all, since it may hold credentials.
fn redacted_proxy(proxy: &str) -> String {
    let parsed = url::Url::parse(proxy)
        .ok()
        .filter(url::Url::has_host)
        .or_else(|| url::Url::parse(&format!("http://{proxy}")).ok());
    let Some((url, host)) = parsed.as_ref().and_then(|url| Some((url, url.host_str()?))) else {
        return "<not a URL: hidden>".to_owned();
    };
    let userinfo = if url.username().is_empty() && url.password().is_none() {
        ""
    } else {
        "***@"
    };
    let port = url
        .port()
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    format!("{}://{userinfo}{host}{port}", url.scheme())
}

impl ClientBuilder {
    /// The endpoint to call.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.sources.endpoint = Some(endpoint);
        self
    }

    /// A developer API token, sent as `Authorization: Bearer <token>`.
    pub fn token(mut self, token: impl Into<Secret>) -> Self {
        self.sources.token = Some(token.into());
        self
    }

    /// OAuth 2.0 client credentials of an external application.
    pub fn client_credentials(mut self, credentials: ClientCredentials) -> Self {
        self.sources.client_credentials = Some(credentials);
        self
    }

    /// A custom source of tokens.
    pub fn token_provider(mut self, provider: impl TokenProvider) -> Self {
        self.sources.token_provider = Some(Arc::new(provider));
        self
    }

    /// The profile to use from the configuration file.
    pub fn profile(mut self, name: impl Into<String>) -> Self {
        self.sources.profile = Some(name.into());
        self
    }

    /// The configuration file, instead of `CM_API_CONFIG` or the default path.
    pub fn config_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.sources.config_path = Some(path.into());
        self
    }

    /// The project [`Client::default_project`] returns.
    pub fn default_project(mut self, project: impl Into<String>) -> Self {
        self.sources.default_project = Some(project.into());
        self
    }

    /// Time allowed to establish a connection (default 30 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The attempt timeout (default 120 s): time allowed for one attempt of
    /// a JSON call, from connecting to the end of the answer; the retry
    /// policy's [`deadline`](RetryPolicy::deadline) bounds the whole call.
    /// A file transfer (a [`Download`](crate::Download), an upload) is
    /// bounded by progress instead: it fails when nothing moves for this
    /// long, however long it takes as a whole. [`CallOptions`](crate::CallOptions)
    /// shortens or lengthens it for one call; `Duration::MAX` means no
    /// limit. (The timeout rules, once: "Timeouts" in the crate's `DESIGN.md`.)
    ///
    /// ```
    /// use std::time::Duration;
    /// use cm_api::{Client, RetryPolicy};
    ///
    /// // Attempts of up to 30 s, calls of up to 2 minutes; a large download
    /// // may take longer as long as data keeps arriving every 30 s.
    /// let client = Client::builder()
    ///     .endpoint("https://acme.reinfer.io".parse()?)
    ///     .token("my-developer-token")
    ///     .request_timeout(Duration::from_secs(30))
    ///     .retry_policy(RetryPolicy::default().deadline(Duration::from_secs(120)))
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Retry attempts, backoff and the overall deadline of each call.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The `User-Agent` header (default `cm-api/<version>`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Appended to the `User-Agent` header after a space, e.g. `my-app/2.1`
    /// for `cm-api/0.1.0 my-app/2.1`.
    pub fn user_agent_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.user_agent_suffix = Some(suffix.into());
        self
    }

    /// Trusts the certificates of a PEM bundle (one or more `CERTIFICATE`
    /// blocks) as roots, in addition to the system's: for an installation
    /// behind a private certificate authority (Automation Suite
    /// on-premise). May be called more than once; a bundle that does not
    /// parse fails [`build`](Self::build).
    ///
    /// ```no_run
    /// let client = cm_api::Client::builder()
    ///     .endpoint("https://cm.internal.example".parse()?)
    ///     .token("my-developer-token")
    ///     .add_root_certificate_pem(std::fs::read("/etc/ssl/private-ca.pem")?)
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Sends every request, HTTP and HTTPS, through the proxy at `url`
    /// (`http://`, `https://`; credentials as `http://user:pass@host:port`).
    ///
    /// Without it, the standard `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and
    /// `NO_PROXY` environment variables (and their lower-case forms) apply.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(url.into());
        self
    }

    /// Hosts that bypass the [`proxy`](Self::proxy), in `NO_PROXY` syntax
    /// (comma-separated hosts, domains, IP addresses and CIDR ranges). By
    /// default the `NO_PROXY` environment variable's list applies.
    pub fn no_proxy(mut self, hosts: impl Into<String>) -> Self {
        self.no_proxy = Some(hosts.into());
        self
    }

    /// A header sent with every request (including the OAuth token
    /// exchange), e.g. a tenant-routing header of a gateway. May be called
    /// more than once; an invalid name or value fails [`build`](Self::build).
    /// Headers an operation sets itself (`Authorization`, `Content-Type`,
    /// `Accept`) take precedence.
    pub fn default_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.default_headers.push((name.into(), value.into()));
        self
    }

    /// **Escape hatch**: sends every request through `client`, a
    /// `reqwest::Client` you configured yourself (TLS, proxy, DNS, ...).
    ///
    /// The client's authentication, retries, attempt timeouts and deadline
    /// still apply and errors are still [`Error`]; the connection settings
    /// of this builder ([`connect_timeout`](Self::connect_timeout), the
    /// progress bound of [`request_timeout`](Self::request_timeout),
    /// [`user_agent`](Self::user_agent), [`user_agent_suffix`](Self::user_agent_suffix),
    /// [`add_root_certificate_pem`](Self::add_root_certificate_pem),
    /// [`proxy`](Self::proxy), [`no_proxy`](Self::no_proxy) and
    /// [`default_header`](Self::default_header)) are then yours to set on
    /// `client`: combining them with this is a configuration error. This is
    /// the only place `cm-api`'s interface names a `reqwest` type, and it
    /// follows `cm-api`'s `reqwest` version.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Reads environment variables through `lookup` instead of the process
    /// environment: for tests, or to embed the client in a larger configuration.
    ///
    /// ```
    /// use std::collections::HashMap;
    ///
    /// let env = HashMap::from([
    ///     ("REINFER_ENDPOINT", "https://acme.reinfer.io"),
    ///     ("REINFER_TOKEN", "t0ken"),
    /// ]);
    /// let client = cm_api::Client::builder()
    ///     .env_lookup(move |name| env.get(name).map(|v| v.to_string()))
    ///     .build()?;
    /// assert_eq!(client.endpoint().base_url(), "https://acme.reinfer.io");
    /// # Ok::<(), cm_api::Error>(())
    /// ```
    pub fn env_lookup(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.sources.env = Some(Arc::new(lookup));
        self
    }

    /// Resolves every setting and builds the client. Fails with
    /// [`Error::Config`] without sending anything.
    pub fn build(self) -> Result<Client, Error> {
        let resolved = self.sources.resolve()?;
        let connect_timeout = self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let request_timeout = self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let http = self.http(connect_timeout)?;
        let provider: Arc<dyn TokenProvider> = match resolved.credentials {
            Credentials::Token(token) => Arc::new(StaticToken::new(token)),
            Credentials::Provider(provider) => provider,
            Credentials::Client(credentials) => {
                let token_url = credentials
                    .token_url
                    .clone()
                    .or_else(|| resolved.endpoint.identity_token_url())
                    .ok_or_else(|| ConfigError::MissingTokenUrl {
                        endpoint: resolved.endpoint.to_string(),
                    })?;
                crate::endpoint::check_url(&token_url).map_err(|source| ConfigError::Endpoint {
                    origin: "the client-credentials token URL".to_owned(),
                    source,
                })?;
                ClientCredentialsProvider::new(
                    credentials,
                    token_url,
                    http.clone(),
                    self.retry.unwrap_or_default(),
                    request_timeout,
                )
            }
        };
        let transport = Transport {
            provider,
            retry: self.retry.unwrap_or_default(),
            request_timeout,
        };
        let generated = cm_api_gen::Client::new_with_client(
            resolved.endpoint.base_url(),
            http,
            cm_api_gen::hooks::Hooks::new(transport),
        );
        Ok(Client {
            generated,
            endpoint: resolved.endpoint,
            default_project: resolved.default_project,
        })
    }

    /// The `reqwest::Client` requests go through: the escape hatch's, or
    /// one built from this builder's connection settings.
    fn http(&self, connect_timeout: Duration) -> Result<reqwest::Client, ConfigError> {
        let invalid = |what: &str, reason: String| ConfigError::Invalid {
            what: what.to_owned(),
            reason,
        };
        if let Some(client) = &self.http_client {
            let set = [
                (
                    "ClientBuilder::connect_timeout",
                    self.connect_timeout.is_some(),
                ),
                ("ClientBuilder::user_agent", self.user_agent.is_some()),
                (
                    "ClientBuilder::user_agent_suffix",
                    self.user_agent_suffix.is_some(),
                ),
                (
                    "ClientBuilder::add_root_certificate_pem",
                    !self.root_certificates.is_empty(),
                ),
                ("ClientBuilder::proxy", self.proxy.is_some()),
                ("ClientBuilder::no_proxy", self.no_proxy.is_some()),
                (
                    "ClientBuilder::default_header",
                    !self.default_headers.is_empty(),
                ),
            ];
            if let Some((setting, _)) = set.iter().find(|(_, set)| *set) {
                return Err(ConfigError::Conflict {
                    setting: "HTTP client",
                    first: "ClientBuilder::http_client".to_owned(),
                    second: (*setting).to_owned(),
                });
            }
            return Ok(client.clone());
        }
        let mut user_agent = self
            .user_agent
            .clone()
            .unwrap_or_else(|| format!("cm-api/{}", env!("CARGO_PKG_VERSION")));
        if let Some(suffix) = &self.user_agent_suffix {
            user_agent = format!("{user_agent} {suffix}");
        }
        let user_agent = http::HeaderValue::from_str(&user_agent)
            .map_err(|e| invalid("ClientBuilder::user_agent", e.to_string()))?;
        let mut headers = http::HeaderMap::new();
        for (name, value) in &self.default_headers {
            let what = format!("ClientBuilder::default_header({name:?})");
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| invalid(&what, e.to_string()))?;
            let mut value =
                http::HeaderValue::from_str(value).map_err(|e| invalid(&what, e.to_string()))?;
            // A gateway key or tenant token: kept out of `reqwest`'s `Debug`
            // (and HPACK-indexing), like the bearer header.
            value.set_sensitive(true);
            headers.append(name, value);
        }
        let cap = crate::retry::TIMER_CAP;
        // No client-wide total or read timeout: either would cap what a
        // call's own attempt timeout may lengthen, and reqwest's read
        // timeout also cuts an upload that is still sending. The transport
        // bounds every attempt itself ("Timeouts" in DESIGN.md).
        let mut builder = reqwest::Client::builder()
            .connect_timeout(connect_timeout.min(cap))
            .user_agent(user_agent)
            .default_headers(headers);
        #[cfg(feature = "__tls")]
        {
            let mut roots = Vec::new();
            for pem in &self.root_certificates {
                let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                    invalid("ClientBuilder::add_root_certificate_pem", e.to_string())
                })?;
                if certificates.is_empty() {
                    return Err(invalid(
                        "ClientBuilder::add_root_certificate_pem",
                        "the PEM holds no certificate".to_owned(),
                    ));
                }
                roots.extend(certificates);
            }
            if !roots.is_empty() {
                builder = builder.tls_certs_merge(roots);
            }
        }
        #[cfg(not(feature = "__tls"))]
        if !self.root_certificates.is_empty() {
            return Err(invalid(
                "ClientBuilder::add_root_certificate_pem",
                "no TLS backend: enable cm-api's `rustls`, `rustls-ring` or `native-tls` feature"
                    .to_owned(),
            ));
        }
        // reqwest's `rustls-no-provider` uses the process default; ring
        // becomes it unless the application installed one already.
        #[cfg(feature = "rustls-ring")]
        let _ = rustls::crypto::ring::default_provider().install_default();
        if let Some(url) = &self.proxy {
            let no_proxy = match &self.no_proxy {
                Some(hosts) => reqwest::NoProxy::from_string(hosts),
                None => reqwest::NoProxy::from_env(),
            };
            let proxy = reqwest::Proxy::all(url)
                .map_err(|e| invalid("ClientBuilder::proxy", e.to_string()))?
                .no_proxy(no_proxy);
            builder = builder.proxy(proxy);
        }
        builder.build().map_err(|e| {
            invalid(
                "HTTP client",
                format!("{e}: {:?}", std::error::Error::source(&e)),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use progenitor_client::ClientInfo;

    #[test]
    fn default_header_values_are_marked_sensitive_in_the_http_client() {
        let client = super::Client::builder()
            .env_lookup(|_| None)
            .config_path("/nonexistent/cm-api/config.toml")
            .endpoint("https://acme.reinfer.io".parse().unwrap())
            .token("t")
            .default_header("x-gateway-key", "gw-secret-value")
            .build()
            .unwrap();
        // `reqwest::Client`'s `Debug` prints its default headers; a
        // sensitive value prints as `Sensitive`.
        let debug = format!("{:?}", client.generated.client());
        assert!(debug.contains("x-gateway-key"), "{debug}");
        assert!(!debug.contains("gw-secret-value"), "{debug}");
    }
}

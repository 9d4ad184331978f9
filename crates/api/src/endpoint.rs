//! Where the API lives: the one place for base-URL rules.
//!
//! The specification's paths all start with `/api/...` (some future ones with
//! `/auth/...`), so the base URL handed to the generated client is the part
//! *before* `/api`. Every constructor normalises trailing slashes and a
//! trailing `/api`, and rejects bad input before any request is sent.

use std::fmt;
use std::str::FromStr;

use url::{Host, Url};

/// The UiPath Automation Cloud host.
const UIPATH_CLOUD: &str = "https://cloud.uipath.com";
/// The path segment under which UiPath hosts Communications Mining.
const UIPATH_SERVICE_SEGMENT: &str = "reinfer_";
/// The identity server's token path on UiPath hosts.
const UIPATH_IDENTITY_TOKEN_PATH: &str = "/identity_/connect/token";
/// Longest user input echoed back in an error message.
const MAX_ECHO: usize = 120;

/// A validated, normalised API endpoint.
///
/// Three forms are recognised:
///
/// | form | base URL |
/// | --- | --- |
/// | UiPath cloud ([`Endpoint::uipath_cloud`]) | `https://cloud.uipath.com/{organisation}/{tenant}/reinfer_` |
/// | another UiPath host, e.g. Automation Suite ([`Endpoint::uipath`]) | `https://{host}/{organisation}/{tenant}/reinfer_` |
/// | a tenant onboarded directly ([`Endpoint::reinfer`]) | `https://{domain}.reinfer.io` |
///
/// Anything else is a custom base URL ([`Endpoint::parse`], which also
/// recognises the forms above). Plain `http` is accepted only for loopback
/// hosts, so tests can use a local mock server.
///
/// ```
/// use cm_api::Endpoint;
///
/// let cloud = Endpoint::uipath_cloud("acme", "DefaultTenant")?;
/// assert_eq!(cloud.base_url(), "https://cloud.uipath.com/acme/DefaultTenant/reinfer_");
///
/// // Trailing slashes and a trailing `/api` are dropped.
/// let same = Endpoint::parse("https://cloud.uipath.com/acme/DefaultTenant/reinfer_/api/")?;
/// assert_eq!(same, cloud);
///
/// assert!(Endpoint::uipath_cloud("", "DefaultTenant").is_err());
/// assert!(Endpoint::parse("http://example.com").is_err());
/// # Ok::<(), cm_api::EndpointError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    base: String,
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    UiPath {
        organisation: String,
        tenant: String,
    },
    Reinfer,
    Custom,
}

impl Endpoint {
    /// The endpoint of a tenant on UiPath Automation Cloud (`cloud.uipath.com`).
    pub fn uipath_cloud(organisation: &str, tenant: &str) -> Result<Self, EndpointError> {
        Self::uipath(UIPATH_CLOUD, organisation, tenant)
    }

    /// The endpoint of a tenant on another UiPath host, such as another
    /// cloud region or an Automation Suite installation; `host_url` is the
    /// scheme and host, e.g. `https://automation-suite.example.com`.
    pub fn uipath(host_url: &str, organisation: &str, tenant: &str) -> Result<Self, EndpointError> {
        validate_name("organisation", organisation)?;
        validate_name("tenant", tenant)?;
        let url = parse_url(host_url)?;
        if url.path() != "/" {
            return Err(EndpointError::UnexpectedPath {
                input: echo(host_url),
            });
        }
        let base = format!(
            "{}/{organisation}/{tenant}/{UIPATH_SERVICE_SEGMENT}",
            origin(&url)
        );
        Ok(Self {
            base,
            kind: Kind::UiPath {
                organisation: organisation.to_owned(),
                tenant: tenant.to_owned(),
            },
        })
    }

    /// The endpoint of a tenant onboarded directly on Communications Mining,
    /// `https://{domain}.reinfer.io`.
    pub fn reinfer(domain: &str) -> Result<Self, EndpointError> {
        validate_domain(domain)?;
        Ok(Self {
            base: format!("https://{}.reinfer.io", domain.to_ascii_lowercase()),
            kind: Kind::Reinfer,
        })
    }

    /// Parses any base URL: one of the recognised forms or a custom one.
    ///
    /// Trailing slashes and a trailing `/api` are removed; a query string,
    /// fragment or embedded user name/password is rejected.
    pub fn parse(input: &str) -> Result<Self, EndpointError> {
        let mut url = parse_url(input)?;
        let mut path = url.path().trim_end_matches('/');
        if let Some(stripped) = path.strip_suffix("/api") {
            path = stripped.trim_end_matches('/');
        }
        let path = path.to_owned();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let kind = match segments.as_slice() {
            [organisation, tenant, service] if *service == UIPATH_SERVICE_SEGMENT => Kind::UiPath {
                organisation: (*organisation).to_owned(),
                tenant: (*tenant).to_owned(),
            },
            [] if url
                .host_str()
                .is_some_and(|h| h.ends_with(".reinfer.io") && url.scheme() == "https") =>
            {
                Kind::Reinfer
            }
            _ => Kind::Custom,
        };
        url.set_path(&path);
        let base = if path.is_empty() {
            origin(&url)
        } else {
            format!("{}{}", origin(&url), url.path())
        };
        Ok(Self { base, kind })
    }

    /// The base URL given to the generated client: everything before `/api`,
    /// without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The UiPath organisation, for UiPath-hosted endpoints.
    pub fn organisation(&self) -> Option<&str> {
        match &self.kind {
            Kind::UiPath { organisation, .. } => Some(organisation),
            _ => None,
        }
    }

    /// The UiPath tenant, for UiPath-hosted endpoints.
    pub fn tenant(&self) -> Option<&str> {
        match &self.kind {
            Kind::UiPath { tenant, .. } => Some(tenant),
            _ => None,
        }
    }

    /// The OAuth 2.0 token endpoint of the identity server in front of this
    /// endpoint, used for client credentials: `{scheme}://{host}/identity_/connect/token`
    /// on UiPath hosts; `None` elsewhere (set it explicitly then).
    ///
    /// ```
    /// let endpoint = cm_api::Endpoint::uipath_cloud("acme", "DefaultTenant")?;
    /// assert_eq!(
    ///     endpoint.identity_token_url().as_deref(),
    ///     Some("https://cloud.uipath.com/identity_/connect/token"),
    /// );
    /// # Ok::<(), cm_api::EndpointError>(())
    /// ```
    pub fn identity_token_url(&self) -> Option<String> {
        match self.kind {
            Kind::UiPath { .. } => {
                let url = Url::parse(&self.base).ok()?;
                Some(format!("{}{UIPATH_IDENTITY_TOKEN_PATH}", origin(&url)))
            }
            Kind::Reinfer | Kind::Custom => None,
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Endpoint").field(&self.base).finish()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Why an endpoint was rejected. Nothing is sent when this happens.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The input was empty.
    #[error("the endpoint URL is empty")]
    Empty,
    /// The input is not an absolute URL.
    #[error("`{input}` is not an absolute URL: {reason}")]
    NotAUrl {
        /// The input, shortened.
        input: String,
        /// What the URL parser said.
        reason: String,
    },
    /// A scheme other than `https` (or `http` on loopback).
    #[error("unsupported URL scheme `{scheme}`: use https")]
    UnsupportedScheme {
        /// The rejected scheme.
        scheme: String,
    },
    /// Plain `http` to a host that is not loopback would expose the token.
    #[error("plain http is only allowed to loopback hosts, not `{host}`: use https")]
    InsecureHttp {
        /// The non-loopback host.
        host: String,
    },
    /// A user name or password embedded in the URL.
    #[error("the endpoint URL must not contain a user name or password")]
    EmbeddedCredentials,
    /// A query string or fragment, which the API never uses.
    #[error("the endpoint URL must not contain a query string or fragment")]
    QueryOrFragment,
    /// A UiPath host URL carrying a path; the organisation and tenant are given separately.
    #[error("`{input}` must be a scheme and host only, without a path")]
    UnexpectedPath {
        /// The input, shortened.
        input: String,
    },
    /// An organisation, tenant or domain name that cannot be used in a URL.
    #[error("invalid {field} `{value}`: {reason}")]
    InvalidName {
        /// Which name: `organisation`, `tenant` or `domain`.
        field: &'static str,
        /// The rejected value, shortened.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
}

fn echo(input: &str) -> String {
    if input.chars().count() <= MAX_ECHO {
        input.to_owned()
    } else {
        let mut out: String = input.chars().take(MAX_ECHO).collect();
        out.push('…');
        out
    }
}

fn parse_url(input: &str) -> Result<Url, EndpointError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(EndpointError::Empty);
    }
    let url = Url::parse(input).map_err(|e| EndpointError::NotAUrl {
        input: echo(input),
        reason: e.to_string(),
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointError::EmbeddedCredentials);
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(EndpointError::QueryOrFragment);
    }
    let host = match url.host() {
        Some(host) => host,
        None => {
            return Err(EndpointError::NotAUrl {
                input: echo(input),
                reason: "no host".to_owned(),
            });
        }
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&host) => Ok(url),
        "http" => Err(EndpointError::InsecureHttp {
            host: host.to_string(),
        }),
        other => Err(EndpointError::UnsupportedScheme {
            scheme: other.to_owned(),
        }),
    }
}

/// Checks another URL (e.g. a token endpoint) by the same rules: absolute,
/// https (or http to loopback), no credentials, query or fragment.
pub(crate) fn check_url(input: &str) -> Result<(), EndpointError> {
    parse_url(input).map(drop)
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(domain) => domain.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// `scheme://host[:port]`, without a trailing slash.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn validate_name(field: &'static str, value: &str) -> Result<(), EndpointError> {
    let invalid = |reason| EndpointError::InvalidName {
        field,
        value: echo(value),
        reason,
    };
    if value.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if value.contains(['/', '\\']) {
        return Err(invalid("must not contain a slash"));
    }
    if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '%'))
    {
        return Err(invalid(
            "must not contain whitespace, control characters, `?`, `#` or `%`",
        ));
    }
    if value == "." || value == ".." {
        return Err(invalid("must not be `.` or `..`"));
    }
    Ok(())
}

fn validate_domain(value: &str) -> Result<(), EndpointError> {
    let invalid = |reason| EndpointError::InvalidName {
        field: "domain",
        value: echo(value),
        reason,
    };
    if value.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if value.len() > 63 {
        return Err(invalid("must be at most 63 characters"));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(invalid(
            "must be a single DNS label (letters, digits, `-`), e.g. `acme` for acme.reinfer.io",
        ));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(invalid("must not start or end with `-`"));
    }
    Ok(())
}

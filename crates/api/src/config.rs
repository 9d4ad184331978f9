//! Named profiles in a configuration file, and the environment variables.
//!
//! The file is TOML, by default at `<config dir>/cm-api/config.toml`
//! (`$XDG_CONFIG_HOME/cm-api/config.toml` on Linux, see [`default_config_path`]);
//! [`CONFIG_ENV`] or [`ClientBuilder::config_path`](crate::ClientBuilder::config_path)
//! points elsewhere:
//!
//! ```toml
//! default_profile = "dev"
//!
//! [profiles.dev]
//! endpoint = "https://cloud.uipath.com/acme/DefaultTenant/reinfer_"
//! token_env = "CM_DEV_TOKEN"          # the developer API token is read from this variable
//! default_project = "support"
//!
//! [profiles.prod]
//! endpoint = "https://cloud.uipath.com/acme/Production/reinfer_"
//! client_id = "0e8f...-app-id"        # or client_id_env = "CM_PROD_CLIENT_ID"
//! client_secret_env = "CM_PROD_CLIENT_SECRET"
//! scope = "Ixp.ApiAccess"             # optional, default cm_api::auth::DEFAULT_SCOPE
//! token_url = "https://cloud.uipath.com/identity_/connect/token"  # optional
//! ```
//!
//! Profiles name the environment variables that hold secrets rather than the
//! secrets themselves: a `token` or `client_secret` key is rejected as an
//! unknown field, so secrets do not end up in a plain file.
//!
//! How these sources combine is documented once, on
//! [`ClientBuilder`](crate::ClientBuilder#where-settings-come-from).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::endpoint::EndpointError;

/// The developer API token.
pub const TOKEN_ENV: &str = "REINFER_TOKEN";
/// The endpoint (any form [`Endpoint::parse`](crate::Endpoint::parse) accepts).
pub const ENDPOINT_ENV: &str = "REINFER_ENDPOINT";
/// The profile to use.
pub const PROFILE_ENV: &str = "REINFER_PROFILE";
/// The client id of an external application (with [`CLIENT_SECRET_ENV`]).
pub const CLIENT_ID_ENV: &str = "REINFER_CLIENT_ID";
/// The client secret of an external application (with [`CLIENT_ID_ENV`]).
pub const CLIENT_SECRET_ENV: &str = "REINFER_CLIENT_SECRET";
/// The path of the configuration file.
pub const CONFIG_ENV: &str = "CM_API_CONFIG";

/// The default configuration file: `<config dir>/cm-api/config.toml`, where
/// the config dir is `$XDG_CONFIG_HOME` or `~/.config` on Linux,
/// `~/Library/Application Support` on macOS and `%APPDATA%` on Windows.
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("cm-api").join("config.toml"))
}

/// The configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    pub(crate) default_profile: Option<String>,
    #[serde(default)]
    pub(crate) profiles: BTreeMap<String, Profile>,
}

/// One named profile.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    pub(crate) endpoint: Option<String>,
    pub(crate) token_env: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) client_id_env: Option<String>,
    pub(crate) client_secret_env: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) token_url: Option<String>,
    pub(crate) default_project: Option<String>,
}

impl ConfigFile {
    pub(crate) fn load(path: &Path) -> Result<Option<Self>, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ConfigError::ConfigFile {
                    path: path.to_owned(),
                    reason: e.to_string(),
                });
            }
        };
        toml::from_str(&text)
            .map(Some)
            .map_err(|e| ConfigError::ConfigFile {
                path: path.to_owned(),
                reason: e.message().to_owned(),
            })
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
        "invalid configuration: no endpoint; call ClientBuilder::endpoint, set {ENDPOINT_ENV} or select a profile with an `endpoint`"
    )]
    MissingEndpoint,
    /// No source set credentials.
    #[error(
        "invalid configuration: no credentials; call ClientBuilder::token or ::client_credentials, set {TOKEN_ENV} (or {CLIENT_ID_ENV} and {CLIENT_SECRET_ENV}) or select a profile that names them"
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

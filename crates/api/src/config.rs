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
use std::sync::Arc;

use serde::Deserialize;

use crate::auth::{ClientCredentials, TokenProvider};
use crate::endpoint::Endpoint;
use crate::secret::Secret;

pub use crate::error::ConfigError;

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
///
/// Only with the `config-file` feature (on by default); without it no file
/// is read unless one is named, and naming one is an error.
#[cfg(feature = "config-file")]
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("cm-api").join("config.toml"))
}

/// The configuration file.
/// The configuration file a client reads when its builder names none:
/// [`CONFIG_ENV`] when set and not blank (trimmed), else
/// [`default_config_path`] (with `config-file`). For tools that edit the
/// file the client will read, such as `cm config`.
///
/// ```
/// if let Some(path) = cm_api::config::config_path() {
///     println!("profiles are read from {}", path.display());
/// }
/// ```
pub fn config_path() -> Option<PathBuf> {
    Sources::default().config_file()
}

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
        Self::parse(&text)
            .map(Some)
            .map_err(|reason| ConfigError::ConfigFile {
                path: path.to_owned(),
                reason,
            })
    }

    #[cfg(feature = "config-file")]
    fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }

    /// Without the `config-file` feature, a named file is refused rather
    /// than ignored: its profiles would silently not apply.
    #[cfg(not(feature = "config-file"))]
    fn parse(_text: &str) -> Result<Self, String> {
        Err("reading a configuration file needs cm-api's `config-file` feature".to_owned())
    }
}

// ---------------------------------------------------------------------------
// Precedence resolution for `ClientBuilder::build`: code, then environment,
// then the selected profile (the rules are documented on `ClientBuilder`).

/// A lookup of environment variables ([`ClientBuilder::env_lookup`](crate::ClientBuilder::env_lookup)).
pub(crate) type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The settings code gave the builder, and how to read the environment:
/// what [`Sources::resolve`] turns into [`Settings`].
#[derive(Clone, Default)]
pub(crate) struct Sources {
    pub(crate) endpoint: Option<Endpoint>,
    pub(crate) token: Option<Secret>,
    pub(crate) client_credentials: Option<ClientCredentials>,
    pub(crate) token_provider: Option<Arc<dyn TokenProvider>>,
    pub(crate) profile: Option<String>,
    pub(crate) config_path: Option<PathBuf>,
    pub(crate) default_project: Option<String>,
    pub(crate) env: Option<EnvLookup>,
}

impl Sources {
    pub(crate) fn env_var(&self, name: &str) -> Option<String> {
        let value = match &self.env {
            Some(lookup) => lookup(name),
            None => std::env::var(name).ok(),
        };
        // A trailing newline (a Kubernetes secret mounted from a file) is never meant.
        value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// The settings from code, then the environment, then the selected
    /// profile.
    /// The configuration file to read: the one set in code, else
    /// [`CONFIG_ENV`], else (with `config-file`) [`default_config_path`].
    pub(crate) fn config_file(&self) -> Option<PathBuf> {
        let path = self
            .config_path
            .clone()
            .or_else(|| self.env_var(CONFIG_ENV).map(PathBuf::from));
        #[cfg(feature = "config-file")]
        let path = path.or_else(default_config_path);
        path
    }

    pub(crate) fn resolve(&self) -> Result<Settings, ConfigError> {
        // Which profile, and who chose it.
        let explicit_profile = match (&self.profile, self.env_var(PROFILE_ENV)) {
            (Some(name), _) => Some((name.clone(), "ClientBuilder::profile".to_owned())),
            (None, Some(name)) => Some((name, format!("environment variable {PROFILE_ENV}"))),
            (None, None) => None,
        };
        let config_path = self.config_file();
        let file = match &config_path {
            Some(path) => ConfigFile::load(path)?,
            None => None,
        };
        let (profile, profile_origin, explicit) = match (&explicit_profile, &file) {
            (Some((name, origin)), file) => {
                let profile = file
                    .as_ref()
                    .and_then(|f| f.profiles.get(name))
                    .ok_or_else(|| ConfigError::UnknownProfile {
                        name: name.clone(),
                        origin: origin.clone(),
                        path: config_path.clone(),
                        available: file
                            .as_ref()
                            .map(|f| f.profiles.keys().cloned().collect())
                            .unwrap_or_default(),
                    })?;
                (
                    Some(profile.clone()),
                    format!("profile \"{name}\" (selected by {origin})"),
                    true,
                )
            }
            (None, Some(file)) => match &file.default_profile {
                Some(name) => {
                    let origin = format!(
                        "default_profile in {}",
                        config_path
                            .as_deref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    );
                    let profile =
                        file.profiles
                            .get(name)
                            .ok_or_else(|| ConfigError::UnknownProfile {
                                name: name.clone(),
                                origin: origin.clone(),
                                path: config_path.clone(),
                                available: file.profiles.keys().cloned().collect(),
                            })?;
                    (
                        Some(profile.clone()),
                        format!("profile \"{name}\" (the {origin})"),
                        false,
                    )
                }
                None => (None, String::new(), false),
            },
            (None, None) => (None, String::new(), false),
        };
        let profile_ref = profile.as_ref();

        // Endpoint.
        let env_endpoint = self.env_var(ENDPOINT_ENV);
        let profile_endpoint = profile_ref.and_then(|p| p.endpoint.clone());
        let parse = |value: &str, origin: String| {
            Endpoint::parse(value).map_err(|source| ConfigError::Endpoint { origin, source })
        };
        let endpoint = match (&self.endpoint, &env_endpoint, &profile_endpoint) {
            (Some(endpoint), _, _) => endpoint.clone(),
            (None, Some(env), profile_value) => {
                let env_origin = format!("environment variable {ENDPOINT_ENV}");
                let endpoint = parse(env, env_origin.clone())?;
                if let (true, Some(profile_value)) = (explicit, profile_value) {
                    let from_profile = parse(profile_value, profile_origin.clone())?;
                    if from_profile != endpoint {
                        return Err(ConfigError::Conflict {
                            setting: "endpoint",
                            first: format!("{env_origin} ({endpoint})"),
                            second: format!("{profile_origin} ({from_profile})"),
                        });
                    }
                }
                endpoint
            }
            (None, None, Some(value)) => parse(value, profile_origin.clone())?,
            (None, None, None) => return Err(ConfigError::MissingEndpoint),
        };

        // Credentials.
        let credentials = self.code_credentials()?;
        let credentials = match credentials {
            Some(credentials) => credentials,
            None => match self.env_credentials()? {
                Some(credentials) => credentials,
                None => match profile_ref {
                    Some(profile) => profile_credentials(profile, &profile_origin, self)?
                        .ok_or(ConfigError::MissingCredentials)?,
                    None => return Err(ConfigError::MissingCredentials),
                },
            },
        };
        // A profile's client-credential options apply unless set in code.
        let credentials = match (credentials, profile_ref) {
            (Credentials::Client(mut c), Some(profile)) => {
                c.scope = c.scope.or_else(|| profile.scope.clone());
                c.token_url = c.token_url.or_else(|| profile.token_url.clone());
                Credentials::Client(c)
            }
            (other, _) => other,
        };
        let default_project = self
            .default_project
            .clone()
            .or_else(|| profile_ref.and_then(|p| p.default_project.clone()));
        Ok(Settings {
            endpoint,
            credentials,
            default_project,
        })
    }

    fn code_credentials(&self) -> Result<Option<Credentials>, ConfigError> {
        let mut set: Vec<(&str, Credentials)> = Vec::new();
        if let Some(token) = &self.token {
            set.push(("ClientBuilder::token", Credentials::Token(token.clone())));
        }
        if let Some(c) = &self.client_credentials {
            set.push((
                "ClientBuilder::client_credentials",
                Credentials::Client(c.clone()),
            ));
        }
        if let Some(p) = &self.token_provider {
            set.push((
                "ClientBuilder::token_provider",
                Credentials::Provider(p.clone()),
            ));
        }
        if set.len() > 1 {
            return Err(ConfigError::Conflict {
                setting: "credentials",
                first: set[0].0.to_owned(),
                second: set[1].0.to_owned(),
            });
        }
        let credentials = set.pop().map(|(_, c)| c);
        match &credentials {
            Some(Credentials::Token(t)) if t.is_empty() => Err(ConfigError::Invalid {
                what: "ClientBuilder::token".to_owned(),
                reason: "the token is empty".to_owned(),
            }),
            Some(Credentials::Client(c))
                if c.client_id.is_empty() || c.client_secret.is_empty() =>
            {
                Err(ConfigError::Invalid {
                    what: "ClientBuilder::client_credentials".to_owned(),
                    reason: "the client id and secret must not be empty".to_owned(),
                })
            }
            _ => Ok(credentials),
        }
    }

    fn env_credentials(&self) -> Result<Option<Credentials>, ConfigError> {
        let token = self.env_var(TOKEN_ENV);
        let id = self.env_var(CLIENT_ID_ENV);
        let secret = self.env_var(CLIENT_SECRET_ENV);
        match (token, id, secret) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(ConfigError::Conflict {
                setting: "credentials",
                first: format!("environment variable {TOKEN_ENV}"),
                second: format!("environment variables {CLIENT_ID_ENV}/{CLIENT_SECRET_ENV}"),
            }),
            (Some(token), None, None) => Ok(Some(Credentials::Token(Secret::new(checked_secret(
                TOKEN_ENV, token, true,
            )?)))),
            (None, Some(id), Some(secret)) => {
                Ok(Some(Credentials::Client(ClientCredentials::new(
                    checked_secret(CLIENT_ID_ENV, id, false)?,
                    checked_secret(CLIENT_SECRET_ENV, secret, false)?,
                ))))
            }
            (None, Some(_), None) => Err(ConfigError::MissingEnvVar {
                var: CLIENT_SECRET_ENV.to_owned(),
                origin: format!("environment variable {CLIENT_ID_ENV}"),
            }),
            (None, None, Some(_)) => Err(ConfigError::MissingEnvVar {
                var: CLIENT_ID_ENV.to_owned(),
                origin: format!("environment variable {CLIENT_SECRET_ENV}"),
            }),
            (None, None, None) => Ok(None),
        }
    }
}

/// A credential read from environment variable `var` (already trimmed),
/// refused at `build()` when it could not be sent as read: control
/// characters anywhere, or, for a bearer token (`header`), any whitespace.
/// The message names the variable, never the value.
fn checked_secret(var: &str, value: String, header: bool) -> Result<String, ConfigError> {
    let bad = value
        .chars()
        .any(|c| c.is_control() || (header && c.is_whitespace()));
    if bad {
        return Err(ConfigError::Invalid {
            what: format!("environment variable {var}"),
            reason: if header {
                "the token contains whitespace or control characters".to_owned()
            } else {
                "the value contains control characters".to_owned()
            },
        });
    }
    Ok(value)
}

fn profile_credentials(
    profile: &Profile,
    origin: &str,
    sources: &Sources,
) -> Result<Option<Credentials>, ConfigError> {
    let read = |var: &str| {
        sources
            .env_var(var)
            .ok_or_else(|| ConfigError::MissingEnvVar {
                var: var.to_owned(),
                origin: origin.to_owned(),
            })
    };
    let wants_client = profile.client_id.is_some()
        || profile.client_id_env.is_some()
        || profile.client_secret_env.is_some();
    match (&profile.token_env, wants_client) {
        (Some(_), true) => Err(ConfigError::Conflict {
            setting: "credentials",
            first: format!("{origin} `token_env`"),
            second: format!("{origin} `client_id`/`client_secret_env`"),
        }),
        (Some(var), false) => Ok(Some(Credentials::Token(Secret::new(checked_secret(
            var,
            read(var)?,
            true,
        )?)))),
        (None, true) => {
            let id = match (&profile.client_id, &profile.client_id_env) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::Conflict {
                        setting: "client id",
                        first: format!("{origin} `client_id`"),
                        second: format!("{origin} `client_id_env`"),
                    });
                }
                (Some(id), None) => id.clone(),
                (None, Some(var)) => checked_secret(var, read(var)?, false)?,
                (None, None) => {
                    return Err(ConfigError::Invalid {
                        what: origin.to_owned(),
                        reason: "`client_secret_env` needs `client_id` or `client_id_env`"
                            .to_owned(),
                    });
                }
            };
            let secret_var =
                profile
                    .client_secret_env
                    .as_deref()
                    .ok_or_else(|| ConfigError::Invalid {
                        what: origin.to_owned(),
                        reason: "client credentials need `client_secret_env`".to_owned(),
                    })?;
            Ok(Some(Credentials::Client(ClientCredentials::new(
                id,
                checked_secret(secret_var, read(secret_var)?, false)?,
            ))))
        }
        (None, false) => Ok(None),
    }
}

/// The credentials chosen, not yet a token provider.
pub(crate) enum Credentials {
    Token(Secret),
    Client(ClientCredentials),
    Provider(Arc<dyn TokenProvider>),
}

/// The resolved settings: a plain value [`ClientBuilder::build`](crate::ClientBuilder::build)
/// builds the client from.
pub(crate) struct Settings {
    pub(crate) endpoint: Endpoint,
    pub(crate) credentials: Credentials,
    pub(crate) default_project: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ConfigError` lives in `error` (a leaf), so its messages spell the
    /// variables out: they must stay the ones this module reads.
    #[test]
    fn config_errors_name_the_variables_this_module_reads() {
        let missing = ConfigError::MissingEndpoint.to_string();
        assert!(missing.contains(ENDPOINT_ENV), "{missing}");
        let missing = ConfigError::MissingCredentials.to_string();
        for var in [TOKEN_ENV, CLIENT_ID_ENV, CLIENT_SECRET_ENV] {
            assert!(missing.contains(var), "{var}: {missing}");
        }
    }
}

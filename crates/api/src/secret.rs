//! A string that never prints itself.

use std::fmt;

/// A secret value (API token, client secret, access token) that redacts itself.
///
/// `Debug` and `Display` print `[REDACTED]`, so a secret can sit inside any
/// configuration or error type without leaking into logs. The only way to read
/// it is the explicit [`Secret::expose`].
///
/// ```
/// use cm_api::Secret;
///
/// let token = Secret::new("s3cr3t");
/// assert_eq!(format!("{token:?} {token}"), "Secret([REDACTED]) [REDACTED]");
/// assert_eq!(token.expose(), "s3cr3t");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().into_boxed_str())
    }

    /// Returns the secret itself; call it only where the value must be sent.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string (never a valid credential).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

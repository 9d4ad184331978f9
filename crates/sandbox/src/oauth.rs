//! The OAuth 2.0 token endpoint (client credentials grant, RFC 6749 §4.4),
//! at the path cm-api derives for UiPath hosts. It is not an operation of
//! the spec: it answers as an identity server does, not in the envelope.

use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};

use crate::App;
use crate::state::GrantRefused;

/// Where the token endpoint listens: `{base_url}/identity_/connect/token`.
pub(crate) const TOKEN_PATH: &str = "/identity_/connect/token";

/// The largest token request read (a form of four short fields).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A refused token request, answered `{"error": code, "error_description": ...}`.
struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    /// The methods allowed, for a 405.
    allow: Option<&'static str>,
}

fn error(status: StatusCode, code: &'static str, description: &str) -> OAuthError {
    OAuthError {
        status,
        code,
        description: description.to_owned(),
        allow: None,
    }
}

impl OAuthError {
    fn into_response(self) -> Response {
        let mut response = answer(
            self.status,
            &json!({"error": self.code, "error_description": self.description}),
        );
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

fn answer(status: StatusCode, body: &Value) -> Response {
    let mut response = crate::wire::json_response(status, body);
    let headers = response.headers_mut();
    // RFC 6749 §5.1: token answers are not cached.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// One token request: `POST`, form-encoded `grant_type=client_credentials`,
/// `client_id`, `client_secret`, optional `scope`.
pub(crate) async fn token(app: &App, parts: Parts, body: Body) -> Response {
    grant(app, parts, body)
        .await
        .unwrap_or_else(OAuthError::into_response)
}

/// The parameter `name` of a form, `None` when absent; 400 when repeated
/// (RFC 6749 §3.2).
fn single(pairs: &[(String, String)], name: &str) -> Result<Option<String>, OAuthError> {
    let mut values = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    let first = values.next().cloned();
    if values.next().is_some() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("the parameter `{name}` is repeated"),
        ));
    }
    Ok(first)
}

async fn grant(app: &App, parts: Parts, body: Body) -> Result<Response, OAuthError> {
    if parts.method != Method::POST {
        return Err(OAuthError {
            allow: Some("POST"),
            ..error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "the token endpoint only accepts POST",
            )
        });
    }
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return Err(error(
            StatusCode::NOT_IMPLEMENTED,
            "invalid_request",
            "client authentication with the Authorization header (client_secret_basic) is not \
             supported by the sandbox; send client_id and client_secret in the form body",
        ));
    }
    let form_encoded = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_encoded {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request body is too large, or was cut short",
        ));
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let grant_type = single(&pairs, "grant_type")?;
    let client_id = single(&pairs, "client_id")?;
    let client_secret = single(&pairs, "client_secret")?;
    let scope = single(&pairs, "scope")?;
    match grant_type.as_deref() {
        Some("client_credentials") => {}
        None => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the parameter `grant_type` is missing",
            ));
        }
        Some(_) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "the sandbox grants client_credentials only",
            ));
        }
    }
    let (Some(client_id), Some(client_secret)) = (client_id, client_secret) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "client_id and client_secret are required",
        ));
    };
    let lifetime = app.access_token_lifetime;
    let granted = app
        .lock()
        .grant_client_credentials(&client_id, &client_secret, lifetime);
    match granted {
        Ok(access_token) => {
            let mut body = json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": lifetime.as_secs(),
            });
            if let Some(scope) = scope {
                body["scope"] = scope.into();
            }
            Ok(answer(StatusCode::OK, &body))
        }
        Err(GrantRefused::InvalidClient) => Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "unknown client, or wrong client secret",
        )),
    }
}

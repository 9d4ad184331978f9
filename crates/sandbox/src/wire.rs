//! The service's wire conventions: the envelope, request bodies decoded
//! with the failing field named, query strings.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// A failed request, answered as `{"status": "error", "message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    pub(crate) fn conflict(what: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::CONFLICT, format!("{what} already exists"))
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub(crate) fn into_response(self) -> Response {
        json_response(
            self.status,
            &json!({"status": "error", "message": self.message}),
        )
    }
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `{"status": "ok", ...fields}`.
pub(crate) fn ok(fields: Value) -> Value {
    let mut map = Map::new();
    map.insert("status".into(), Value::from("ok"));
    if let Value::Object(fields) = fields {
        map.extend(fields);
    }
    Value::Object(map)
}

/// Decodes a JSON request body into `T`: 400 when it is not JSON, 422
/// naming the field when it does not have the operation's shape.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    decode_value(parse(body)?, "")
}

/// A request body as JSON (400 when empty or not JSON). Parsed straight
/// into the tree: [`decode`]`::<Value>` would copy the tree once more.
pub(crate) fn parse(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// Decodes a JSON value into `T`, naming the field at fault under `prefix`.
pub(crate) fn decode_value<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, ApiError> {
    decode_with(value, prefix)
}

/// [`decode_value`] from a borrowed value: for a check of a value that is
/// kept (no copy of the whole tree). Tracking the path costs an allocation
/// per object key, so it is done only to name the field of a value that
/// does not decode.
pub(crate) fn decode_ref<'a, T: serde::Deserialize<'a>>(
    value: &'a Value,
    prefix: impl FnOnce() -> String,
) -> Result<T, ApiError> {
    T::deserialize(value).or_else(|_| decode_with(value, &prefix()))
}

fn decode_with<'de, D, T>(value: D, prefix: &str) -> Result<T, ApiError>
where
    D: serde::Deserializer<'de, Error = serde_json::Error>,
    T: serde::Deserialize<'de>,
{
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = match (prefix.is_empty(), path == ".") {
            (true, true) => "the request body".to_owned(),
            (true, false) => format!("`{path}`"),
            (false, true) => format!("`{prefix}`"),
            (false, false) => format!("`{prefix}.{path}`"),
        };
        ApiError::unprocessable(format!("{field}: {}", e.into_inner()))
    })
}

/// A query string as its pairs, in order (keys may repeat: `?id=a&id=b`).
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        Self(
            raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    /// The last value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub(crate) fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `key` as an integer, 400 when it is not one.
    pub(crate) fn integer(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("query `{key}`: not an integer: {v:?}"))
                })
            })
            .transpose()
    }

    /// `key` as an RFC 3339 date-time, 400 when it is not one.
    pub(crate) fn timestamp(
        &self,
        key: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        self.get(key)
            .map(|v| {
                parse_timestamp(v).ok_or_else(|| {
                    ApiError::bad_request(format!("query `{key}`: not a date-time: {v:?}"))
                })
            })
            .transpose()
    }
}

/// An RFC 3339 date-time, or one without an offset (read as UTC, as the
/// service's examples send `2020-06-03T16:05:00`).
pub(crate) fn parse_timestamp(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// A date-time from a request as the sandbox stores it: an RFC 3339 one as
/// written, one without an offset as RFC 3339 UTC (`2020-06-03T16:05:00` →
/// `2020-06-03T16:05:00Z`), so answers hold the spec's `date-time`; `None`
/// when it is not a date-time.
pub(crate) fn stored_timestamp(text: &str) -> Option<String> {
    if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
        return Some(text.to_owned());
    }
    parse_timestamp(text).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// A date-time as the sandbox writes it: UTC, microseconds, `Z`.
pub(crate) fn format_timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

//! Request plumbing shared by the hand-written operations (uploads,
//! downloads, bulk): path segments checked and encoded as the generated
//! client encodes them, requests sent through the generated client's hooks,
//! and responses read as a generated operation reads them.

use std::str::FromStr;

use cm_api_gen::ResponseValue;
use cm_api_gen::types::{ErrorResponse, PathSegment};
use progenitor_client::{ClientHooks, OperationInfo};
use serde::de::DeserializeOwned;

use crate::error::Error;

/// The error type of a generated call, which hand-written calls return too
/// so that the adapter under every operation's `send()` maps both the same way.
pub(crate) type GeneratedError = cm_api_gen::Error<ErrorResponse>;

/// `value` checked as the spec's `PathSegment` (non-empty, not `.` or `..`:
/// percent-encoding cannot stop those from changing the resource) and
/// percent-encoded with the generated client's rules; else an
/// [`Error::InvalidRequest`] naming `name`, before anything is sent.
pub(crate) fn segment(operation: &'static str, name: &str, value: &str) -> Result<String, Error> {
    PathSegment::from_str(value).map_err(|_| Error::InvalidRequest {
        operation: Some(operation),
        message: format!(
            "`{name}` must be a non-empty path segment other than `.` or `..`, got {value:?}"
        ),
    })?;
    Ok(progenitor_client::encode_path(value))
}

/// Sends a hand-built request as the generated code sends its own: through
/// the client's `pre` / `exec` / `post` hooks (here the
/// [`Transport`](crate::transport::Transport)), so authentication, retries
/// and the call record that the adapter under every operation's `send()` reads all apply.
pub(crate) async fn execute(
    client: &cm_api_gen::Client,
    mut request: reqwest::Request,
    operation_id: &'static str,
) -> Result<reqwest::Response, GeneratedError> {
    let info = OperationInfo { operation_id };
    client.pre(&mut request, &info).await?;
    let result = client.exec(request, &info).await;
    client.post(&result, &info).await?;
    Ok(result?)
}

/// A response read as a generated JSON operation reads it: a 2xx body as
/// `T` (without a nesting limit; an empty body as `{"status":"ok"}`), a
/// 4xx/5xx body as the error envelope, any other status unexpected.
pub(crate) async fn json_response<T: DeserializeOwned>(
    response: reqwest::Response,
) -> Result<ResponseValue<T>, GeneratedError> {
    match response.status().as_u16() {
        200..=299 => cm_api_gen::hooks::decode_success(response).await,
        400..=599 => Err(cm_api_gen::Error::ErrorResponse(
            ResponseValue::from_response(response).await?,
        )),
        _ => Err(cm_api_gen::Error::UnexpectedResponse(response)),
    }
}

/// A required parameter or body of a hand-written operation left unset:
/// nothing was sent.
pub(crate) fn missing(operation: &'static str, name: &str) -> Error {
    Error::InvalidRequest {
        operation: Some(operation),
        message: format!("`{name}` is required and was not set"),
    }
}

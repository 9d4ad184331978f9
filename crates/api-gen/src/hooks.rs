//! The seam between the generated client and the hand-written `cm-api` crate.
//!
//! progenitor lets a crate customise requests by implementing
//! [`progenitor_client::ClientHooks`] for the generated `Client`. The orphan
//! rule only allows that impl here, in the crate that defines `Client`, so
//! this module holds a single generic impl that delegates to a
//! [`RequestHooks`] trait object. `cm-api` implements `RequestHooks` to add
//! authentication, retries and response inspection without touching generated
//! code.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use progenitor_client::{ClientHooks, ClientInfo, OperationInfo};
use serde::de::DeserializeOwned;

use crate::{Client, Error, ResponseValue};

/// A boxed, `Send` future, as returned by [`RequestHooks`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The error a [`RequestHooks::prepare`] implementation returns to stop a request.
pub type HookError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Per-request customisation of the generated client.
///
/// Both methods have defaults that do nothing special, so an implementation
/// overrides only what it needs.
///
/// ```
/// use cm_api_gen::hooks::{BoxFuture, HookError, RequestHooks};
///
/// #[derive(Debug)]
/// struct UserAgent;
///
/// impl RequestHooks for UserAgent {
///     fn prepare<'a>(
///         &'a self,
///         request: &'a mut reqwest::Request,
///         _operation_id: &'static str,
///     ) -> BoxFuture<'a, Result<(), HookError>> {
///         request
///             .headers_mut()
///             .insert("user-agent", reqwest::header::HeaderValue::from_static("my-app/1.0"));
///         Box::pin(async { Ok(()) })
///     }
/// }
/// ```
pub trait RequestHooks: fmt::Debug + Send + Sync + 'static {
    /// Adjusts a request before it is sent, e.g. to add the `Authorization`
    /// header. Returning an error stops the request; the generated method then
    /// returns `Error::Custom` with the error's message.
    fn prepare<'a>(
        &'a self,
        request: &'a mut reqwest::Request,
        operation_id: &'static str,
    ) -> BoxFuture<'a, Result<(), HookError>> {
        let _ = (request, operation_id);
        Box::pin(async { Ok(()) })
    }

    /// Sends a prepared request. The default is `client.execute(request)`;
    /// an override may retry, time the call or read the response's headers.
    fn execute<'a>(
        &'a self,
        client: &'a reqwest::Client,
        request: reqwest::Request,
        operation_id: &'static str,
    ) -> BoxFuture<'a, reqwest::Result<reqwest::Response>> {
        let _ = operation_id;
        Box::pin(client.execute(request))
    }
}

/// The generated client's inner value: optional [`RequestHooks`].
///
/// `Hooks::default()` installs none, which sends requests unchanged apart
/// from the removal of progenitor's `api-version` header (the Communications
/// Mining API does not use it).
#[derive(Clone, Default)]
pub struct Hooks(Option<Arc<dyn RequestHooks>>);

impl Hooks {
    /// Wraps `hooks` so that every request of the client passes through it.
    pub fn new(hooks: impl RequestHooks) -> Self {
        Self(Some(Arc::new(hooks)))
    }

    /// Wraps hooks that are already shared.
    pub fn from_arc(hooks: Arc<dyn RequestHooks>) -> Self {
        Self(Some(hooks))
    }

    /// The installed hooks, if any.
    pub fn get(&self) -> Option<&Arc<dyn RequestHooks>> {
        self.0.as_ref()
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(hooks) => f.debug_tuple("Hooks").field(hooks).finish(),
            None => f.write_str("Hooks(None)"),
        }
    }
}

/// progenitor adds `api-version: <info.version>` to every request. The
/// platform ignores it at best, so it never leaves the process.
const PROGENITOR_VERSION_HEADER: &str = "api-version";

impl ClientHooks<Hooks> for Client {
    async fn pre<E>(
        &self,
        request: &mut reqwest::Request,
        info: &OperationInfo,
    ) -> Result<(), Error<E>> {
        request.headers_mut().remove(PROGENITOR_VERSION_HEADER);
        match self.inner().get() {
            Some(hooks) => hooks
                .prepare(request, info.operation_id)
                .await
                .map_err(|error| Error::Custom(error.to_string())),
            None => Ok(()),
        }
    }

    async fn exec(
        &self,
        request: reqwest::Request,
        info: &OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        match self.inner().get() {
            Some(hooks) => {
                hooks
                    .execute(self.client(), request, info.operation_id)
                    .await
            }
            None => self.client().execute(request).await,
        }
    }
}

/// Decodes a JSON body with no nesting limit and no risk of overflowing the
/// stack.
///
/// `serde_json` stops at 128 levels by default, and each level of a
/// comment's rich-text markup costs two (the node and its `children`
/// array), so a forwarded chain of HTML emails can exceed it. The limit is
/// lifted, and `serde_stacker` grows the stack on the heap as the decoder
/// descends, so any depth decodes on any thread, including a default tokio
/// worker.
///
/// ```
/// let deep = "[".repeat(5_000) + &"]".repeat(5_000);
/// let value: serde_json::Value = cm_api_gen::hooks::decode_json(deep.as_bytes()).unwrap();
/// assert!(value.is_array());
/// ```
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    let mut json = serde_json::Deserializer::from_slice(body);
    json.disable_recursion_limit();
    let value = T::deserialize(serde_stacker::Deserializer::new(&mut json))?;
    json.end()?;
    Ok(value)
}

/// What an empty success body (a `204 No Content`) is read as: the bare
/// success envelope, which is all that operations returning `OkResponse`
/// carry. Operations with a payload still fail, naming the missing field.
const EMPTY_SUCCESS: &[u8] = br#"{"status":"ok"}"#;

/// The success arm of every generated JSON operation (`cargo xtask codegen`
/// routes it here): any 2xx status, decoded by [`decode_json`].
#[doc(hidden)]
pub async fn decode_success<T: DeserializeOwned, E>(
    response: reqwest::Response,
) -> Result<ResponseValue<T>, Error<E>> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(Error::ResponseBodyError)?;
    let decoded = if body.is_empty() {
        decode_json(EMPTY_SUCCESS)
    } else {
        decode_json(&body)
    };
    match decoded {
        Ok(inner) => Ok(ResponseValue::new(inner, status, headers)),
        Err(error) => Err(Error::InvalidResponsePayload(body, error)),
    }
}

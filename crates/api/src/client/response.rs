//! [`Response`]: a decoded value with what the response said about itself.

use std::fmt;

use crate::server_timing::ServerTiming;

/// A successful response: the value with the envelope stripped, plus what
/// the response said about itself.
///
/// Dereferences to the value, so `response.len()` works on a list.
///
/// Its `Debug` lists the response headers by name only: a value may be a
/// session cookie (`set-cookie`) or another credential;
/// [`headers`](Self::headers) has them all.
#[derive(Clone)]
pub struct Response<T> {
    pub(super) value: T,
    pub(super) status: u16,
    pub(super) server_timing: ServerTiming,
    pub(super) request_id: Option<String>,
    pub(super) attempts: u32,
    pub(super) headers: http::HeaderMap,
}

impl<T: fmt::Debug> fmt::Debug for Response<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("value", &self.value)
            .field("status", &self.status)
            .field("server_timing", &self.server_timing)
            .field("request_id", &self.request_id)
            .field("attempts", &self.attempts)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<T> Response<T> {
    /// The value.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The value, by reference.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The server's timing metrics; [`ServerTiming::total`] is the server's total time.
    pub fn server_timing(&self) -> &ServerTiming {
        &self.server_timing
    }

    /// The `x-request-id` response header, if sent.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// How many attempts the call took (1 unless retried).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The response headers, as received.
    ///
    /// ```no_run
    /// # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
    /// let response = client.list_projects().send().await?;
    /// if let Some(date) = response.headers().get("date") {
    ///     println!("answered at {date:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn headers(&self) -> &crate::http::HeaderMap {
        &self.headers
    }

    /// Transforms the value, keeping the metadata.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Response<U> {
        Response {
            value: f(self.value),
            status: self.status,
            server_timing: self.server_timing,
            request_id: self.request_id,
            attempts: self.attempts,
            headers: self.headers,
        }
    }
}

impl<T> std::ops::Deref for Response<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

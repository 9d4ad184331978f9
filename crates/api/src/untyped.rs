//! An operation chosen at run time: sent by method and path template, with a
//! JSON body, answered in JSON as the server sent it (every field kept).
//!
//! This is for tools that reach operations by name, such as the `cm api`
//! command; code should use the typed builders of [`operations`](crate::operations),
//! which check every value before sending. An untyped call still goes
//! through the client's authentication, retries (by the operation id's
//! [retry class](crate::retry::retry_class)), timeouts and error mapping, and
//! still refuses a path parameter that is not a [path segment](crate::types::PathSegment).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let sandbox = cm_sandbox::Sandbox::start().await?;
//! # let client = cm_api::Client::builder()
//! #     .env_lookup(|_| None)
//! #     .endpoint(cm_api::Endpoint::parse(sandbox.base_url())?)
//! #     .token(sandbox.token())
//! #     .build()?;
//! use cm_api::http::Method;
//! use serde_json::json;
//!
//! client
//!     .untyped("create_project", Method::PUT, "/api/_private/projects/{project}")
//!     .path_param("project", "acme")
//!     .body(json!({"project": {"title": "ACME"}}))
//!     .send()
//!     .await?;
//! let answer = client
//!     .untyped("get_project", Method::GET, "/api/_private/projects/{project}")
//!     .path_param("project", "acme")
//!     .send()
//!     .await?;
//! assert_eq!(answer.value()["project"]["title"], "ACME");
//! # Ok(()) }
//! ```

use http::Method;
use http::header::{ACCEPT, HeaderValue};
use progenitor_client::ClientInfo;

use crate::client::{Client, Response};
use crate::error::Error;
use crate::request::{execute, json_response, missing, segment};
use crate::retry::CallOptions;

/// A call to one operation by its id, method and path template, built by
/// [`Client::untyped`]; see the [module](self) documentation.
#[derive(Clone, Debug)]
#[must_use = "a call does nothing until it is sent"]
pub struct UntypedCall {
    client: Client,
    options: CallOptions,
    operation: &'static str,
    method: Method,
    template: String,
    path: Vec<(String, String)>,
    query: Vec<(String, String)>,
    body: Option<serde_json::Value>,
}

impl Client {
    /// A call to `operation_id` (which picks its retry class and names it
    /// in errors and traces) as `method` on `path_template`, whose
    /// `{name}` placeholders take [`path_param`](UntypedCall::path_param)s.
    /// See [`untyped`](crate::untyped).
    ///
    /// ```
    /// # fn f(client: cm_api::Client) {
    /// let call = client.untyped("list_projects", cm_api::http::Method::GET, "/api/_private/projects");
    /// # }
    /// ```
    pub fn untyped(
        &self,
        operation_id: &'static str,
        method: Method,
        path_template: impl Into<String>,
    ) -> UntypedCall {
        UntypedCall {
            client: self.clone(),
            options: CallOptions::new(),
            operation: operation_id,
            method,
            template: path_template.into(),
            path: Vec::new(),
            query: Vec::new(),
            body: None,
        }
    }
}

impl UntypedCall {
    /// The value of the path placeholder `{name}`, checked as a path
    /// segment and percent-encoded when sent.
    ///
    /// ```
    /// # fn f(client: cm_api::Client) {
    /// let call = client
    ///     .untyped("get_project", cm_api::http::Method::GET, "/api/_private/projects/{project}")
    ///     .path_param("project", "acme");
    /// # }
    /// ```
    pub fn path_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.path.push((name.into(), value.into()));
        self
    }

    /// A query parameter; repeat the name for a list.
    ///
    /// ```
    /// # fn f(client: cm_api::Client) {
    /// let call = client
    ///     .untyped("list_projects", cm_api::http::Method::GET, "/api/_private/projects")
    ///     .query("limit", "10");
    /// # }
    /// ```
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// The JSON body, sent as it is.
    ///
    /// ```
    /// # fn f(client: cm_api::Client) {
    /// let call = client
    ///     .untyped("create_project", cm_api::http::Method::PUT, "/api/_private/projects/{project}")
    ///     .path_param("project", "acme")
    ///     .body(serde_json::json!({"project": {}}));
    /// # }
    /// ```
    pub fn body(mut self, value: serde_json::Value) -> Self {
        self.body = Some(value);
        self
    }

    /// Per-call overrides of the attempt timeout, the deadline and the
    /// retry policy, as on every typed builder.
    ///
    /// ```
    /// # fn f(client: cm_api::Client) {
    /// use std::time::Duration;
    /// let call = client
    ///     .untyped("list_projects", cm_api::http::Method::GET, "/api/_private/projects")
    ///     .with_options(cm_api::CallOptions::new().deadline(Duration::from_secs(5)));
    /// # }
    /// ```
    pub fn with_options(mut self, options: CallOptions) -> Self {
        self.options = options;
        self
    }

    /// The path with every placeholder filled, or an
    /// [`Error::InvalidRequest`] naming the one left unset or invalid.
    fn path(&self) -> Result<String, Error> {
        let mut out = String::with_capacity(self.template.len());
        let mut rest = self.template.as_str();
        while let Some(open) = rest.find('{') {
            let close =
                rest[open..]
                    .find('}')
                    .map(|i| open + i)
                    .ok_or_else(|| Error::InvalidRequest {
                        operation: Some(self.operation),
                        message: format!("unclosed `{{` in path template {:?}", self.template),
                    })?;
            let name = &rest[open + 1..close];
            let (_, value) = self
                .path
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .ok_or_else(|| missing(self.operation, name))?;
            out.push_str(&rest[..open]);
            out.push_str(&segment(self.operation, name, value)?);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Sends the call and returns the answer's JSON with its status,
    /// headers and Server-Timing, or a typed [`Error`]; nothing is sent
    /// when a path parameter is missing or invalid.
    pub async fn send(self) -> Result<Response<serde_json::Value>, Error> {
        let path = self.path()?;
        let Self {
            client,
            options,
            operation,
            method,
            query,
            body,
            ..
        } = self;
        client
            .send_with(options, |c| async move {
                let mut request = c
                    .client()
                    .request(method, format!("{}{path}", c.baseurl()))
                    .header(ACCEPT, HeaderValue::from_static("application/json"));
                if !query.is_empty() {
                    request = request.query(&query);
                }
                if let Some(body) = &body {
                    request = request.json(body);
                }
                json_response(execute(c, request.build()?, operation).await?).await
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(template: &str) -> UntypedCall {
        let client = Client::builder()
            .env_lookup(|_| None)
            .endpoint(crate::Endpoint::parse("http://127.0.0.1:1").unwrap())
            .token("t")
            .build()
            .unwrap();
        client.untyped("get_source", Method::GET, template)
    }

    #[test]
    fn placeholders_are_filled_encoded_and_checked() {
        let path = call("/api/v1/sources/{project}/{source_name}")
            .path_param("project", "acme")
            .path_param("source_name", "in box")
            .path()
            .unwrap();
        assert_eq!(path, "/api/v1/sources/acme/in%20box");

        let unset = call("/api/v1/sources/{project}/{source_name}")
            .path_param("project", "acme")
            .path()
            .unwrap_err();
        assert_eq!(
            unset.to_string(),
            call("/x/{source_name}").path().unwrap_err().to_string()
        );
        assert!(unset.to_string().contains("source_name"), "{unset}");

        let dots = call("/api/v1/sources/{project}")
            .path_param("project", "..")
            .path()
            .unwrap_err();
        assert!(matches!(dots, Error::InvalidRequest { .. }), "{dots:?}");
    }
}

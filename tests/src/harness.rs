//! Running a contract case: serve a canned answer from an httpmock server
//! that only matches the exact request the case documents, call the
//! operation through `cm_api::Client`, and hand back what the caller got.

use futures::StreamExt;
use futures::future::BoxFuture;
use httpmock::MockServer;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{request_example, success_example};

/// The token every contract client sends.
pub const TOKEN: &str = "contract-test-token";
/// The Server-Timing header every canned response carries.
pub const SERVER_TIMING: &str = "total;dur=12.5";

/// What a call returned: the typed result re-serialised to JSON (so one
/// harness can compare any operation), or the client's error.
pub type Outcome = Result<Value, cm_api::Error>;

/// What the mock server answers when a case's request matches.
#[derive(Debug, Clone, Copy)]
pub enum Canned {
    /// The spec's own JSON example for the operation's success response.
    Example,
    /// A binary body (downloads).
    Bytes {
        /// Its media type.
        content_type: &'static str,
        /// Its bytes.
        body: &'static [u8],
    },
}

/// One operation's contract: the exact request, and how to make it.
pub struct Case {
    /// The spec's operationId.
    pub operation_id: &'static str,
    /// HTTP method, upper case.
    pub method: &'static str,
    /// The exact path on the wire, percent-encoded.
    pub path: &'static str,
    /// The query pairs, exactly: each must be sent, and nothing else.
    pub query: &'static [(&'static str, &'static str)],
    /// Whether the body must equal the spec's request example.
    pub sends_body: bool,
    /// The success answer.
    pub response: Canned,
    /// Makes the call through the public client.
    pub call: fn(&cm_api::Client) -> BoxFuture<'_, Outcome>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.operation_id, self.method, self.path)
    }
}

/// The spec's request example for `operation_id`, decoded into the
/// generated request type: proof that the example and the type agree.
pub fn request_body<T: DeserializeOwned>(operation_id: &str) -> T {
    let example = request_example(operation_id)
        .unwrap_or_else(|| panic!("{operation_id}: the spec has no request example"));
    serde_json::from_value(example.clone()).unwrap_or_else(|error| {
        panic!(
            "{operation_id}: the request example does not decode into the generated type: {error}"
        )
    })
}

/// Sends an operation built on `cm_api::Client` (any builder, through
/// [`cm_api::Operation`]) and re-serialises the value.
pub async fn run<O>(operation: O) -> Outcome
where
    O: cm_api::Operation,
    O::Output: Serialize,
{
    let response = operation.send().await?;
    Ok(serde_json::to_value(response.into_inner()).expect("generated types serialise"))
}

/// Like [`run`] for a binary download: the bytes as a JSON array of numbers.
pub async fn run_bytes<O>(operation: O) -> Outcome
where
    O: cm_api::Operation<Output = cm_api::Download>,
{
    let response = operation.send().await?;
    let mut stream = response.into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.expect("the body streams"));
    }
    Ok(Value::from(bytes))
}

/// A client for `server` authenticated with [`TOKEN`], with retries off so
/// every canned error comes back as it was served, and blind to the
/// machine's environment and profile file.
pub fn client_for(server: &MockServer) -> cm_api::Client {
    let endpoint = cm_api::Endpoint::parse(&server.base_url()).expect("a loopback URL is valid");
    cm_api::Client::builder()
        .endpoint(endpoint)
        .token(TOKEN)
        .retry_policy(cm_api::RetryPolicy::none())
        .env_lookup(|_| None)
        .build()
        .expect("the test client builds")
}

/// An answer to serve for a case's request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Answer {
    /// The case's success answer, from the spec (or its canned bytes).
    pub fn success(case: &Case) -> Self {
        match case.response {
            Canned::Example => Self::json(
                200,
                success_example(case.operation_id).unwrap_or_else(|| {
                    panic!("{}: the spec has no success example", case.operation_id)
                }),
            ),
            Canned::Bytes { content_type, body } => Self {
                status: 200,
                content_type: content_type.into(),
                body: body.to_vec(),
            },
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            content_type: "application/json".into(),
            body: serde_json::to_vec(body).expect("JSON"),
        }
    }

    /// An answer with any body and media type.
    pub fn raw(status: u16, content_type: &str, body: &[u8]) -> Self {
        Self {
            status,
            content_type: content_type.into(),
            body: body.to_vec(),
        }
    }
}

/// Serves `answer` to exactly the request `case` documents, makes the call,
/// and checks the request arrived once. A request that matches nothing gets
/// httpmock's 404 and the assertion names the closest mismatch.
pub async fn exercise(case: &Case, answer: Answer) -> Outcome {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            let mut when = when
                .method(case.method)
                .path(case.path)
                .header("authorization", format!("Bearer {TOKEN}"));
            for (key, value) in case.query {
                when = when.query_param(*key, *value);
            }
            // Exactly these pairs: nothing the case does not document.
            let mut expected: Vec<(String, String)> = case
                .query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            expected.sort();
            when = when.is_true(move |request| {
                let mut sent = request.query_params();
                sent.sort();
                sent == expected
            });
            if case.sends_body {
                let example = request_example(case.operation_id).expect("request example");
                when.json_body(example.clone());
            }
            then.status(answer.status)
                .header("content-type", answer.content_type.as_str())
                .header("server-timing", SERVER_TIMING)
                .body(&answer.body);
        })
        .await;
    let client = client_for(&server);
    let outcome = (case.call)(&client).await;
    mock.assert_async().await;
    outcome
}

/// Drops object members whose value is `null` or a zero value (`[]`, `{}`,
/// `false`, `""`, `0`), at any depth. The generated types write an absent
/// optional field for `null`, `[]` and `{}`, and a defaulted field
/// (`#[serde(default)]`, per the spec's `default`) comes back as its zero
/// value when it was absent; to the API each pair means the same.
pub fn normalised(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(k, v)| (k.clone(), normalised(v)))
                .filter(|(_, v)| !is_zero(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalised).collect()),
        other => other.clone(),
    }
}

/// `null` or the zero value of its JSON type.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(members) => members.is_empty(),
    }
}

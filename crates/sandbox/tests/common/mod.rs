//! Helpers shared by the sandbox's test suites.
// Each suite compiles this module on its own and uses a part of it.
#![allow(dead_code)]

use cm_api::types;
use cm_api::{Client, Endpoint, Error, RetryPolicy};
use cm_sandbox::Sandbox;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A sandbox that checks every answer against the spec's response schema;
/// a test fails at its end (when this drops) if any answer violated it.
pub struct Checked(Sandbox);

impl std::ops::Deref for Checked {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.0
    }
}

impl Drop for Checked {
    fn drop(&mut self) {
        let violations = self.0.schema_violations();
        // A test already failing reports its own failure, not this one.
        if !std::thread::panicking() {
            assert!(
                violations.is_empty(),
                "answers violated the spec's response schemas:\n{}",
                violations
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

pub async fn checked() -> Checked {
    Checked(
        Sandbox::builder()
            .validate_responses(true)
            .start()
            .await
            .unwrap(),
    )
}

/// A client of `sandbox` with `token`, isolated from the environment.
pub fn client_with(sandbox: &Sandbox, token: &str) -> Client {
    Client::builder()
        .env_lookup(|_| None)
        .config_path(std::env::temp_dir().join("cm-sandbox-tests-no-config.toml"))
        .endpoint(Endpoint::parse(sandbox.base_url()).expect("sandbox URL"))
        .token(token.to_owned())
        .retry_policy(RetryPolicy::default().max_attempts(1))
        .build()
        .expect("client")
}

pub fn client(sandbox: &Sandbox) -> Client {
    client_with(sandbox, sandbox.token())
}

/// A generated request type from JSON.
pub fn typed<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a valid request body")
}

pub fn comment(id: &str, timestamp: &str, text: &str) -> types::CommentNew {
    typed(json!({
        "id": id,
        "timestamp": timestamp,
        "thread_id": format!("thread-{id}"),
        "user_properties": {"string:Country": "FR", "number:Amount": 12.5},
        "messages": [{
            "from": "alice@example.com",
            "to": ["support@example.com"],
            "subject": {"text": "Refund"},
            "body": {"text": text},
        }],
    }))
}

/// The status and message of an `Error::Api`, panicking on anything else.
pub fn api_error(error: Error) -> (u16, String) {
    match error {
        Error::Api {
            status, message, ..
        } => (status, message),
        other => panic!("expected Error::Api, got {other:?}"),
    }
}

/// A project `acme` with a source `inbox`; returns the source id.
pub async fn project_and_source(client: &Client) -> String {
    client
        .create_project()
        .project("acme")
        .body(typed::<types::CreateProjectRequest>(
            json!({"project": {"title": "ACME"}}),
        ))
        .send()
        .await
        .expect("create_project");
    client
        .create_source()
        .project("acme")
        .source_name("inbox")
        .body(typed::<types::CreateSourceRequest>(
            json!({"source": {"title": "Inbox"}}),
        ))
        .send()
        .await
        .expect("create_source")
        .into_inner()
        .source
        .id
}

//! Helpers shared by the integration tests: no process environment, no
//! real config file, tiny backoffs.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

pub mod fault;

use cm_api::{Client, ClientBuilder, Endpoint, RetryPolicy};
use serde_json::{Value, json};

/// A path that does not exist, so no real user configuration is read.
pub fn no_config() -> PathBuf {
    std::env::temp_dir()
        .join("cm-api-tests-no-such-dir")
        .join("config.toml")
}

/// A builder isolated from the process environment and the user's config.
pub fn isolated() -> ClientBuilder {
    Client::builder()
        .env_lookup(|_| None)
        .config_path(no_config())
}

/// A builder whose environment is exactly `vars`.
pub fn with_env(vars: &[(&str, &str)]) -> ClientBuilder {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Client::builder().env_lookup(move |name| env.get(name).cloned())
}

/// Fast retries, for tests.
pub fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(max_attempts)
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_secs(2))
}

/// A client with a static token against a mock server.
pub fn token_client(server: &httpmock::MockServer, policy: RetryPolicy) -> Client {
    isolated()
        .endpoint(Endpoint::parse(&server.base_url()).expect("mock URL"))
        .token("tok-static-123")
        .retry_policy(policy)
        .build()
        .expect("client")
}

/// A dataset as the API returns it.
pub fn dataset(name: &str) -> Value {
    json!({
        "id": "b3d9f0c2a1e47e65",
        "owner": "acme",
        "name": name,
        "title": "Support triage",
        "description": "",
        "created": "2026-01-15T14:02:11Z",
        "last_modified": "2026-03-02T16:40:00Z",
        "model_family": "english",
        "source_ids": ["18ba5ce699f8da1f"],
        "has_sentiment": false,
        "limited_access": false,
        "entity_defs": [],
        "general_fields": [],
        "label_groups": [],
        "label_defs": []
    })
}

/// A unique temporary config file with `contents`.
pub fn config_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cm-api-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, contents).expect("write config");
    path
}

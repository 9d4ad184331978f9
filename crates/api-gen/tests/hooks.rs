//! The `RequestHooks` seam: what `cm-api` relies on to authenticate requests
//! and read response headers without editing generated code.

use std::sync::{Arc, Mutex};

use cm_api_gen::Client;
use cm_api_gen::hooks::{BoxFuture, HookError, Hooks, RequestHooks};
use httpmock::prelude::*;
use reqwest::header::HeaderValue;

const DATASETS: &str = r#"{"status":"ok","datasets":[]}"#;

/// Sets a header naming the operation and records a response header.
#[derive(Debug, Default, Clone)]
struct Recording {
    server_timing: Arc<Mutex<Vec<String>>>,
}

impl RequestHooks for Recording {
    fn prepare<'a>(
        &'a self,
        request: &'a mut reqwest::Request,
        operation_id: &'static str,
    ) -> BoxFuture<'a, Result<(), HookError>> {
        request
            .headers_mut()
            .insert("x-operation", HeaderValue::from_static(operation_id));
        Box::pin(async { Ok(()) })
    }

    fn execute<'a>(
        &'a self,
        client: &'a reqwest::Client,
        request: reqwest::Request,
        _operation_id: &'static str,
    ) -> BoxFuture<'a, reqwest::Result<reqwest::Response>> {
        Box::pin(async move {
            let response = client.execute(request).await?;
            if let Some(value) = response.headers().get("server-timing") {
                let text = value.to_str().unwrap_or_default().to_owned();
                self.server_timing.lock().unwrap().push(text);
            }
            Ok(response)
        })
    }
}

#[tokio::test]
async fn hooks_set_request_headers_and_read_response_headers() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v1/datasets")
                .header("x-operation", "list_datasets")
                .header_missing("api-version");
            then.status(200)
                .header("content-type", "application/json")
                .header("server-timing", "total;dur=37.7")
                .body(DATASETS);
        })
        .await;
    let recording = Recording::default();
    let client = Client::new(&server.base_url(), Hooks::new(recording.clone()));

    client
        .list_datasets()
        .send()
        .await
        .expect("the mock answers");

    mock.assert_async().await;
    assert_eq!(*recording.server_timing.lock().unwrap(), ["total;dur=37.7"]);
}

#[derive(Debug)]
struct Refuse;

impl RequestHooks for Refuse {
    fn prepare<'a>(
        &'a self,
        _request: &'a mut reqwest::Request,
        _operation_id: &'static str,
    ) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(async { Err("no credentials configured".into()) })
    }
}

#[tokio::test]
async fn a_failing_prepare_hook_stops_the_request() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200);
        })
        .await;
    let client = Client::new(&server.base_url(), Hooks::new(Refuse));

    let error = client.list_datasets().send().await.unwrap_err();

    assert!(
        matches!(&error, cm_api_gen::Error::Custom(message) if message == "no credentials configured"),
        "{error:?}"
    );
    any.assert_calls_async(0).await;
}

#[tokio::test]
async fn without_hooks_the_api_version_header_is_still_removed() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v1/datasets")
                .header_missing("api-version");
            then.status(200)
                .header("content-type", "application/json")
                .body(DATASETS);
        })
        .await;
    let client = Client::new(&server.base_url(), Hooks::default());

    let response = client
        .list_datasets()
        .send()
        .await
        .expect("the mock answers");

    mock.assert_async().await;
    assert_eq!(response.status(), 200);
}

#[test]
fn provenance_matches_the_committed_spec() {
    use sha2::{Digest, Sha256};
    let spec = include_bytes!("../../../spec/openapi.yaml");
    let digest: String = Sha256::digest(spec)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        cm_api_gen::provenance::SPEC_SHA256,
        digest,
        "spec/openapi.yaml changed without `cargo xtask codegen`"
    );
    assert_eq!(cm_api_gen::provenance::PROGENITOR_VERSION, "0.15.1");
}

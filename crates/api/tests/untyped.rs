//! `Client::untyped`: the exact request an operation chosen at run time
//! sends, and the answer's JSON kept whole.

mod common;

use cm_api::http::Method;
use cm_api::{Error, RetryPolicy};
use common::token_client;
use httpmock::MockServer;
use serde_json::json;

#[tokio::test]
async fn sends_path_query_and_body_and_keeps_every_field_of_the_answer() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method("POST")
                .path("/api/v1/sources/acme/in%20box/sync")
                .query_param("no_charge", "true")
                .header("authorization", "Bearer tok-static-123")
                .header("content-type", "application/json")
                .json_body(json!({"comments": [{"id": "c1"}]}));
            then.status(200)
                .header("content-type", "application/json")
                .header("x-request-id", "req-9")
                .json_body(json!({"status": "ok", "new": 1, "a_field_from_the_future": [1]}));
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let answer = client
        .untyped(
            "sync_comments",
            Method::POST,
            "/api/v1/sources/{project}/{source_name}/sync",
        )
        .path_param("project", "acme")
        .path_param("source_name", "in box")
        .query("no_charge", "true")
        .body(json!({"comments": [{"id": "c1"}]}))
        .send()
        .await
        .unwrap();

    mock.assert_async().await;
    assert_eq!(
        answer.value(),
        &json!({"status": "ok", "new": 1, "a_field_from_the_future": [1]})
    );
    assert_eq!(answer.request_id(), Some("req-9"));
}

#[tokio::test]
async fn an_error_envelope_is_a_typed_api_error_naming_the_operation() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method("GET").path("/api/_private/projects/nope");
            then.status(404)
                .header("content-type", "application/json")
                .json_body(json!({"status": "error", "message": "Project not found"}));
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let error = client
        .untyped(
            "get_project",
            Method::GET,
            "/api/_private/projects/{project}",
        )
        .path_param("project", "nope")
        .send()
        .await
        .unwrap_err();

    match &error {
        Error::Api {
            operation,
            status,
            message,
            ..
        } => {
            assert_eq!((*operation, *status), (Some("get_project"), 404));
            assert_eq!(message, "Project not found");
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_path_parameter_sends_nothing() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|_, then| {
            then.status(200);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let error = client
        .untyped(
            "get_project",
            Method::GET,
            "/api/_private/projects/{project}",
        )
        .send()
        .await
        .unwrap_err();

    assert!(matches!(error, Error::InvalidRequest { .. }), "{error:?}");
    assert!(
        error.to_string().contains("`project` is required"),
        "{error}"
    );
    assert_eq!(any.calls_async().await, 0);
}

//! Arguments that would send the wrong request are refused before anything
//! leaves the process: the mock server must see no request at all.

use cm_api_contract_tests::harness::{Outcome, client_for, run};
use futures::future::BoxFuture;
use httpmock::MockServer;

type Call = fn(&cm_api::Client) -> BoxFuture<'_, Outcome>;

/// (what is wrong, the argument it is passed as, the call).
fn bad_calls() -> Vec<(&'static str, &'static str, Call)> {
    vec![
        ("an empty project name", "project", |client| {
            Box::pin(run(client.list_project_sources().project("")))
        }),
        ("an empty dataset name", "dataset_name", |client| {
            Box::pin(run(client.get_dataset().project("acme").dataset_name("")))
        }),
        (
            "`..` as a source name, which would address the project",
            "source_name",
            |client| Box::pin(run(client.get_source().project("acme").source_name(".."))),
        ),
        (
            "`.` as a stream name, which would address the stream list",
            "stream_name",
            |client| {
                Box::pin(run(client
                    .get_stream()
                    .project("acme")
                    .dataset_name("support")
                    .stream_name(".")))
            },
        ),
        (
            "`..` as a comment id, which would address the source",
            "comment_id",
            |client| {
                Box::pin(run(client
                    .get_comment()
                    .project("acme")
                    .source_name("inbox")
                    .comment_id("..")))
            },
        ),
        ("an empty id after `id:`", "source_id", |client| {
            Box::pin(run(client.get_source_by_id().source_id("")))
        }),
    ]
}

#[tokio::test]
async fn invalid_path_segments_fail_before_sending() {
    let server = MockServer::start_async().await;
    let any_request = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200).body("{}");
        })
        .await;
    let client = client_for(&server);
    let mut failures = Vec::new();

    for (what, argument, call) in bad_calls() {
        match call(&client).await {
            Err(error @ cm_api::Error::InvalidRequest { .. })
                if error.to_string().contains(argument) && error.status().is_none() => {}
            other => failures.push(format!("{what}: got {other:?}")),
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    any_request.assert_calls_async(0).await;
}

#[test]
fn an_invalid_timestamp_cannot_reach_a_request_body() {
    // Timestamps in request bodies are `chrono::DateTime<Utc>`: the typed
    // API cannot hold an invalid one, and decoding user data with one fails
    // before a request exists.
    let comment = serde_json::json!({
        "comments": [{
            "id": "msg-1",
            "timestamp": "2026-02-30T09:00:00Z",
            "messages": [{ "body": { "text": "Hello" } }]
        }]
    });
    let error = serde_json::from_value::<cm_api::types::SyncCommentsRequest>(comment).unwrap_err();
    assert!(
        error.to_string().contains("input is out of range"),
        "{error}"
    );
}
